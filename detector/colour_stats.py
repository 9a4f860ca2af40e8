"""Colour statistics of a whole image: a cue of how the pixels were formed, mostly untouched by the codec.

McCloskey & Albright (2019) found that GAN generators, whose last layer squashes values into a range, produce
fewer saturated and fewer under-exposed pixels than a camera does, and that this survives compression: JPEG
moves a pixel by a few levels and averages chroma, it does not create or remove clipped highlights. The features
(`colour_features`, one row per image):
- the fraction of pixels with any channel at 255 (saturated) and with every channel at most 5 (under-exposed),
  and the same at the milder levels 250 / 10;
- a 16-bin histogram of the HSV saturation and of the luma (value), as fractions;
- per RGB channel: mean, standard deviation, skewness and excess kurtosis (in [0, 1] units);
- the mean and spread of the two chroma channels (YCbCr) and their correlation with luma.

Every feature is a fraction or a moment of the pixel values, so a downscale of the whole image changes it only
through the averaging of neighbouring pixels, and a horizontal flip not at all.
"""

from __future__ import annotations

import numpy as np

FEATURE_VERSION = "colour-stats-1"
HISTOGRAM_BINS = 16
_CLIP_LEVELS = ((255, 5), (250, 10))
_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _names() -> list[str]:
    names = []
    for high, low in _CLIP_LEVELS:
        names += [f"saturated_{high}", f"underexposed_{low}"]
    names += [f"saturation_hist{i}" for i in range(HISTOGRAM_BINS)]
    names += [f"value_hist{i}" for i in range(HISTOGRAM_BINS)]
    names += [f"{channel}_{moment}" for channel in "rgb" for moment in ("mean", "std", "skew", "kurtosis")]
    names += ["cb_mean", "cb_std", "cr_mean", "cr_std", "cb_luma_corr", "cr_luma_corr"]
    return names


FEATURE_NAMES = tuple(_names())


def colour_features(image: np.ndarray) -> np.ndarray:
    """(len(FEATURE_NAMES),) float32 colour statistics of one H×W×3 uint8 RGB image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"colour statistics need an H×W×3 uint8 RGB image, got shape {image.shape}, {image.dtype}")
    pixels = image.reshape(-1, 3)
    brightest, darkest = pixels.max(axis=1), pixels.min(axis=1)
    clipped = []
    for high, low in _CLIP_LEVELS:
        clipped += [np.mean(brightest >= high), np.mean(brightest <= low)]
    chroma_range = (brightest - darkest).astype(np.float32)
    saturation = chroma_range / np.maximum(brightest, 1).astype(np.float32)
    # bins of width 1/16 on [0, 1], the last one closed (saturation 1.0 and value 255 fall in it)
    saturation_bins = np.minimum((saturation * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    value_bins = brightest.astype(np.int64) * HISTOGRAM_BINS // 256
    histograms = [np.bincount(bins, minlength=HISTOGRAM_BINS) / len(bins) for bins in (saturation_bins, value_bins)]
    values = pixels.astype(np.float32) / 255.0
    moments = np.concatenate([_moments(values[:, c]) for c in range(3)])
    ycbcr = values @ _YCBCR.T.astype(np.float32)
    chroma = [ycbcr[:, 1].mean(), ycbcr[:, 1].std(), ycbcr[:, 2].mean(), ycbcr[:, 2].std(),
              _correlation(ycbcr[:, 1], ycbcr[:, 0]), _correlation(ycbcr[:, 2], ycbcr[:, 0])]
    return np.concatenate([clipped, *histograms, moments, chroma]).astype(np.float32)


def _moments(channel: np.ndarray) -> np.ndarray:
    mean = float(channel.mean(dtype=np.float64))
    centred = channel - mean
    squared = centred * centred
    variance = float(squared.mean(dtype=np.float64))
    if variance < 1e-12:
        return np.array([mean, 0.0, 0.0, 0.0])
    skew = float((squared * centred).mean(dtype=np.float64)) / variance ** 1.5
    kurtosis = float((squared * squared).mean(dtype=np.float64)) / variance ** 2 - 3.0
    return np.array([mean, np.sqrt(variance), skew, kurtosis])


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(dtype=np.float64), b - b.mean(dtype=np.float64)
    spread = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return 0.0 if spread < 1e-8 else float(np.dot(a, b)) / spread
