"""Evidence pictures: the residual spectrum shows periodic patterns where they are; Grad-CAM maps fit the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detector.fingerprint_net import FingerprintConfig, FingerprintNet
from detector.gradcam import gradcam, overlay, tile_origins
from detector.spectrum import residual_spectrum, spectrum_picture


def _textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + rng.normal(0, 8, (height, width))
    return np.clip(np.stack([base, 0.8 * base + 20, 255 - base], axis=-1), 0, 255).astype(np.uint8)


def _stripes(height: int, width: int, period: int) -> np.ndarray:
    """A gentle ramp plus vertical stripes of the given period, like an up-sampling grid."""
    y, x = np.mgrid[0:height, 0:width]
    values = 100 + 0.2 * x + 0.1 * y + 12 * np.cos(2 * np.pi * x / period)
    return np.repeat(np.clip(values, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def tiny_model() -> FingerprintNet:
    torch.manual_seed(0)
    return FingerprintNet(FingerprintConfig.tiny()).eval()


@pytest.mark.parametrize("period", [2, 4, 8])
def test_periodic_pattern_gives_a_spectral_peak_at_its_frequency(period):
    spectrum = residual_spectrum(_stripes(512, 512, period))
    size = spectrum.shape[0]
    centre = size // 2
    masked = spectrum.copy()
    masked[centre - 4:centre + 5, centre - 4:centre + 5] = -np.inf
    row, col = np.unravel_index(np.argmax(masked), masked.shape)
    assert row == centre
    assert abs(col - centre) == size // period


def test_spectrum_is_square_at_native_resolution_and_not_constant():
    spectrum = residual_spectrum(_textured(100, 130))
    assert spectrum.shape == (100, 100) and spectrum.dtype == np.float32
    assert spectrum.std() > 0.1
    assert residual_spectrum(_textured(600, 700)).shape == (256, 256)


def test_spectrum_picture_is_a_colour_image_with_detail():
    picture = spectrum_picture(_stripes(256, 256, 4))
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8
    assert picture.reshape(-1, 3).std(axis=0).max() > 10


def test_spectrum_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="uint8"):
        residual_spectrum(np.zeros((80, 80), dtype=np.float32))


@pytest.mark.parametrize("shape", [(64, 64), (100, 130), (300, 200)])
def test_gradcam_map_has_the_input_size_values_in_unit_range_and_is_not_constant(tiny_model, shape):
    heat = gradcam(tiny_model, [_textured(*shape)])[0]
    assert heat.shape == shape and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    assert heat.std() > 0.01


def test_tiles_cover_an_image_larger_than_the_crop_edge_to_edge():
    origins = tile_origins(300, 200, 64)
    covered = np.zeros((300, 200), dtype=bool)
    for top, left in origins:
        covered[top:top + 64, left:left + 64] = True
    assert covered.all()
    assert max(top for top, _ in origins) == 300 - 64 and max(left for _, left in origins) == 200 - 64


def test_gradcam_explains_the_requested_class_not_always_the_same_one(tiny_model):
    image = _textured(128, 128)
    for_real = gradcam(tiny_model, [image], target="real")[0]
    for_stylegan2 = gradcam(tiny_model, [image], target="stylegan2")[0]
    assert np.abs(for_real - for_stylegan2).max() > 0.05


def test_gradcam_refuses_a_class_the_model_does_not_have(tiny_model):
    with pytest.raises(ValueError, match="diffusion"):
        gradcam(tiny_model, [_textured(64, 64)], target="diffusion")


def test_overlay_is_an_rgb_image_of_the_input_size_and_refuses_a_foreign_heatmap():
    image = _textured(100, 130)
    heat = np.zeros((100, 130), dtype=np.float32)
    heat[:50] = 1.0
    blended = overlay(image, heat)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    np.testing.assert_array_equal(blended[60:], image[60:])
    assert np.abs(blended[:50].astype(int) - image[:50]).mean() > 5
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, np.zeros((256, 256), dtype=np.float32))
