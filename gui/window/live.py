"""Live mode: connect to PlusServer (or ``ctus replay``), show frames with the overlay, record.

The engine part (``registration.live.igtl_client.LiveClient``) receives in its own
thread; here a QTimer polls it at ~60 Hz (faster than the frame rate, so the
newest frame is shown without waiting) and drains every frame into the
recorder when recording, so none is lost even if the display skips some.

Safety: the frame goes to the US view with its image-to-reference only while
the client's watchdog says tracking is OK *now*; otherwise the overlay is off
and the view shows the watchdog's reason ("tracking stale: no update for
350 ms"). The status bar shows the connection, frame rate, latency and
tracking state at all times.
"""
from __future__ import annotations

import os
import time
from typing import Optional

from PyQt5.QtCore import QObject, QTimer, pyqtSignal
from PyQt5.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QSpinBox

from registration.live.igtl_client import LiveClient
from registration.live.live_recorder import SequenceRecorder
from registration.spatial.errors import InputError


class ConnectDialog(QDialog):
    """Host, port and device names, with PlusServer's defaults."""

    def __init__(self, parent=None, host="127.0.0.1", port=18944):
        super().__init__(parent)
        self.setWindowTitle("Connect to PlusServer")
        form = QFormLayout(self)
        self.host = QLineEdit(host)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(int(port))
        self.image_device = QLineEdit("Image_Reference")
        self.pair = QCheckBox("pair images with a separate transform (needs the probe calibration)")
        self.transform_device = QLineEdit("ProbeToReference")
        self.transform_device.setEnabled(False)
        self.pair.toggled.connect(self.transform_device.setEnabled)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Image device", self.image_device)
        form.addRow(self.pair)
        form.addRow("Transform device", self.transform_device)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def values(self) -> dict:
        return {"host": self.host.text().strip(), "port": int(self.port.value()),
                "image_device": self.image_device.text().strip(),
                "transform_device": self.transform_device.text().strip() if self.pair.isChecked() else None}


