"""Source-grouped K-fold: whole sources per fold, pairs together, balanced, fixed by the seed."""

from __future__ import annotations

import numpy as np
import pytest

from core.source_holdout import Scores, fold_sources, grouped_source_folds, leave_one_source_out

SIZES = {"pair-a": 40, "pair-b": 30, "celeba": 25, "pgan-1": 20, "pgan-2": 18, "sg3": 15, "sg2": 12, "ffhq": 10,
         "studio": 8, "sd": 6, "tiny": 2}
REAL_SOURCES = {"pair-a", "pair-b", "celeba", "ffhq", "studio"}


def _dataset() -> tuple[np.ndarray, np.ndarray]:
    sources, labels = [], []
    for name, size in SIZES.items():
        sources += [name] * size
        if name.startswith("pair"):
            labels += ["real"] * (size // 2) + ["stylegan2"] * (size - size // 2)
        else:
            labels += ["real" if name in REAL_SOURCES else "progan"] * size
    return np.asarray(sources), np.asarray(labels)


def test_every_source_and_pair_lands_whole_in_exactly_one_fold():
    sources, labels = _dataset()
    folds = grouped_source_folds(sources, k=4, seed=0, labels=labels)
    tests = np.concatenate([test for _, _, test in folds])
    assert sorted(tests.tolist()) == list(range(len(sources)))
    for _, train, test in folds:
        assert not set(sources[train]) & set(sources[test])
        assert set(labels[test[sources[test] == "pair-a"]]) in (set(), {"real", "stylegan2"})


def test_folds_are_fixed_by_the_seed():
    sources, labels = _dataset()
    first = fold_sources(grouped_source_folds(sources, 4, seed=3, labels=labels), sources)
    again = fold_sources(grouped_source_folds(sources, 4, seed=3, labels=labels), sources)
    assert first == again
    others = [fold_sources(grouped_source_folds(sources, 4, seed=s, labels=labels), sources) for s in range(10)]
    assert any(other != first for other in others)


def test_folds_are_balanced_by_count_and_each_holds_real_photos():
    sources, labels = _dataset()
    folds = grouped_source_folds(sources, k=4, seed=0, labels=labels)
    counts = [len(test) for _, _, test in folds]
    assert max(counts) - min(counts) <= max(SIZES.values())
    assert all((labels[test] == "real").any() for _, _, test in folds)


def test_grouped_folds_plug_into_the_held_out_protocol():
    sources, labels = _dataset()
    folds = grouped_source_folds(sources, k=3, seed=0, labels=labels)
    result = leave_one_source_out(labels, sources, lambda train: None,
                                  lambda model, test, condition: Scores(np.zeros(len(test))), folds=folds)
    assert not np.isnan(result.fake["clean"]).any()


def test_too_many_folds_for_the_sources_is_refused():
    with pytest.raises(ValueError, match="folds"):
        grouped_source_folds(["a", "b"], k=3)
