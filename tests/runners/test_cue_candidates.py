"""The cue candidates of the source-grouped CV: which rows a fold's model is fitted on, and that it scores."""

from __future__ import annotations

import numpy as np
import pytest

from detector.face_geometry import FEATURE_NAMES, mirrored
from runners.cv_candidates import CUE_C_GRID, cue_fold, cue_training_rows

LABELS = np.array(["real", "real", "stylegan2", "progan", "stylegan3", "real"])


def _arrays(rng: np.random.Generator, views: int, n: int = len(LABELS)) -> dict[str, np.ndarray]:
    return {"geometry": rng.normal(size=(n, views, len(FEATURE_NAMES))).astype(np.float32),
            "colour": rng.normal(size=(n, views, 5)).astype(np.float32)}


def test_recipe_geometry_rows_are_the_stored_face_and_its_mirror_and_a_made_fake_carries_its_twins():
    rng = np.random.default_rng(0)
    tests, recipe = _arrays(rng, 3), _arrays(rng, 2)
    made = (np.array([0, 1, 5]), _arrays(rng, 2, 3))
    train = np.array([0, 2, 3, 4, 5])
    rows, targets = cue_training_rows("geometry", tests, LABELS, train, recipe, made)
    # 5 training images × (stored, mirrored) + the fakes made from reals 0 and 5 (real 1 is held out)
    assert len(rows) == 14 and list(targets[-4:]) == ["fake"] * 4
    np.testing.assert_array_equal(rows[1], mirrored(tests["geometry"][0, 0]))
    np.testing.assert_array_equal(rows[10], tests["geometry"][0, 0])
    assert list(targets[:2]) == ["real", "real"]


def test_recipe_colour_rows_are_every_recipe_view_and_made_fakes_need_the_recipe():
    rng = np.random.default_rng(1)
    tests, recipe = _arrays(rng, 3), _arrays(rng, 2)
    made = (np.array([0, 1, 5]), _arrays(rng, 2, 3))
    train = np.array([1, 2, 3, 4])
    rows, targets = cue_training_rows("colour", tests, LABELS, train, recipe, made)
    assert len(rows) == 4 * 2 + 2 and list(targets[-2:]) == ["fake", "fake"]
    np.testing.assert_array_equal(rows[-2:], made[1]["colour"][1])
    stored, _ = cue_training_rows("colour", tests, LABELS, train)
    np.testing.assert_array_equal(stored, tests["colour"][train, 0])
    with pytest.raises(ValueError, match="recipe"):
        cue_training_rows("colour", tests, LABELS, train, None, made)


def test_a_fold_scores_every_test_image_in_every_condition_with_a_nested_c():
    rng = np.random.default_rng(2)
    labels = np.repeat(["real", "progan", "stylegan2", "stylegan3"], 12)
    sources = np.array([f"{label}-{i % 3}" for i, label in enumerate(labels)])
    tests = {"colour": rng.normal(size=(48, 3, 5)).astype(np.float32)}
    tests["colour"][labels != "real"] += 2.0
    train, test = np.flatnonzero(~np.char.endswith(sources, "2")), np.flatnonzero(np.char.endswith(sources, "2"))
    scores, C = cue_fold("colour", tests, labels, sources, train, test)
    assert C in CUE_C_GRID and set(scores) == {"clean", "jpeg75", "half"}
    fake = scores["clean"].fake
    assert fake.shape == (16,) and fake[labels[test] != "real"].mean() > fake[labels[test] == "real"].mean()
    assert scores["half"].attribution.shape == (16, 3)
