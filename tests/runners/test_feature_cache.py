"""The feature cache: resumable, and a changed recipe reads from a new cache instead of stale features."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from detector.codec_blind import CodecBlindRecipe
from runners.feature_cache import FeatureCache, condition_views, recipe_views


def _files(tmp_path, count: int = 3) -> list:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = tmp_path / "real" / f"face{index}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (96, 80, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _landmarks(pixels: np.ndarray) -> tuple[np.ndarray, bool]:
    """A stand-in for dlib: a fixed spread of points scaled to the frame."""
    height, width = pixels.shape[:2]
    grid = np.stack(np.meshgrid(np.linspace(0.2, 0.8, 17), np.linspace(0.2, 0.8, 4)), -1).reshape(-1, 2)[:68]
    return grid * (width, height), True


def test_a_changed_recipe_is_a_new_cache_and_the_old_one_is_untouched(tmp_path):
    files = _files(tmp_path)
    recipe = CodecBlindRecipe()
    cache = FeatureCache(tmp_path / "cache", files, recipe_views(recipe, 2))
    with pytest.raises(InputError, match="not computed"):
        cache.load()
    cache.compute(None)
    first = cache.load()
    assert first["colour"].shape[:2] == (3, 2) and "geometry" not in first

    changed = FeatureCache(tmp_path / "cache", files, recipe_views(replace(recipe, lossless_prob=0.9), 2))
    assert changed.folder != cache.folder and changed.missing() == changed.chunks()
    changed.compute(None)
    assert not np.allclose(changed.load()["spectral"], first["spectral"])
    np.testing.assert_array_equal(FeatureCache(tmp_path / "cache", files, recipe_views(recipe, 2)).load()["colour"],
                                  first["colour"])


def test_condition_cache_holds_landmarks_and_geometry_and_resumes(tmp_path):
    files = _files(tmp_path)
    cache = FeatureCache(tmp_path / "cache", files, condition_views())
    cache.compute(_landmarks)
    arrays = cache.load()
    assert arrays["geometry"].shape[:2] == (3, 3) and arrays["frame"][0, 2].tolist() == [64, 77]
    # the as-stored and JPEG views share a frame, so the scaled stand-in landmarks give the same geometry
    np.testing.assert_allclose(arrays["geometry"][:, 0], arrays["geometry"][:, 1], atol=1e-6)
    calls = []
    cache.compute(lambda pixels: calls.append(1) or _landmarks(pixels))
    assert not calls
