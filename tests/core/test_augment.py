"""One augmentation settings type: each trainer's recipe is a preset of the same fields."""

from __future__ import annotations

import pytest

from core.augment import KERNELS, AugmentSettings


def test_each_trainer_recipe_is_a_preset():
    assert AugmentSettings.analyst() == AugmentSettings()
    assert AugmentSettings.none().jpeg_prob == AugmentSettings.none().resize_prob == 0.0
    assert AugmentSettings.reencoded().jpeg_prob == 0.9
    fingerprint = AugmentSettings.fingerprint()
    assert (fingerprint.jpeg_prob, fingerprint.jpeg_quality, fingerprint.scale) == (1.0, (60, 100), (0.5, 1.0))
    assert fingerprint.blur_prob == fingerprint.noise_prob == 0.0
    spectral = AugmentSettings.spectral()
    assert (spectral.views, spectral.jpeg_prob, spectral.jpeg_quality, spectral.scale) == (4, 0.8, (50, 100), (0.25, 1.0))
    assert (spectral.blur_prob, spectral.blur_sigma, spectral.noise_prob, spectral.noise_sigma) == (0.2, (0.3, 1.0), 0.2,
                                                                                                   (1.0, 3.0))


def test_an_unknown_kernel_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="nearest, bilinear, bicubic, lanczos"):
        AugmentSettings(kernels=("box",))
    assert set(AugmentSettings().kernels) == set(KERNELS)
