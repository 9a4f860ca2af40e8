"""FingerprintNet training (detector.fingerprint_training, behind scripts/train_fingerprint.py) and its data
helpers: source-held-out split, augmentation, a run that resumes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import face_set_path
from core.augment import AugmentSettings
from core.datasets import LabelledImage as Sample
from core.datasets import limit_per_class, read_dataset
from core.errors import InputError
from detector.fingerprint_data import augment, balanced_indices, decode_samples, split_by_source
from detector.lr_schedule import lr_factor
from detector.fingerprint_training import Trainer, TrainSettings, prepare_output

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_fingerprint.py"
FACES = face_set_path()
CLASSES = ["real", "progan", "stylegan2", "stylegan3"]


def _samples(tmp: Path) -> list[Sample]:
    """Six images per class from the face set (several sources each), or synthetic folders without it."""
    if FACES.is_dir():
        samples, _ = read_dataset(FACES / "provenance.csv", CLASSES + ["other_gan", "diffusion"])
        return limit_per_class(samples, 6)
    samples, _ = read_dataset(_synthetic_folders(tmp / "data"))
    return samples


def _train(samples: list[Sample], out: Path, resume: bool = False, force: bool = False, **settings) -> int:
    """What scripts/train_fingerprint.py does after parsing: 0 finished, 3 stopped early."""
    prepare_output(out, resume, force)
    trainer = Trainer(TrainSettings(out=out, preset="tiny", batch_size=4, samples_per_epoch=8, progress=False,
                                    **settings), samples)
    if resume:
        trainer.load_checkpoint()
    return 0 if trainer.run()["finished"] else 3


def _synthetic_folders(root: Path) -> Path:
    """Four classes of 96 px images that differ in texture, used when the face set is absent."""
    rng = np.random.default_rng(0)
    for k, label in enumerate(CLASSES + ["other_gan"]):
        (root / label).mkdir(parents=True)
        for index in range(6):
            noise = rng.normal(0, 10 + 15 * k, (96, 96, 3)) + 120
            Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).save(root / label / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """Run one epoch, stop, then resume: the state every test below inspects."""
    tmp = tmp_path_factory.mktemp("train")
    samples = _samples(tmp)
    out = tmp / "run"
    torch.set_num_threads(1)
    first = _train(samples, out, epochs=2, stop_after=1)
    after_first = {"rows": (out / "epochs.csv").read_text(), "state": json.loads((out / "state.json").read_text())}
    second = _train(samples, out, resume=True, epochs=2)
    return {"samples": samples, "out": out, "codes": (first, second), "after_first": after_first}


def test_first_run_stops_after_one_epoch_unfinished(resumed_run):
    state = resumed_run["after_first"]["state"]
    assert resumed_run["codes"] == (3, 0)
    assert state["epoch"] == 1 and state["finished"] is False


def test_resume_continues_at_epoch_two_with_the_same_schedule(resumed_run):
    out = resumed_run["out"]
    with open(out / "epochs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    first_row = resumed_run["after_first"]["rows"].splitlines()[1]
    assert (out / "epochs.csv").read_text().splitlines()[1] == first_row
    scheduler = torch.load(out / "state.pt", weights_only=True)["scheduler"]
    assert scheduler["last_epoch"] == 2 * 2
    assert json.loads((out / "state.json").read_text())["finished"] is True


def test_finished_run_writes_the_report(resumed_run):
    out = resumed_run["out"]
    for name in ("best.safetensors", "best.json", "curves.png", "confusion_matrix.png", "confusion_matrix.json",
                 "roc_pr.png", "robustness.csv", "summary.json", "report.md"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    conditions = [row["condition"] for row in summary["robustness"]]
    assert conditions == ["clean", "jpeg_q90", "jpeg_q75", "jpeg_q50", "downscale_0.75", "downscale_0.5"]
    assert set(summary["run"]["val_counts"]) == set(CLASSES) and min(summary["run"]["val_counts"].values()) > 0
    assert summary["open_set"]["known_validation_max_prob_median"] > 0


def test_refuses_to_overwrite_a_finished_run_without_force(resumed_run):
    with pytest.raises(InputError, match="holds a finished run; pass --force"):
        prepare_output(resumed_run["out"], resume=False, force=False)


def test_script_exits_2_with_one_line_when_the_data_is_missing(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "absent"), "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'absent'}: not a folder of class subfolders "
                                                  "nor a .csv file"]


def test_residual_only_run_on_small_images_keeps_the_epoch_with_the_best_real_vs_fake_auc(tmp_path):
    """96 px validation images: halved, they fall under the model's minimum, so that condition is reported empty
    instead of crashing the report after training."""
    out = tmp_path / "run"
    samples, _ = read_dataset(_synthetic_folders(tmp_path / "data"))
    code = _train(samples, out, epochs=3, residual_only=True, select_on="real_vs_fake_auc")
    assert code == 0
    with open(out / "epochs.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    best = max(rows, key=lambda row: (float(row["val_real_vs_fake_auc"]), -float(row["val_loss"])))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == int(best["epoch"])
    assert summary["run"]["config"]["rgb_input"] is False
    assert json.loads((out / "best.json").read_text())["config"]["rgb_input"] is False
    measured = {row["condition"]: row for row in summary["robustness"]}
    assert measured["downscale_0.5"]["n"] == 0 and measured["downscale_0.5"]["accuracy"] is None
    assert measured["downscale_0.75"]["n"] == measured["clean"]["n"] > 0


def test_split_never_shares_a_source_between_training_and_validation():
    samples = [Sample(Path(f"{label}/{repo}/{i}.png"), label, f"{label}-repo{repo}", f"{label}-repo{repo}")
               for label in CLASSES for repo in range(4) for i in range(5 + repo)]
    split = split_by_source(samples, CLASSES, seed=3)
    for label in CLASSES:
        train_groups = {s.group for s in split.train if s.label == label}
        val_groups = {s.group for s in split.val if s.label == label}
        assert val_groups and train_groups and not train_groups & val_groups
        assert split.unit[label] == "group"
    again = split_by_source(samples, CLASSES, seed=3)
    assert again.held_out == split.held_out


def test_split_falls_back_to_folders_when_one_repo_holds_a_whole_class():
    samples = [Sample(Path(f"x/{folder}/{i}.png"), "progan", "one-repo", f"one-repo:{folder}")
               for folder in ("train", "test") for i in range(10 if folder == "train" else 4)]
    samples += [Sample(Path(f"r/{g}/{i}.png"), "real", f"r{g}", f"r{g}") for g in range(3) for i in range(4)]
    split = split_by_source(samples, ["real", "progan"], seed=0)
    assert split.unit["progan"] == "subgroup" and split.held_out["progan"] == ["one-repo:test"]


def test_augment_returns_a_native_resolution_crop_of_the_requested_size():
    rng = np.random.default_rng(0)
    image = np.random.default_rng(1).integers(0, 255, (256, 300, 3), dtype=np.uint8)
    for _ in range(20):
        view = augment(image, 128, rng, AugmentSettings.fingerprint())
        assert view.shape == (128, 128, 3) and view.dtype == np.uint8
    untouched = augment(image, 128, rng, replace(AugmentSettings.fingerprint(), jpeg_prob=0.0, scale=(1.0, 1.0), flip=False))
    corners = np.argwhere((image[:256 - 127, :300 - 127] == untouched[0, 0]).all(axis=2))
    assert any((image[r:r + 128, c:c + 128] == untouched).all() for r, c in corners), \
        "without downscale and JPEG the crop must be copied pixel for pixel"


def test_balanced_sampling_draws_rare_classes_as_often_as_common_ones():
    labels = [0] * 90 + [1] * 10
    drawn = np.asarray(labels)[balanced_indices(labels, 4000, np.random.default_rng(0))]
    assert abs((drawn == 1).mean() - 0.5) < 0.05


def test_learning_rate_warms_up_from_above_zero_and_decays_by_cosine():
    factors = [lr_factor(step, 10, 100) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] < 0.05
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_undecodable_and_too_small_files_are_recorded_and_skipped(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.full((96, 96, 3), 128, dtype=np.uint8)).save(good)
    (tmp_path / "broken.png").write_bytes(good.read_bytes()[:60])
    Image.fromarray(np.zeros((70, 70, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    samples = [Sample(tmp_path / name, "real", name, name) for name in ("good.png", "broken.png", "small.png")]
    kept, pixels, bad = decode_samples(samples, min_side=80)
    assert [s.path.name for s in kept] == ["good.png"] and pixels[0].shape == (96, 96, 3)
    assert sorted(Path(entry["path"]).name for entry in bad) == ["broken.png", "small.png"]
    assert all(entry["error"] for entry in bad)
