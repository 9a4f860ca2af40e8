"""Where tests find their data: committed fixtures in tests/data, and the optional development face set.

Everything a test needs to run in a bare clone is in tests/data (see its PROVENANCE.md). Only the development face
set lives outside the repository: GANTRACE_FACES names it, default ../shared/data/faces next to the repository.
Tests that truly need it ask for `faces_dir`, which skips them with one message when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(__file__).resolve().parent / "data"
FACES_ENV = "GANTRACE_FACES"

# "auto" precision depends on the CPU (bf16 with AMX/AVX512-BF16, fp32 without): the tests pin fp32 so that every
# machine checks the same numbers. Tests of the auto policy and of bf16/int8 clear or set it themselves.
os.environ.setdefault("GANTRACE_DTYPE", "fp32")


def face_set_path() -> Path:
    """The development face set's folder, whether or not it exists (GANTRACE_FACES, else ../shared/data/faces)."""
    return Path(os.environ.get(FACES_ENV) or REPO_ROOT.parent / "shared" / "data" / "faces")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A folder for a test module's tiny models (the latent SVM artifact of tests.test_pipeline.tiny_branches)."""
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: the e4e and UFD fidelity fixtures and the public-domain face, committed with the tests."""
    return DATA_DIR


@pytest.fixture(scope="session")
def real_face() -> Path:
    """One real photograph with exactly one frontal face (300x300 JPEG), for tests that need any real face."""
    return DATA_DIR / "astronaut_face.jpg"


@pytest.fixture(scope="session")
def face_classes(real_face: Path) -> Callable[[Path, int], Path]:
    """Writes class folders alpha/ and beta/ of `per_class` distinct variants of the real face (smaller, mirrored,
    brighter) under a root and returns it: labelled data for plumbing tests; the labels mean nothing."""

    def write(root: Path, per_class: int = 2) -> Path:
        face = Image.open(real_face).convert("RGB")
        for index in range(2 * per_class):
            side = face.width - 12 * index
            variant = face.resize((side, side), Image.Resampling.LANCZOS).point(lambda v, k=index: min(255, v + 6 * k))
            if index % 2:
                variant = variant.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            folder = root / ("alpha", "beta")[index // per_class]
            folder.mkdir(parents=True, exist_ok=True)
            variant.save(folder / f"variant-{index}.png")
        return root

    return write


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


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict[str, Path]:
    """The provenance tests' files, made once per session (signing costs a few tens of milliseconds): signed,
    altered after signing, a signed capture, a PNG with generation parameters, an XMP claim and a stripped copy."""
    import made_files

    folder = tmp_path_factory.mktemp("provenance")
    signed = made_files.signed_face(folder / "signed.jpg")
    return {"signed": signed, "altered": made_files.altered(signed, folder / "altered.jpg"),
            "capture": made_files.signed_face(folder / "capture.jpg", made_files.CAPTURED, "Camera firmware 1.0"),
            "sd_png": made_files.sd_png(folder / "sd.png"), "xmp": made_files.xmp_jpeg(folder / "xmp.jpg"),
            "stripped": made_files.stripped(signed, folder / "stripped.jpg")}
