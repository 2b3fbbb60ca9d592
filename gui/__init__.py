"""The Qt desktop application (views, panels, workers, the ``ctus-gui`` entry point)."""
from __future__ import annotations


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("ctus")
    except Exception:  # not installed (running from the source tree): read setup.cfg
        import configparser
        from pathlib import Path
        cfg = configparser.ConfigParser()
        cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
        return cfg.get("metadata", "version", fallback="unknown")


__version__ = _version()
