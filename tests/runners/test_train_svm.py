"""scripts/train_svm.py, run as a user runs it: shards in, artifact + report out; on synthetic shards, and once on
extracted ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attribution.latent_shards import open_shard_folder, shard_name, write_shard
from attribution.latent_svm import LatentAttributor
from attribution.open_set import open_set_labels

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
CLASSES = ["progan", "stylegan2", "stylegan3"]


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    """A script in its own process, as from a shell: its exit status and its messages."""
    return subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *(str(a) for a in args)],
                          capture_output=True, text=True, timeout=600)


def train(*args) -> subprocess.CompletedProcess:
    return run_script("train_svm", *args)


def _write_synthetic_shards(folder: Path, n_images: int = 60, copies: int = 2, shard_size: int = 25) -> Path:
    """Shards in extract_latents.py's format: three separable classes of 18x8 latents, resolutions 64-1024."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, size=(3, 18, 8))
    num_shards = -(-n_images // shard_size)
    settings = {"classes": CLASSES, "num_shards": num_shards, "precision": {"device": "cpu", "dtype": "fp32"},
                "preprocessing": {"face": "synthetic"},
                "encoder": {"kind": "synthetic", "weights_sha256": "none", "latent_avg_added": True}}
    open_shard_folder(folder, settings)
    for index in range(num_shards):
        images = range(index * shard_size, min((index + 1) * shard_size, n_images))
        rows = [(image, copy) for image in images for copy in range(copies)]
        base = {image: centres[image % 3] + rng.normal(0, 0.7, size=(18, 8)) for image in images}
        write_shard(folder / shard_name(index), {
            "latents": np.array([base[i] + rng.normal(0, 0.1, size=(18, 8)) for i, _ in rows], dtype=np.float16),
            "labels": np.array([CLASSES[i % 3] for i, _ in rows]),
            "groups": np.array([f"img{i}" for i, _ in rows]),
            "paths": np.array([f"{CLASSES[i % 3]}/img{i}.png" for i, _ in rows]),
            "sha256": np.array(["0" * 64 for _ in rows]),
            "resolutions": rng.integers(64, 1025, size=len(rows)).astype(np.int32),
            "jpeg_qualities": rng.integers(60, 101, size=len(rows)).astype(np.int16),
            "alignment_error": np.zeros(len(rows), dtype=np.float32),
            **{key: np.array([], dtype=str) for key in ("failed_paths", "failed_labels", "failed_kinds",
                                                         "failed_reasons")},
        })
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train")
    shards = _write_synthetic_shards(root / "latents")
    artifact = root / "svm" / "latent_svm.skops"
    result = train(shards, "--out", artifact, "--C", "0.01", "1", "--cv-folds", "3", "--calibration-folds", "3")
    assert result.returncode == 0, result.stderr
    return shards, artifact


def test_training_writes_one_skops_artifact_and_report(trained):
    _, artifact = trained
    report = artifact.with_name("latent_svm_report")
    assert sorted(p.name for p in artifact.parent.iterdir()) == ["latent_svm.skops", "latent_svm_report"]
    for name in ("metrics.json", "confusion_matrix.json", "confusion_matrix.png", "reliability.png"):
        assert (report / name).stat().st_size > 0, name
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["validation"]["per_class"]) == set(CLASSES)
    assert 0 <= metrics["validation"]["ece"] <= 1 and metrics["validation"]["brier"] >= 0
    assert metrics["validation"]["accuracy"] > 0.9
    assert sum(row["count"] for row in metrics["accuracy_by_resolution"]) == metrics["validation"]["n"]
    assert 0 < metrics["open_set"]["probability_threshold"] < 1
    assert 0 <= metrics["open_set"]["validation_rejected"] <= 0.1
    matrix = json.loads((report / "confusion_matrix.json").read_text())
    assert matrix["labels"] == CLASSES and np.sum(matrix["matrix"]) == metrics["validation"]["n"]


def test_c_is_picked_by_group_cross_validation(trained):
    _, artifact = trained
    selection = json.loads(artifact.with_name("latent_svm_report").joinpath("metrics.json").read_text())[
        "model_selection"]
    assert set(selection["cv"]) == {"0.01", "1.0"}
    assert all(len(result["folds"]) == 3 and result["std"] >= 0 for result in selection["cv"].values())
    best = max(selection["cv"], key=lambda C: selection["cv"][C]["mean"])
    assert selection["cv"][str(selection["chosen_C"])]["mean"] == selection["cv"][best]["mean"]


