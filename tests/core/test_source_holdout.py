"""Leave-one-source-out protocol on synthetic labels and scores: no face set needed."""

from __future__ import annotations

import numpy as np
import pytest

from core.source_holdout import (HeldOutPredictions, Scores, choose_threshold, leave_one_source_out, skill_record,
                                 source_folds, source_table, table_markdown)

LABELS = ["real"] * 4 + ["stylegan2"] * 4 + ["real"] * 3 + ["progan"] * 3 + ["stylegan3"] * 2
SOURCES = ["unsplash-pair"] * 8 + ["celeba"] * 3 + ["pggan-a"] * 3 + ["sg3"] * 2


def test_held_out_source_never_appears_in_training():
    seen = []

    def fit(train):
        seen.append(set(np.asarray(SOURCES)[train]))
        return None

    def score(model, test, condition):
        held = set(np.asarray(SOURCES)[test])
        assert len(held) == 1 and not held & seen[-1]
        return Scores(np.zeros(len(test)))

    leave_one_source_out(LABELS, SOURCES, fit, score)
    assert len(seen) == 4


def test_real_fake_pair_sharing_a_source_is_held_out_together():
    folds = {name: test for name, _, test in source_folds(SOURCES)}
    assert set(folds) == {"unsplash-pair", "celeba", "pggan-a", "sg3"}
    pair_labels = set(np.asarray(LABELS)[folds["unsplash-pair"]])
    assert pair_labels == {"real", "stylegan2"}


def _predictions(fake: np.ndarray, attribution: np.ndarray | None = None) -> HeldOutPredictions:
    return HeldOutPredictions(np.asarray(LABELS), np.asarray(SOURCES), {"clean": fake, "jpeg75": fake},
                              {"clean": attribution, "jpeg75": attribution})


def test_one_class_source_is_scored_against_held_out_images_of_the_other_class():
    fake = np.where(np.asarray(LABELS) == "real", 0.2, 0.8)
    fake[8:11] = 0.9  # the celeba reals look faker than every fake
    table = source_table(_predictions(fake), threshold=0.5)
    rows = {row["source"]: row for row in table["conditions"]["clean"]["sources"]}
    assert rows["unsplash-pair"]["auc_against"] == "own source" and rows["unsplash-pair"]["auc"] == 1.0
    assert rows["celeba"]["auc_against"] == "held-out fakes" and rows["celeba"]["auc"] == 0.0
    assert rows["celeba"]["real_recall"] == 0.0 and rows["pggan-a"]["fake_recall"] == 1.0


def test_threshold_keeps_mean_real_false_positive_rate_within_budget():
    fake = np.linspace(0.0, 1.0, len(LABELS))
    predictions = _predictions(fake)
    threshold = choose_threshold(predictions, ["clean", "jpeg75"], max_real_fpr=0.25)
    summary = source_table(predictions, threshold)["conditions"]["clean"]["summary"]
    assert summary["real_false_positive_rate"] <= 0.25
    next_lower = fake[(np.asarray(LABELS) == "real") & (fake < threshold)].max()
    looser = source_table(predictions, next_lower)["conditions"]["clean"]["summary"]
    assert looser["real_false_positive_rate"] > 0.25


def test_attribution_accuracy_counts_only_known_gan_images_per_source():
    attribution = np.tile([0.1, 0.8, 0.1], (len(LABELS), 1))  # always "stylegan2"
    table = source_table(_predictions(np.full(len(LABELS), 0.5), attribution), threshold=0.5)
    rows = {row["source"]: row for row in table["conditions"]["clean"]["sources"]}
    assert rows["unsplash-pair"]["attribution_accuracy"] == 1.0 and rows["unsplash-pair"]["n_known_gan"] == 4
    assert rows["pggan-a"]["attribution_accuracy"] == 0.0 and rows["celeba"]["attribution_accuracy"] is None
    assert table["conditions"]["clean"]["summary"]["attribution_accuracy"] == pytest.approx(1 / 3)


def test_skill_record_has_the_fields_fusion_reads_and_null_attribution_when_absent():
    fake = np.where(np.asarray(LABELS) == "real", 0.1, 0.9)
    table = source_table(_predictions(fake), threshold=0.5)
    skill = skill_record(table)
    assert skill["protocol"] == "leave-one-source-out" and skill["sources"] == 4
    assert skill["real_vs_fake"]["auc"] == 1.0 and skill["real_vs_fake"]["real_false_positive_rate_jpeg75"] == 0.0
    assert skill["attribution"] is None
    assert "| celeba | 3 | 0 |" in table_markdown(table, "test")


def test_mismatched_labels_and_sources_are_refused():
    with pytest.raises(ValueError, match="3 labels but 2 sources"):
        leave_one_source_out(["real"] * 3, ["a", "b"], lambda train: None, lambda m, t, c: Scores(np.zeros(len(t))))
