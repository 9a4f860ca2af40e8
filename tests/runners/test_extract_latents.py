"""scripts/extract_latents.py, run as a user runs it, on variants of the committed real face (written into
tmp_path) with the tiny random encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from program_runs import FAST, extract, shard_bytes

from attribution.latent_shards import read_shard

@pytest.fixture
def faces(face_classes, tmp_path: Path) -> Path:
    return face_classes(tmp_path / "faces", 2)


@pytest.fixture(scope="module")
def reference(face_classes, tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted extraction (inputs, shard folder) that the other tests compare against; never modified."""
    root = tmp_path_factory.mktemp("reference")
    inputs = face_classes(root / "faces", 2)
    assert extract(inputs, "--out", root / "latents", *FAST).returncode == 0
    return inputs, root / "latents"


def test_shards_hold_the_designed_arrays_and_manifest(reference):
    _, out = reference
    manifest = json.loads((out / "manifest.json").read_text())
    settings = manifest["settings"]
    assert settings["classes"] == ["alpha", "beta"]
    assert settings["encoder"]["weights_sha256"] == "tiny-random" and "RANDOM" in settings["encoder"]["warning"]
    assert settings["encoder"]["latent_avg_added"] is True
    assert settings["num_shards"] == 2 and manifest["complete"] is True
    assert manifest["summary"]["alpha"] == {"images": 2, "faces": 2, "latents": 4, "failures": 0,
                                            "failure_kinds": {}}
    shard = read_shard(out / "shard-00000.npz")
    assert shard["latents"].shape == (4, 18, 16) and shard["latents"].dtype == np.float16
    assert shard["labels"].tolist() == ["alpha"] * 4
    assert shard["groups"][0] == shard["groups"][1] != shard["groups"][2]
    assert ((shard["resolutions"] >= 64) & (shard["resolutions"] <= 1024)).all()
    assert ((shard["jpeg_qualities"] >= 60) & (shard["jpeg_qualities"] <= 100)).all()


def test_unreadable_and_faceless_files_are_skipped_and_recorded(faces, tmp_path):
    (faces / "alpha" / "broken.jpg").write_bytes(b"this is not a JPEG")
    Image.new("RGB", (128, 128), (128, 128, 128)).save(faces / "beta" / "blank.png")
    out = tmp_path / "latents"
    assert extract(faces, "--out", out, *FAST).returncode == 0
    failures = {f["path"]: f for f in json.loads((out / "failures.json").read_text())}
    assert failures["alpha/broken.jpg"]["kind"] == "NotAnImageError"
    assert failures["beta/blank.png"]["kind"] == "NoFaceError"
    assert "alpha/broken.jpg" in failures["alpha/broken.jpg"]["reason"]
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["alpha"]["images"] == 3 and summary["alpha"]["faces"] == 2
    assert summary["beta"]["failure_kinds"] == {"NoFaceError": 1}
    paths = np.concatenate([read_shard(p)["paths"] for p in sorted(out.glob("shard-*.npz"))])
    assert "alpha/broken.jpg" not in paths and "beta/blank.png" not in paths


def test_empty_class_folder_is_an_error(faces, tmp_path):
    (faces / "gamma").mkdir()
    result = extract(faces, "--out", tmp_path / "latents", *FAST)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert "gamma" in error and "no images" in error
    assert not (tmp_path / "latents").exists()


def test_single_class_is_an_error(faces, tmp_path):
    shutil.rmtree(faces / "beta")
    result = extract(faces, "--out", tmp_path / "latents", *FAST)
    assert result.returncode == 2 and "only one class" in result.stderr


def test_killed_and_resumed_run_gives_byte_identical_shards(reference, tmp_path):
    faces, whole = reference
    resumed = tmp_path / "resumed"
    assert extract(faces, "--out", resumed, *FAST, "--stop-after-shards", "1").returncode == 3
    assert sorted(p.name for p in resumed.glob("shard-*.npz")) == ["shard-00000.npz"]
    first_written = (resumed / "shard-00000.npz").stat().st_mtime_ns
    (resumed / ".partial-shard-00001.npz.x1y2").write_bytes(b"half a shard, as a kill mid-write leaves")
    assert extract(faces, "--out", resumed, *FAST).returncode == 0
    assert (resumed / "shard-00000.npz").stat().st_mtime_ns == first_written
    assert shard_bytes(resumed) == shard_bytes(whole) and len(shard_bytes(whole)) == 2
    assert not list(resumed.glob(".partial-*"))


def test_deleted_shard_is_rebuilt_identically(reference, tmp_path):
    faces, whole = reference
    out = shutil.copytree(whole, tmp_path / "latents")
    (out / "shard-00001.npz").unlink()
    assert extract(faces, "--out", out, *FAST).returncode == 0
    assert shard_bytes(out) == shard_bytes(whole)


def test_parallel_workers_give_the_same_shards(reference, tmp_path):
    faces, serial = reference
    parallel = tmp_path / "parallel"
    assert extract(faces, "--out", parallel, *FAST, "--workers", "2").returncode == 0
    assert shard_bytes(parallel) == shard_bytes(serial)


def test_rerun_with_different_settings_is_refused(reference, tmp_path):
    faces, whole = reference
    out = shutil.copytree(whole, tmp_path / "latents")
    result = extract(faces, "--out", out, *FAST, "--seed", "1")
    assert result.returncode == 2
    error = result.stderr
    assert "different settings" in error and "seed" in error
    assert shard_bytes(out) == shard_bytes(whole)


def test_csv_input_keeps_the_given_groups(faces, tmp_path):
    rows = ["path,label,group"] + [f"{p.relative_to(faces)},{p.parent.name},source-{p.parent.name}"
                                   for p in sorted(faces.glob("*/*"))]
    table = faces / "inputs.csv"
    table.write_text("\n".join(rows) + "\n")
    out = tmp_path / "latents"
    assert extract(table, "--out", out, *FAST).returncode == 0
    shard = read_shard(out / "shard-00001.npz")
    assert set(shard["groups"]) == {"source-beta"}
