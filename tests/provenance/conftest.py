"""Signed files are made once per session (signing costs a few tens of milliseconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

import made_files


@pytest.fixture(scope="session")
def made(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("provenance")
    signed = made_files.signed_face(folder / "signed.jpg")
    return {"signed": signed, "altered": made_files.altered(signed, folder / "altered.jpg"),
            "capture": made_files.signed_face(folder / "capture.jpg", made_files.CAPTURED, "Camera firmware 1.0"),
            "sd_png": made_files.sd_png(folder / "sd.png"), "xmp": made_files.xmp_jpeg(folder / "xmp.jpg"),
            "stripped": made_files.stripped(signed, folder / "stripped.jpg")}
