"""A real PACS for the tests: Orthanc (Debian package ``orthanc``) in a temporary folder.

:class:`Orthanc` writes a temporary configuration, starts ``Orthanc`` on free loopback
ports and stops it afterwards. The configuration:

- DICOM: called AE title ``ORTHANC_TEST`` checked (a wrong called AET is rejected); the
  only peer is ``CTUS`` at 127.0.0.1 (its host checked), allowed C-ECHO, C-FIND, C-GET,
  C-MOVE and C-STORE; nothing is "always allowed" to unknown peers. C-MOVE sends to
  ``CTUS`` at 127.0.0.1:``move_port`` (our storage SCP in the tests).
- REST: ``RemoteAccessAllowed: false`` (Orthanc answers HTTP from the loopback only; it
  has no bind-address option), no authentication, no plugins, no Lua, no WebDAV.
- Storage and index in the temporary folder; jobs not saved.

``orthanc_binary()`` returns the binary's path or None; the ``orthanc_server`` fixture
(tests/conftest.py) skips with the reason when it is None.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

ORTHANC_AET = "ORTHANC_TEST"
OUR_AET = "CTUS"


def orthanc_binary() -> Optional[str]:
    """The Orthanc binary: ``$CTUS_ORTHANC`` when set (a path; one that does not exist means
    "not installed", which is how the skip is tested), else Orthanc on PATH or /usr/sbin/Orthanc."""
    forced = os.environ.get("CTUS_ORTHANC")
    if forced is not None:
        return forced if os.path.isfile(forced) else None
    return shutil.which("Orthanc") or (("/usr/sbin/Orthanc") if os.path.exists("/usr/sbin/Orthanc") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process with its own temporary storage; use as a context manager."""

    def __init__(self, workdir: Path, *, our_aet: str = OUR_AET, move_port: Optional[int] = None):
        self.workdir = Path(workdir)
        self.aet = ORTHANC_AET
        self.our_aet = our_aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.move_port = move_port or free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.workdir / "orthanc.log"

    @property
    def server(self) -> str:
        """``AET@HOST:PORT`` as ``ctus pacs --server`` takes it."""
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    def config(self) -> dict:
        return {
            "Name": "ctus-test", "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"), "Plugins": [], "LuaScripts": [],
            "HttpServerEnabled": True, "HttpPort": self.http_port, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "WebDavEnabled": False, "OrthancExplorerEnabled": False,
            "ExecuteLuaEnabled": False, "MetricsEnabled": False, "SaveJobs": False,
            "DicomServerEnabled": True, "DicomAet": self.aet, "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True, "DicomCheckModalityHost": True,
            "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False, "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False,
            "DicomModalities": {"ctus": {
                "AET": self.our_aet, "Host": "127.0.0.1", "Port": self.move_port,
                "AllowEcho": True, "AllowFind": True, "AllowGet": True, "AllowMove": True,
                "AllowStore": True}},
            "DicomScpTimeout": 30, "DicomScuTimeout": 10, "DicomAssociationCloseDelay": 0,
            "StableAge": 1, "ConcurrentJobs": 1, "SynchronousCMove": True,
            "OverwriteInstances": False, "StorageCompression": False, "DeidentifyLogs": False,
        }

    def start(self, timeout_s: float = 30.0) -> "Orthanc":
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed (apt-get install orthanc)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=1))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary, str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                self.get("/system")
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    # ------------------------------------------------------------------ REST (loopback)
    def _request(self, path: str, data: Optional[bytes] = None, method: Optional[str] = None,
                 content_type: str = "application/json"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data,
                                     method=method, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def get(self, path: str):
        return json.loads(self._request(path))

    def get_bytes(self, path: str) -> bytes:
        return self._request(path)

    def post(self, path: str, body) -> object:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return json.loads(self._request(path, data, "POST",
                                        "application/dicom" if isinstance(body, bytes) else "application/json"))

    def delete(self, path: str) -> None:
        self._request(path, method="DELETE")

    def clear(self) -> None:
        """Delete every patient (keeps the server running between tests)."""
        for pid in self.get("/patients"):
            self.delete(f"/patients/{pid}")

    def __enter__(self) -> "Orthanc":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
