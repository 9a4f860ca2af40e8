"""Evaluation (core.metrics, runners/evaluation.py behind scripts/evaluate.py): metrics equal hand-computed values and
sklearn's; perturbations reach core.images as files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

from runners import evaluation
from pipeline.fusion import ARCHITECTURES
from core.errors import InputError
from core.images import load_image
from core.metrics import attribution_metrics, detection_metrics, tpr_at_fpr
import pipeline as P
from tiny_models import png_bytes, tiny_branches

# Five real and five fake scores, ranked: F .95, F .9, R .8, F .7, F .5, R .4, F .35, R .3, R .2, R .1
IS_FAKE = [False] * 5 + [True] * 5
SCORES = [0.1, 0.2, 0.3, 0.4, 0.8, 0.35, 0.5, 0.7, 0.9, 0.95]


def test_detection_metrics_match_hand_counts_and_sklearn():
    metrics = detection_metrics(IS_FAKE, SCORES)
    assert metrics["roc_auc"] == pytest.approx(21 / 25) == roc_auc_score(IS_FAKE, SCORES)
    expected_ap = (1 / 1 + 2 / 2 + 3 / 4 + 4 / 5 + 5 / 7) / 5
    assert metrics["average_precision"] == pytest.approx(expected_ap) == average_precision_score(IS_FAKE, SCORES)
    assert metrics["tpr_at_fpr_1pct"] == pytest.approx(2 / 5)
    assert metrics["tpr_at_fpr_5pct"] == pytest.approx(2 / 5)
    assert tpr_at_fpr(IS_FAKE, SCORES, 0.2) == pytest.approx(4 / 5)
    assert metrics["tpr_at_threshold"] == pytest.approx(4 / 5) and metrics["fpr_at_threshold"] == pytest.approx(1 / 5)


def test_detection_metrics_without_both_classes_report_rates_but_no_auc():
    metrics = detection_metrics([True, True], [0.7, 0.2])
    assert metrics["roc_auc"] is None and metrics["tpr_at_threshold"] == 0.5


def test_attribution_metrics_count_unknown_and_real_as_errors_like_sklearn():
    true = ["progan", "progan", "progan", "stylegan2", "stylegan3"]
    predicted = ["progan", "progan", "unknown", "progan", "stylegan3"]
    closed = ["progan", "progan", "stylegan2", "progan", "stylegan3"]
    metrics = attribution_metrics(true, predicted, ARCHITECTURES, closed)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert metrics["closed_set_accuracy"] == pytest.approx(3 / 5)
    assert metrics["closed_set_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(true, closed))
    assert metrics["confusion"]["columns"] == ["progan", "stylegan2", "stylegan3", "unknown"]
    assert metrics["confusion"]["matrix"] == [[2, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]


def test_open_set_rates_split_unknown_real_and_forced_answers():
    rates = evaluation.open_set_rates(["unknown", "stylegan2", "real", "unknown"], [False, False, True, False])
    assert rates == {"n": 4, "unknown_rate": 0.5, "called_real_rate": 0.25, "undecided_rate": 0.0,
                     "known_class_rate": 0.25}


def test_undecided_answers_are_counted_per_class_and_are_neither_right_nor_wrong():
    def record(cls: str, label: str, p_fake: float | None) -> dict:
        return {"class": cls, "outcomes": {"fused": {"ran": True, "p_fake": p_fake, "label": label,
                                                     "closed_set": "stylegan2"}}}

    records = [record("real", "real", 0.1), record("real", "undecided", None), record("stylegan2", "stylegan2", 0.9),
               record("stylegan2", "undecided", None), record("stylegan2", "undecided", None),
               record("diffusion", "undecided", None), record("diffusion", "unknown", 0.8)]
    fused = evaluation.condition_metrics(records)["fused"]
    assert fused["undecided"] == {"diffusion": 1, "real": 1, "stylegan2": 2}
    assert fused["detection"]["n_real"] == 1 and fused["detection"]["n_fake"] == 2
    assert fused["attribution"]["n"] == 1 and fused["attribution"]["accuracy"] == 1.0
    assert fused["open_set"]["diffusion"] == {"n": 2, "unknown_rate": 0.5, "called_real_rate": 0.0,
                                              "undecided_rate": 0.5, "known_class_rate": 0.0}
    summary = evaluation.summary_markdown({"dataset": "d", "images_per_class": {}, "conditions": {
        "original": {"n_images": 7, "n_errors": 0, "metrics": {"fused": fused}}}})
    assert "| undecided |" in summary and "diffusion 1, real 1, stylegan2 2 |" in summary


def test_perturbations_give_files_core_images_reads_as_that_format():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (256, 200, 3), dtype=np.uint8)
    jpeg = load_image(evaluation.PERTURBATIONS["jpeg50"](pixels))
    assert jpeg.format == "JPEG" and (jpeg.width, jpeg.height) == (200, 256)
    assert np.abs(jpeg.pixels.astype(int) - pixels).mean() > 5
    small = load_image(evaluation.PERTURBATIONS["down0.25"](np.concatenate([pixels, pixels[:, :56]], axis=1)))
    assert small.format == "PNG" and (small.width, small.height) == (64, 64)
    crop = load_image(evaluation.PERTURBATIONS["crop0.5"](pixels))
    assert np.array_equal(crop.pixels, pixels[64:192, 50:150])


def test_dataset_without_a_real_folder_is_refused(tmp_path):
    (tmp_path / "stylegan2").mkdir()
    (tmp_path / "stylegan2" / "0.png").write_bytes(png_bytes(np.zeros((96, 96, 3), dtype=np.uint8)))
    with pytest.raises(InputError, match="needs a 'real' class"):
        evaluation.collect_dataset(tmp_path)


def test_end_to_end_report_per_branch_and_condition(tmp_path):
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    for cls, count in (("real", 3), ("stylegan2", 3), ("progan", 2), ("diffusion", 2)):
        (data / cls).mkdir(parents=True)
        for index in range(count):
            (data / cls / f"{index}.png").write_bytes(png_bytes(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)))
    out = tmp_path / "report"
    trust_tiny = P.FusionConfig(trust_unmeasured=("clip_probe", "fingerprint_net", "latent_svm"))
    pipe = P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", batch_size=4, fusion=trust_tiny),
                      tiny_branches(tmp_path / "models"))
    items = evaluation.collect_dataset(data, limit=2)
    evaluation.evaluate_dataset(pipe, items, ["original", "jpeg75"], out, str(data), progress=False)
    report = json.loads((out / "metrics.json").read_text())
    assert report["images_per_class"] == {"diffusion": 2, "progan": 2, "real": 2, "stylegan2": 2}
    assert set(report["conditions"]) == {"original", "jpeg75"}
    fused = report["conditions"]["jpeg75"]["metrics"]["fused"]
    assert fused["detection"]["n_real"] == 2 and fused["detection"]["n_fake"] == 6
    assert fused["attribution"]["n"] == 4 and set(fused["open_set"]) == {"diffusion"}
    assert report["conditions"]["original"]["metrics"]["clip_probe"]["attribution"] is None
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 16
    jpeg_fused = [r["outcomes"]["fused"] for r in records if r["condition"] == "jpeg75"]
    truth = [r["class"] != "real" for r in records if r["condition"] == "jpeg75"]
    assert fused["detection"]["roc_auc"] == pytest.approx(roc_auc_score(truth, [o["p_fake"] for o in jpeg_fused]))
    assert "## jpeg75" in (out / "summary.md").read_text()
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG" and (out / "roc_original.png").is_file()
