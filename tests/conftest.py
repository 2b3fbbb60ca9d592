"""Shared fixtures: real data in ../shared/data, an artifacts folder for screenshots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CTUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
ARTIFACTS = ROOT / "tests" / "artifacts"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the calling test cleanly when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


@pytest.fixture
def shared_data():
    """Callable: shared_data('ct', 'abdomen-20slice') -> Path, or skip."""
    return shared_path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """tests/artifacts (git-ignored): screenshots and pictures a person should look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def demo_case() -> Path:
    """The built-in demo case (generated once into the per-user cache, then reused)."""
    from sample_data.case.demo_case import ensure_demo_case
    return Path(ensure_demo_case())


@pytest.fixture
def free_port():
    """Callable: a TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return pick


@pytest.fixture(scope="module")
def orthanc_server(tmp_path_factory):
    """A real PACS for one test module: Orthanc (tests/_orthanc.py) started on free loopback
    ports with a temporary configuration and storage, stopped after the module. Every test
    that uses it skips, with the reason printed (-ra), when the Orthanc binary is missing."""
    from _orthanc import Orthanc, orthanc_binary
    if orthanc_binary() is None:
        pytest.skip("Orthanc is not installed (Debian package 'orthanc'; scripts/setup.sh installs it as root)")
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server
