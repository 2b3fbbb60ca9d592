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
