"""Colour statistics: clipped-pixel fractions, histograms and moments that a flip or JPEG cannot move much."""

from __future__ import annotations

import numpy as np
import pytest

from detector.colour_stats import FEATURE_NAMES, HISTOGRAM_BINS, colour_features
from detector.fingerprint_data import jpeg_reencode


def _feature(features: np.ndarray, name: str) -> float:
    return float(features[FEATURE_NAMES.index(name)])


def _photo(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A smooth, mostly grey picture whose highlights and shadows clip, as a camera's do."""
    from PIL import Image

    cells = (size // 8, size // 8)
    noise = 100 * rng.normal(size=(*cells, 1)) + 10 * rng.normal(size=(*cells, 3))
    small = Image.fromarray(np.clip(128 + noise, 0, 255).astype(np.uint8))
    return np.asarray(small.resize((size, size), Image.Resampling.BICUBIC))


def test_clipped_fractions_count_saturated_and_underexposed_pixels():
    image = np.full((10, 10, 3), 128, np.uint8)
    image[0, :5] = (255, 10, 10)      # 5 saturated (one channel at 255)
    image[1, :3] = (3, 2, 5)          # 3 under-exposed (every channel ≤ 5)
    image[2, :2] = (12, 4, 4)         # under-exposed at neither level: red is 12
    features = colour_features(image)
    assert _feature(features, "saturated_255") == pytest.approx(0.05)
    assert _feature(features, "underexposed_5") == pytest.approx(0.03)
    assert _feature(features, "underexposed_10") == pytest.approx(0.03)


def test_histograms_are_fractions_and_a_grey_image_has_no_saturation():
    features = colour_features(np.full((8, 8, 3), 200, np.uint8))
    saturation = [_feature(features, f"saturation_hist{i}") for i in range(HISTOGRAM_BINS)]
    value = [_feature(features, f"value_hist{i}") for i in range(HISTOGRAM_BINS)]
    assert saturation[0] == 1.0 and sum(saturation) == pytest.approx(1.0)
    assert value[200 * HISTOGRAM_BINS // 256] == 1.0


def test_a_range_squashed_image_has_fewer_clipped_pixels_than_the_photo():
    photo = _photo(np.random.default_rng(0))
    squashed = (16 + photo.astype(np.float32) * 0.85).astype(np.uint8)   # a tanh-like output never reaches the ends
    plain, gan = colour_features(photo), colour_features(squashed)
    assert _feature(plain, "saturated_255") > 0.01 and _feature(gan, "saturated_255") == 0.0
    assert _feature(plain, "underexposed_5") > 0.01 and _feature(gan, "underexposed_5") == 0.0


def test_features_ignore_a_flip_and_barely_move_under_jpeg_q75():
    photo = _photo(np.random.default_rng(1), 128)
    features = colour_features(photo)
    np.testing.assert_allclose(colour_features(np.ascontiguousarray(photo[:, ::-1])), features, atol=1e-6)
    moments = [FEATURE_NAMES.index(f"{c}_{m}") for c in "rgb" for m in ("mean", "std")]
    np.testing.assert_allclose(colour_features(jpeg_reencode(photo, 75))[moments], features[moments], atol=0.02)


def test_a_non_rgb_array_is_refused():
    with pytest.raises(ValueError, match="uint8 RGB"):
        colour_features(np.zeros((4, 4), np.uint8))
