"""Where GAN up-sampling leaves its fingerprint: the spectrum of an image's high-pass residual.

Transposed convolutions and nearest/bilinear up-sampling in a generator leave periodic patterns with periods of
2, 4, 8 ... pixels. They are faint next to the image content, so we first remove the content with a fixed
high-pass filter (the image minus its 3×3 local mean) and then look at the centred log-magnitude spectrum of
what is left, where such patterns show as bright off-centre peaks. The same two functions feed FingerprintNet's
frequency path, so the picture an analyst sees is the input that branch reads.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.arrays import check_rgb

SPECTRUM_TILE = 256
MAX_TILES = 16
_LOG_FLOOR = 1e-4
_LUMA = (0.299, 0.587, 0.114)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """Residual of x (B,C,H,W, pixel values) after subtracting a 3×3 box blur; reflect padding avoids edge ramps."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return x - F.avg_pool2d(padded, kernel_size=3, stride=1)


def log_spectrum(residual: torch.Tensor) -> torch.Tensor:
    """Centred (fftshift) log-magnitude of the orthonormal 2-D FFT over the last two axes, computed in float32."""
    spectrum = torch.fft.fft2(residual.float(), norm="ortho")
    magnitude = torch.fft.fftshift(spectrum.abs(), dim=(-2, -1))
    return torch.log(magnitude + _LOG_FLOOR)


def residual_spectrum(image: np.ndarray, tile: int = SPECTRUM_TILE) -> np.ndarray:
    """Centred log-magnitude spectrum of the luma high-pass residual, averaged over native-resolution tiles.

    Power is averaged over up to MAX_TILES evenly spread tiles before the log (Welch's method), which keeps
    periodic peaks sharp while the noise of single tiles averages out. The result is tile×tile float32, with
    tile = min(tile, height, width); never resized, because resizing moves the peaks.
    """
    pixels = check_rgb(image)
    height, width = pixels.shape[:2]
    size = min(tile, height, width)
    luma = torch.from_numpy(pixels.astype(np.float32) / 255.0) @ torch.tensor(_LUMA)
    residual = high_pass(luma[None, None])[0, 0]
    tiles = torch.stack([residual[y:y + size, x:x + size] for y, x in _tile_origins(height, width, size)])
    power = torch.fft.fft2(tiles, norm="ortho").abs().square().mean(dim=0)
    magnitude = torch.fft.fftshift(power.sqrt(), dim=(-2, -1))
    return torch.log(magnitude + _LOG_FLOOR).numpy().astype(np.float32)


def spectrum_picture(image: np.ndarray, tile: int = SPECTRUM_TILE) -> np.ndarray:
    """The residual spectrum as an RGB uint8 picture (magma colour map, 1st-99.5th percentile stretch)."""
    from matplotlib import colormaps

    spectrum = residual_spectrum(image, tile)
    low, high = np.percentile(spectrum, [1.0, 99.5])
    scaled = np.clip((spectrum - low) / max(high - low, 1e-6), 0.0, 1.0)
    coloured = colormaps["magma"](scaled)[..., :3]
    return np.round(coloured * 255.0).astype(np.uint8)


def _tile_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of an evenly spread grid of at most MAX_TILES tiles covering the image."""
    per_side = int(np.sqrt(MAX_TILES))
    rows = np.unique(np.linspace(0, height - size, min(per_side, max(1, height // size))).round().astype(int))
    cols = np.unique(np.linspace(0, width - size, min(per_side, max(1, width // size))).round().astype(int))
    return [(int(y), int(x)) for y in rows for x in cols]
