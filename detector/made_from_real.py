"""Fakes made from our own real photos (AutoGAN-style), for training only — never for evaluation.

Why: a generator builds its image by up-sampling feature maps, and that up-sampling leaves a periodic trace
(Zhang, Karaman & Chang 2019, "Detecting and Simulating Artifacts in GAN Fake Images": a small autoencoder with a
GAN's up-sampling decoder, trained on real images only, makes "fakes" carrying that trace, and a classifier
trained on real vs. those generalised to unseen GANs). Here no training is needed: each real training face goes
down ×2 and back up through a small seeded random decoder of one of three up-sampling kinds GANs use —
transposed convolution, nearest + convolution, bilinear + convolution — so the fake keeps the face, the camera's
colours and the file's history, and differs from its real twin only by the up-sampling. The training chain then
gives the fake and its twin the same processing draw (detector.codec_blind), so the only thing left to tell them
apart is the trace.

The decoder's output is the plain up-sample of the ×2 down-sampled photo (the transposed kind with a per-phase
jitter of the bilinear kernel, the checkerboard of Odena et al. 2016) plus a small detail term — a random
convolution stack around the same up-sampling — scaled to a few grey levels.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MADE_FROM_REAL = "made_from_real"
UPSAMPLERS = ("transposed", "nearest", "bilinear")


@dataclass(frozen=True)
class DecoderSpec:
    """The random decoders: hidden width, detail strength (grey levels, std), and the transposed kernel's jitter."""

    hidden: int = 16
    detail: tuple[float, float] = (2.0, 6.0)
    kernel_jitter: float = 0.15
    upsamplers: tuple[str, ...] = UPSAMPLERS


def made_from_real(pixels: np.ndarray, seed: int, spec: DecoderSpec = DecoderSpec()) -> np.ndarray:
    """A fake twin of an RGB uint8 photo: ×2 box down-sample, then a seeded random up-sampling decoder.

    The seed picks the up-sampling kind and every weight, so the same photo and seed give the same fake. Odd
    sides lose their last row/column (the fake and its twin are compared on the common even-sided area).
    """
    height, width = (pixels.shape[0] // 2) * 2, (pixels.shape[1] // 2) * 2
    generator = torch.Generator().manual_seed(seed)
    kind = spec.upsamplers[int(torch.randint(len(spec.upsamplers), (1,), generator=generator))]
    image = torch.from_numpy(np.array(pixels[:height, :width])).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        low = F.avg_pool2d(image, 2)
        base = _upsample(low, kind, spec, generator, groups=3)
        features = F.leaky_relu(_conv(low, 3, spec.hidden, generator), 0.2)
        features = F.leaky_relu(_upsample(features, kind, spec, generator, groups=1), 0.2)
        detail = _conv(features, spec.hidden, 3, generator)
        strength = float(torch.empty(1).uniform_(*spec.detail, generator=generator))
        fake = base + strength * detail / detail.std().clamp_min(1e-6)
    return fake[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def made_from_real_set(photos: Iterable[np.ndarray], names: Sequence[str],
                       spec: DecoderSpec = DecoderSpec()) -> list[np.ndarray]:
    """A fake twin per photo, each seeded by its name (a stable seed: the same photo gets the same twin in every
    fold and every run)."""
    return [made_from_real(photo, zlib.crc32(name.encode()), spec) for photo, name in zip(photos, names)]


def _conv(x: torch.Tensor, inputs: int, outputs: int, generator: torch.Generator) -> torch.Tensor:
    weight = torch.randn(outputs, inputs, 3, 3, generator=generator) / (3.0 * inputs ** 0.5)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight)


def _upsample(x: torch.Tensor, kind: str, spec: DecoderSpec, generator: torch.Generator, groups: int) -> torch.Tensor:
    """×2 up-sampling of `x`; `groups=3` keeps colour channels apart (the base image), 1 mixes features."""
    channels = x.shape[1]
    if kind == "transposed":
        taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
        bilinear = torch.outer(taps, taps)
        weight = bilinear * (1 + spec.kernel_jitter * torch.randn(channels, 1, 4, 4, generator=generator))
        if groups == 1:
            mixing = torch.eye(channels) + 0.3 * torch.randn(channels, channels, generator=generator) / channels ** 0.5
            weight = mixing[:, :, None, None] * weight.transpose(0, 1)
            return F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, stride=2, padding=3)
        return F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, stride=2, padding=3,
                                  groups=channels)
    up = F.interpolate(x, scale_factor=2, mode=kind, **({"align_corners": False} if kind == "bilinear" else {}))
    return up if groups == 3 else _conv(up, channels, channels, generator)
