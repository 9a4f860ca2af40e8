"""The CV's stacker is fully nested: nothing it learns from comes from a model that saw the held-out fold."""

from __future__ import annotations

import numpy as np
import pytest

from core.source_holdout import KNOWN_GANS, Scores, grouped_source_folds
from detector.spectral import TEST_CONDITIONS
from runners import cv_candidates
from runners.cv_candidates import inner_answers, stack_partner, stacker_fold


def _face_set():
    labels = np.array((["real"] * 4 + ["progan"] * 4 + ["stylegan2"] * 4 + ["stylegan3"] * 4) * 3)
    sources = np.array([f"{label}-{index // 16}" for index, label in enumerate(labels)])
    return labels, sources


def test_the_stacker_learns_only_from_models_that_never_saw_the_held_out_fold(monkeypatch):
    labels, sources = _face_set()
    fits = []

    def recording_cue_fold(cue, tests, labels, sources, train, test, recipe=None, made=None):
        fits.append((cue, set(train.tolist()), set(test.tolist()), recipe is not None, made is not None))
        scored = {c: Scores(np.full(len(test), 0.5), np.tile([0.2, 0.3, 0.5], (len(test), 1))) for c in TEST_CONDITIONS}
        return scored, 1.0

    monkeypatch.setattr(cv_candidates, "cue_fold", recording_cue_fold)
    _, train, held_out = grouped_source_folds(sources, 3, 0, labels)[0]
    answers = inner_answers(["dct-codecblind-mfr", "geometry"], {}, {"spectral": None}, ("made",), labels, sources, train)

    assert fits and all(not (fit_train | fit_test) & set(held_out.tolist()) for _, fit_train, fit_test, _, _ in fits)
    for cue in ("dct", "geometry"):
        scored = [index for name, _, fit_test, _, _ in fits if name == cue for index in fit_test]
        assert sorted(scored) == sorted(train.tolist()), "every training image is answered once, by a model without it"
    assert {(name, recipe, made) for name, _, _, recipe, made in fits} == {("dct", True, True), ("geometry", False, False)}
    assert np.all(answers["dct-codecblind-mfr"]["attribution"]["clean"][train] == [0.2, 0.3, 0.5])


def test_the_stacker_is_fitted_on_inner_answers_and_applied_to_the_held_out_fold_s_own():
    labels, sources = _face_set()
    _, train, test = grouped_source_folds(sources, 3, 0, labels)[0]
    rng = np.random.default_rng(0)
    truth = np.array([KNOWN_GANS.index(label) if label in KNOWN_GANS else 0 for label in labels])
    informative = np.eye(3)[truth] * 0.8 + 0.1
    noise = rng.dirichlet(np.ones(3), len(labels))
    fake = (labels != "real").astype(float) * 0.8 + 0.1

    def answers(attribution):
        return {"a": {"fake": dict.fromkeys(TEST_CONDITIONS, fake),
                      "attribution": dict.fromkeys(TEST_CONDITIONS, attribution)}}

    # inner answers say the truth, the held-out fold's own answers are noise: the stacker must read the latter
    scores = stacker_fold(answers(informative), answers(noise), labels, train, test)
    known = np.isin(labels[test], KNOWN_GANS)
    expected = stacker_fold(answers(informative), answers(informative), labels, train, test)
    assert not np.allclose(scores["clean"].attribution, expected["clean"].attribution)
    assert np.mean(expected["clean"].attribution[known].argmax(1) == truth[test][known]) == 1.0


def test_only_cue_candidates_can_be_stacked():
    assert stack_partner("dct-codecblind-mfr") == ("dct", True, True)
    assert stack_partner("colour") == ("colour", False, False)
    with pytest.raises(ValueError, match="refit inside each outer fold"):
        stack_partner("residual-codecblind-mfr")
