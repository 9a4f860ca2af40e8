"""Where tests find their data: committed fixtures in tests/data, and the optional development face set.

Everything a test needs to run in a bare clone is in tests/data (see its PROVENANCE.md). Only the development face
set lives outside the repository: GANTRACE_FACES names it, default ../shared/data/faces next to the repository.
Tests that truly need it ask for `faces_dir`, which skips them with one message when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(__file__).resolve().parent / "data"
FACES_ENV = "GANTRACE_FACES"


def face_set_path() -> Path:
    """The development face set's folder, whether or not it exists (GANTRACE_FACES, else ../shared/data/faces)."""
    return Path(os.environ.get(FACES_ENV) or REPO_ROOT.parent / "shared" / "data" / "faces")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: the e4e and UFD fidelity fixtures and the public-domain face, committed with the tests."""
    return DATA_DIR


@pytest.fixture(scope="session")
def real_face() -> Path:
    """One real photograph with exactly one frontal face (300x300 JPEG), for tests that need any real face."""
    return DATA_DIR / "astronaut_face.jpg"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The development face set; tests that need it skip with one message in a bare clone."""
    path = face_set_path()
    if not path.is_dir():
        pytest.skip(f"needs the development face set at {path} (set {FACES_ENV}); absent in a bare clone")
    return path


@pytest.fixture(scope="session")
def optional_faces_dir() -> Path | None:
    """The development face set when present, else None: for tests that fall back to synthetic data."""
    path = face_set_path()
    return path if path.is_dir() else None
