"""Made-from-real fakes carry their up-sampling decoder's period-2 spectral peak; their real twins do not."""

from __future__ import annotations

import numpy as np
import pytest

from detector.made_from_real import DecoderSpec, made_from_real, made_from_real_set


def _pink_photo(rng: np.random.Generator, side: int = 128) -> np.ndarray:
    """A lossless natural-looking photo: 1/f noise per channel, no up-sampling anywhere in its history."""
    frequency = np.fft.fftfreq(side)
    radius = np.hypot(frequency[:, None], frequency[None, :])
    radius[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=(side, side)) + 1j * rng.normal(size=(side, side))) / radius
        plane = np.real(np.fft.ifft2(spectrum))
        channels.append((plane - plane.mean()) / plane.std() * 40 + 128)
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def nyquist_peak(pixels: np.ndarray) -> float:
    """Power at the Nyquist frequency (period 2, the ×2 up-sampling period) of the mean |first| and |second|
    difference profile along each axis, over the median power of the other frequencies; the largest of the four."""
    grey = pixels.astype(np.float64).mean(axis=2)
    peaks = []
    for axis in (0, 1):
        for order in (1, 2):
            profile = np.abs(np.diff(grey, n=order, axis=axis)).mean(axis=1 - axis)
            profile = profile[:len(profile) // 2 * 2]
            power = np.abs(np.fft.rfft(profile - profile.mean())) ** 2
            peaks.append(power[-1] / np.median(power[1:-1]))
    return float(max(peaks))


@pytest.mark.parametrize("kind", ["transposed", "nearest", "bilinear"])
def test_made_from_real_fake_carries_the_upsampling_peak_and_its_twin_does_not(kind):
    spec = DecoderSpec(upsamplers=(kind,))
    for seed in range(3):
        photo = _pink_photo(np.random.default_rng(seed))
        fake = made_from_real(photo, seed, spec)
        assert fake.shape == photo.shape and fake.dtype == np.uint8
        assert nyquist_peak(photo) < 10
        assert nyquist_peak(fake) > 50
        # it is still the same face: the fake stays close to its twin
        assert np.abs(fake.astype(float) - photo.astype(float)).mean() < 25


def test_a_photo_always_gets_the_same_twin_and_decoders_differ_by_seed():
    photo = _pink_photo(np.random.default_rng(4))
    first, again = made_from_real_set([photo, photo], ["real/a.jpg", "real/a.jpg"])
    other = made_from_real_set([photo], ["real/b.jpg"])[0]
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