def test_loaded_artifact_predicts_the_shard_classes(trained):
    shards, artifact = trained
    model = LatentAttributor.from_pretrained(artifact)
    latents = np.load(shards / "shard-00000.npz")["latents"]
    labels = np.load(shards / "shard-00000.npz")["labels"]
    assert np.mean(np.array(model.predict(latents)) == labels) > 0.9
    assert model.metadata["feature_spec"]["latent_avg_added"] is True


def test_existing_artifact_is_not_overwritten_without_force(trained):
    shards, artifact = trained
    before = artifact.read_bytes()
    result = train(shards, "--out", artifact, "--C", "1")
    assert result.returncode == 2 and "--force" in result.stderr
    assert artifact.read_bytes() == before


def test_classes_flag_trains_on_a_subset_and_a_joblib_out_writes_the_legacy_pair(trained, tmp_path):
    shards, _ = trained
    artifact = tmp_path / "two.joblib"
    assert train(shards, "--out", artifact, "--classes", "progan", "stylegan3", "--C", "1", "--cv-folds", "3",
                 "--calibration-folds", "3").returncode == 0
    assert artifact.with_name("two.joblib.sha256").is_file()
    assert LatentAttributor.from_pretrained(artifact).metadata["classes"] == ["progan", "stylegan3"]


def test_artifact_suffix_other_than_skops_or_joblib_is_refused_before_training(trained, tmp_path):
    shards, _ = trained
    result = train(shards, "--out", tmp_path / "svm.pkl")
    assert result.returncode == 2 and ".skops" in result.stderr and not (tmp_path / "svm.pkl").exists()


def test_unfinished_extraction_is_refused(trained, tmp_path):
    shards, _ = trained
    partial = shutil.copytree(shards, tmp_path / "partial")
    (partial / "shard-00001.npz").unlink()
    result = train(partial, "--out", tmp_path / "svm.joblib")
    assert result.returncode == 2 and "unfinished" in result.stderr


def test_extract_then_train_on_real_faces_with_the_tiny_encoder(face_classes, tmp_path):
    face_classes(tmp_path / "faces", 4)
    assert run_script("extract_latents", tmp_path / "faces", "--out", tmp_path / "latents", "--encoder",
                      "tiny-random", "--copies", "2", "--device", "cpu", "--dtype", "fp32", "--threads", "1",
                      "--no-progress").returncode == 0
    artifact = tmp_path / "svm.joblib"
    trained = train(tmp_path / "latents", "--out", artifact, "--C", "0.1", "--cv-folds", "2", "--calibration-folds",
                    "2", "--validation-fraction", "0.25")
    assert trained.returncode == 0 and "tiny-random" in trained.stdout
    model = LatentAttributor.from_pretrained(artifact)
    assert model.metadata["feature_spec"]["encoder_weights_sha256"] == "tiny-random"
    assert "tiny-random" in model.metadata["warning"]
    latents = np.load(tmp_path / "latents" / "shard-00000.npz")["latents"]
    assert set(open_set_labels(model, latents)) <= {"alpha", "beta", "unknown"}


def test_push_dry_run_stages_and_lists_the_artifact_and_card_without_uploading(trained, tmp_path):
    shards, _ = trained
    artifact = tmp_path / "svm.skops"
    result = train(shards, "--out", artifact, "--C", "1", "--cv-folds", "3", "--calibration-folds", "3",
                   "--push-to-hub", "me/gantrace-svm", "--dry-run", "--licence", "mit")
    assert result.returncode == 0, result.stderr
    staged = tmp_path / "svm_hub"
    assert sorted(p.name for p in staged.iterdir()) == ["README.md", "latent_svm.skops"]
    assert "README.md, latent_svm.skops" in result.stdout and "pushed" not in result.stdout
    card = (staged / "README.md").read_text()
    assert "license: mit" in card and "hf://me/gantrace-svm" in card and "latent_avg added: True" in card


def test_push_of_a_joblib_artifact_is_refused_before_training(trained, tmp_path):
    shards, _ = trained
    result = train(shards, "--out", tmp_path / "svm.joblib", "--push-to-hub", "me/svm")
    assert result.returncode == 2 and "only a .skops" in result.stderr and not (tmp_path / "svm.joblib").exists()