class LiveController(QObject):
    """Owns the LiveClient, feeds the US view, the status text and the recorder."""

    status_changed = pyqtSignal(str)
    frame_shown = pyqtSignal(int)

    def __init__(self, show_frame, parent=None, poll_ms: int = 15):
        """``show_frame(image, index, timestamp, image_to_reference_or_None, reason)`` draws a frame."""
        super().__init__(parent)
        self._show_frame = show_frame
        self.client: Optional[LiveClient] = None
        self.recorder: Optional[SequenceRecorder] = None
        self.frozen = False
        self.last_index = -1
        self.frames_shown = 0
        self.status_text = "not connected"
        self.last_tracking = (False, "not connected")
        # Objects with on_transform(sample) / on_frame(frame) (called on the client's receiver
        # thread, as they arrive) and live_started() / live_stopped(): the needle guidance.
        self.listeners: list = []
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)
        self._status_timer_t = 0.0

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def connect_to(self, host: str, port: int, *, image_device: str = "Image_Reference",
                   transform_device: Optional[str] = None, image_to_probe=None) -> None:
        self.disconnect()
        self.last_tracking = (False, "connecting")
        self.client = LiveClient(host, port, image_device=image_device, transform_device=transform_device,
                                 image_to_probe=image_to_probe, on_transform=self._on_transform,
                                 on_frame=self._on_frame)
        for listener in self.listeners:
            listener.live_started()
        self.client.start()
        self.last_index = -1
        self._timer.start()
        self._publish_status(force=True)

    def disconnect(self) -> Optional[str]:
        path = self.stop_recording() if self.recording else None
        self._timer.stop()
        if self.client is not None:
            self.client.stop()
            self.client = None
            for listener in self.listeners:
                listener.live_stopped()
        self.status_text = "not connected"
        self.status_changed.emit(self.status_text)
        return path

    def _on_transform(self, sample) -> None:      # receiver thread
        for listener in self.listeners:
            listener.on_transform(sample)

    def _on_frame(self, frame) -> None:            # receiver thread
        for listener in self.listeners:
            listener.on_frame(frame)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze the view on the current frame (to place landmarks); recording goes on."""
        self.frozen = bool(frozen)
        self._publish_status(force=True)

    def start_recording(self, path) -> None:
        if self.client is None:
            raise RuntimeError("connect before recording")
        self.client.drain()  # start with what arrives from now on
        self.recorder = SequenceRecorder(path)
        self._publish_status(force=True)

    def stop_recording(self) -> Optional[str]:
        if self.recorder is None:
            return None
        if self.client is not None:
            for f in self.client.drain():
                self.recorder.add_frame(f)
        rec, self.recorder = self.recorder, None
        path = rec.finish()
        self._publish_status(force=True)
        return path

    def poll(self) -> None:
        c = self.client
        if c is None:
            return
        backlog = c.drain()
        if self.recorder is not None:
            for f in backlog:
                self.recorder.add_frame(f)
        frame = c.latest()
        ok, why = c.tracking()
        changed = ok != self.last_tracking[0]
        self.last_tracking = (ok, why)
        if frame is not None and not self.frozen and frame.index != self.last_index:
            i2r = frame.image_to_reference if (ok and frame.tracking_ok) else None
            reason = "" if i2r is not None else (frame.reason if ok else why)
            self._show_frame(frame.image, frame.index, frame.timestamp, i2r, reason)
            self.last_index = frame.index
            self.frames_shown += 1
            self.frame_shown.emit(frame.index)
        elif frame is not None and not self.frozen and not ok and self.last_index >= 0:
            # no new frame but tracking went stale: take the overlay off now
            self._show_frame(frame.image, frame.index, frame.timestamp, None, why)
        self._publish_status(force=changed)  # a tracking change shows at once, not at the 4 Hz refresh

    def _publish_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._status_timer_t < 0.25:
            return
        self._status_timer_t = now
        c = self.client
        if c is None:
            text = "not connected"
        else:
            s = c.stats()
            ok, why = c.tracking()
            parts = [f"LIVE {c.host}:{c.port}"]
            if c.connected:
                lat = s["latency_ms_median"]
                parts.append(f"{s['fps']:.0f} fps")
                parts.append("latency " + ("-" if lat is None else f"{lat:.0f} ms"))
                parts.append("tracking OK" if ok else why.split(":")[0])  # full reason in the tooltip
            else:
                parts.append(c.state_text)
            if self.frozen:
                parts.append("FROZEN")
            if self.recorder is not None:
                parts.append(f"REC {self.recorder.n_frames} frames -> {os.path.basename(self.recorder.path)}")
            text = " | ".join(parts)
        if text != self.status_text or force:
            self.status_text = text
            self.status_changed.emit(text)


def install_live(window) -> LiveController:
    """Add live mode to a MainWindow: File > Connect/Disconnect, Record, Freeze; status bar.

    Live frames go to ``window.us_view`` like sweep frames (the registration
    and planning panels read the current frame from there), so landmarks can
    be placed on a frozen live frame.
    """
    from PyQt5.QtWidgets import QFileDialog, QToolBar

    state = {"n": 0, "t0": None}

    def show(image, index, timestamp, i2r, reason):
        state["n"] = max(state["n"], index + 1)
        if state["t0"] is None or index == 0:
            state["t0"] = timestamp  # show time since the stream started, not epoch seconds
        window.us_view.set_frame(image, index, state["n"], timestamp - state["t0"], i2r,
                                 tracking_reason=reason)
        if window.view3d is not None and i2r is not None and window.registration is not None:
            window.view3d.set_us_plane(window.registration.reference_to_ct @ i2r, image.shape)

    live = LiveController(show, parent=window)

    def on_status(text):
        window.tracking_label.setText(text)
        window.tracking_label.setToolTip(live.last_tracking[1])

    live.status_changed.connect(on_status)
    window.live = live

    def ask_connect():
        dlg = ConnectDialog(window)
        window.connect_dialog = dlg  # reachable from tests
        if dlg.exec_() != ConnectDialog.Accepted:
            return
        v = dlg.values()
        connect(v["host"], v["port"], v["image_device"], v["transform_device"])

    def connect(host, port, image_device="Image_Reference", transform_device=None):
        i2p = None
        if transform_device:
            i2p = window.sweep.image_to_probe if window.sweep is not None else None
            if i2p is None:
                window.reporter.report("Connect to PlusServer", InputError(
                    "pairing images with a transform needs the probe calibration (ImageToProbe)",
                    fix="open a sweep with its PLUS config first, or use the image device with its "
                        "embedded transform (Image_Reference)"))
                return
        window.player.pause()
        with window.reporter.action("Connect to PlusServer"):
            live.connect_to(host, port, image_device=image_device, transform_device=transform_device,
                            image_to_probe=i2p)
        act_record.setEnabled(True)
        act_freeze.setEnabled(True)
        act_disconnect.setEnabled(True)

    def disconnect():
        path = live.disconnect()
        act_record.setChecked(False)
        for a in (act_record, act_freeze, act_disconnect):
            a.setEnabled(False)
        if path:
            window.reporter.info(f"recording saved: {path}")

    def toggle_record(on: bool):
        if on:
            path = window.ask_record_path() if hasattr(window, "ask_record_path") else None
            if path is None:
                path, _ = QFileDialog.getSaveFileName(window, "Record live stream", "recording.igs.mhd",
                                                      "PLUS sequence (*.mhd)")
            if not path:
                act_record.setChecked(False)
                return
            with window.reporter.action("Start recording"):
                live.start_recording(path)
            if not live.recording:
                act_record.setChecked(False)
        else:
            with window.reporter.action("Stop recording"):
                path = live.stop_recording()
                if path:
                    window.reporter.info(f"recording saved: {path}")

    menu = window.menuBar().actions()[0].menu()  # File
    first = menu.actions()[0]
    act_connect = window._action(menu, "Connect to &PlusServer...", ask_connect, "Ctrl+K", "live_connect")
    act_disconnect = window._action(menu, "Disconnect live stream", disconnect, None, "live_disconnect")
    act_record = window._action(menu, "&Record live stream", lambda: toggle_record(act_record.isChecked()),
                                "Ctrl+R", "live_record")
    act_record.setCheckable(True)
    act_freeze = window._action(menu, "&Freeze live frame", lambda: live.set_frozen(act_freeze.isChecked()),
                                "F", "live_freeze")
    act_freeze.setCheckable(True)
    for a in (act_connect, act_disconnect, act_record, act_freeze):
        menu.removeAction(a)
    menu.insertActions(first, [act_connect, act_disconnect, act_record, act_freeze])
    menu.insertSeparator(first)
    for a in (act_record, act_freeze, act_disconnect):
        a.setEnabled(False)
    tb = window.findChild(QToolBar, "main_toolbar")
    if tb is not None:
        tb.addSeparator()
        for a in (act_connect, act_record, act_freeze):
            tb.addAction(a)
    live.connect_host = connect          # for tests and the command line (--connect)
    live.disconnect_all = disconnect
    live.actions = {"connect": act_connect, "disconnect": act_disconnect, "record": act_record,
                    "freeze": act_freeze}
    return live
