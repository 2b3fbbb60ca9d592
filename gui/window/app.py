"""``ctus-gui`` entry point: parse arguments, check for a display, open the window.

Without a display (no $DISPLAY / $WAYLAND_DISPLAY and no explicit
QT_QPA_PLATFORM) the window cannot open: print what to do instead of letting
Qt abort.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

log = logging.getLogger("ctus.gui")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctus-gui", description="CT-ultrasound fusion planner (desktop)")
    p.add_argument("--demo", action="store_true", help="open the synthetic demo case")
    p.add_argument("--ct", help="CT: DICOM folder or image file (NRRD, NIfTI, MHA)")
    p.add_argument("--series", help="DICOM series UID when the folder holds several")
    p.add_argument("--labels", help="label map on the CT (NRRD, NIfTI, MHA)")
    p.add_argument("--label-names", help="JSON {name: value} for the label map")
    p.add_argument("--sweep", help="tracked sweep (PLUS .mha/.igs.mha/.mhd, Slicer .seq.nrrd)")
    p.add_argument("--calibration", help="PLUS device-set config XML with ImageToProbe")
    p.add_argument("--registration", help="RESULT.json / INIT.json with reference_to_ct")
    p.add_argument("--session", help="a session saved by ctus-gui")
    p.add_argument("--connect", metavar="HOST:PORT", type=host_port,
                   help="connect to PlusServer (or ctus replay) for live ultrasound, e.g. 127.0.0.1:18944")
    p.add_argument("--no-3d", action="store_true", help="no 3D view (faster on software OpenGL)")
    return p


def host_port(text: str):
    """'host:port' -> (host, port); argparse turns a ValueError into exit 2 with usage."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"'{text}' is not HOST:PORT (e.g. 127.0.0.1:18944)")
    return host, int(port)


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("win32", "darwin")


def open_inputs(window, args) -> None:
    """Queue loading of everything given on the command line (in worker threads, in order)."""
    if args.session:
        window.open_session(args.session)
        return
    if args.demo:
        window.open_demo()
        return
    if args.ct:
        window.open_ct(args.ct, args.series)
        window.wait_for_workers()
    if args.labels:
        window.open_labels(args.labels, args.label_names)
    if args.sweep:
        window.open_sweep(args.sweep, args.calibration)
    window.wait_for_workers()
    if args.registration:
        window.open_registration(args.registration)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not has_display():
        print("ctus-gui: no display found ($DISPLAY is not set), so the window cannot open.\n"
              "  On a desktop: run ctus-gui from a graphical session.\n"
              "  Headless: use the command line instead, e.g. 'ctus sample --out demo' then "
              "'ctus plan ...' (see README), or run under 'xvfb-run -a ctus-gui ...'.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PyQt5.QtWidgets import QApplication

    from gui.core.errors import install_excepthook

    from .file_actions import default_autosave_path
    from .main_window import MainWindow
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ctus")
    # pyvistaqt needs a real OpenGL window: no 3D view on Qt's offscreen/minimal platforms.
    gl_ok = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0] not in ("offscreen", "minimal")
    window = MainWindow(enable_3d=gl_ok and not args.no_3d, autosave_path=default_autosave_path(), panels=True)
    install_excepthook(window.reporter)
    window.show()
    open_inputs(window, args)
    if args.connect:
        window.live.connect_host(*args.connect)   # reconnects by itself if the server is not up yet
    return int(app.exec_())


if __name__ == "__main__":
    sys.exit(main())
