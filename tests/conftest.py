"""Shared fixtures: the read-only ../shared folder (specs, face images), skipped with a message when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path}: this test needs the project's ../shared folder")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR, "the shared folder")


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    return _require(SHARED_DIR / "specs", "the specs folder")


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return _require(SHARED_DIR / "data" / "faces", "the development face set")
