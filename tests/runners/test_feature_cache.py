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


class StandInLandmarks:
    """A stand-in for dlib: a fixed spread of points over the box (the whole frame), counting detections."""

    def __init__(self):
        self.detections = 0

    def find(self, pixels: np.ndarray):
        self.detections += 1
        box = (0.0, 0.0, float(pixels.shape[1]), float(pixels.shape[0]))
        return self.predict(pixels, box), True, box

    def predict(self, pixels: np.ndarray, box) -> np.ndarray:
        grid = np.stack(np.meshgrid(np.linspace(0.2, 0.8, 17), np.linspace(0.2, 0.8, 4)), -1).reshape(-1, 2)
        return (box[:2] + grid * (box[2] - box[0], box[3] - box[1])).astype(np.float32)


def test_a_changed_recipe_is_a_new_cache_and_the_old_one_is_untouched(tmp_path):
    files = _files(tmp_path)
    recipe = CodecBlindRecipe()
    cache = FeatureCache(tmp_path / "cache", files, recipe_views(recipe, 2))
    with pytest.raises(InputError, match="not computed"):
        cache.load()
    cache.compute()
    first = cache.load()
    assert first["colour"].shape[:2] == (3, 2) and "geometry" not in first

    changed = FeatureCache(tmp_path / "cache", files, recipe_views(replace(recipe, lossless_prob=0.9), 2))
    assert changed.folder != cache.folder and changed.missing() == files
    changed.compute()
    assert not np.allclose(changed.load()["spectral"], first["spectral"])
    np.testing.assert_array_equal(FeatureCache(tmp_path / "cache", files, recipe_views(recipe, 2)).load()["colour"],
                                  first["colour"])


def test_workers_started_apart_share_the_images_without_overlap(tmp_path):
    """Worker 0 has already written its first image when worker 1 starts: worker 1 still takes only its own."""
    files = _files(tmp_path)
    cache = FeatureCache(tmp_path / "cache", files, recipe_views(CodecBlindRecipe(), 1))
    FeatureCache(tmp_path / "cache", files[:1], cache.views).compute()
    cache.compute(worker=1, workers=2)
    assert cache.missing() == [files[2]], "worker 1 computes images 1 mod 2 only, whatever worker 0 has done"


def test_condition_cache_holds_landmarks_and_geometry_and_resumes_per_image(tmp_path):
    files = _files(tmp_path)
    finder = StandInLandmarks()
    cache = FeatureCache(tmp_path / "cache", files, condition_views())
    cache.compute(finder, worker=1, workers=2)
    assert cache.missing() == [files[0], files[2]] and finder.detections == 1
    cache.compute(finder)
    arrays = cache.load()
    assert finder.detections == 3, "one detection per image: JPEG and downscale re-predict in the same box"
    assert arrays["geometry"].shape[:2] == (3, 3) and arrays["frame"][0, 2].tolist() == [64, 77]
    # the stand-in's landmarks are fractions of the box, scaled with the frame: the same geometry in every view
    np.testing.assert_allclose(arrays["geometry"][:, 0], arrays["geometry"][:, 2], atol=0.02)
    # a cache over a subset reads the same entries
    subset = FeatureCache(tmp_path / "cache", files[1:], condition_views()).load()
    np.testing.assert_array_equal(subset["colour"], arrays["colour"][1:])
    cache.compute(finder)
    assert finder.detections == 3
