"""The codec-blind training recipe: every training view of every class goes through one processing chain drawn
from the real photos' own distribution, so codec, quality and size stop telling the classes apart.

Why: in the development face set most real photos are JPEG and most StyleGAN2/3 faces are lossless, and a learned
branch trained on them reads "no JPEG grid = fake" (the last round's CV: lossless GAN sources at AUC ≥ 0.97 as
stored, 0.0–0.15 after JPEG q75). Grommelt et al. 2024 ("Fake or JPEG?") fixed the same bias by compressing
every class at a quality drawn from the real images' own quality distribution and cropping every class to one
size window; B-Free (Guillaro et al. 2025) and Rajan et al. 2025 give the two images of an aligned real/fake pair
the same processing. This module is that recipe, not a model:

- `estimate_jpeg_quality`: the IJG quality a JPEG was written with, read from its quantisation tables (None for a
  lossless file), so the recipe's codec draw follows the real training photos' qualities.
- `CodecBlindRecipe.fit`: the quality distribution of the real training photos, and a lossless probability that
  is the same for every class (never below `min_lossless_prob`: a real photo that reaches an analyst as a PNG
  screenshot must be seen in training, and the face set holds few lossless real photos).
- `draw_processing` / `apply_draw`: one `Draw` is a value — an optional history-erasing downscale (≥ 1.5×, random
  kernel: a re-save alone keeps a decoded JPEG's old 8×8 grid, so the chain must be able to erase it for every
  class alike), one shared size window, the codec draw (JPEG quality or lossless), a crop at a random offset
  inside the coded patch (its phase against the new 8×8 grid uniform, never snapped to it) and a flip. The same
  Draw applies to any two images, which is how a pair gets the same processing.
- `pair_batch`: a training batch as (fake, real) pairs; a fake whose source holds real photos is paired with one of
  them (a made-from-real fake with its own twin), so each pair can share one draw.
- `recipe_fingerprint`: a short hash of the settings, part of every cache key built on the recipe.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import InputError
from core.images import ImageLimits
from detector.fingerprint_data import downscale, jpeg_reencode

REAL = "real"
# The IJG (libjpeg) base tables at quality 50, natural (row-major) order, as Pillow reports `quantization`.
IJG_LUMINANCE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
IJG_CHROMINANCE = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                   24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                   *(99,) * 32)
INTEGER_FACTOR_MARGIN = 0.15
ERASE_KERNELS = {"box": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR,
                 "hamming": Image.Resampling.HAMMING, "bicubic": Image.Resampling.BICUBIC,
                 "lanczos": Image.Resampling.LANCZOS}


def ijg_table(base: Sequence[int], quality: int) -> np.ndarray:
    """The quantisation table libjpeg writes for `quality` (1–100): the base table scaled, rounded, clamped."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((np.asarray(base, dtype=np.int64) * scale + 50) // 100, 1, 255)


def estimate_jpeg_quality(source: str | Path | Image.Image) -> int | None:
    """The IJG quality (1–100) whose tables are closest to the file's own, or None for a lossless file.

    Closest = least mean absolute log-ratio over the luminance (and, when present, chrominance) table, so an
    encoder with its own tables (a camera) still gets the quality it behaves like.
    """
    if isinstance(source, Image.Image):
        return _quality_of(source)
    try:
        with Image.open(source) as image:
            return _quality_of(image)
    except (OSError, UnidentifiedImageError) as err:
        raise InputError(f"{source}: cannot read the image to estimate its JPEG quality ({err})") from err


def _quality_of(image: Image.Image) -> int | None:
    tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
    if not tables:
        return None
    actual = [np.log(np.asarray(tables[key], dtype=np.float64)) for key in sorted(tables)[:2]]
    bases = (IJG_LUMINANCE, IJG_CHROMINANCE)[:len(actual)]
    errors = [sum(np.abs(table - np.log(ijg_table(base, quality))).mean() for table, base in zip(actual, bases))
              for quality in range(1, 101)]
    return int(np.argmin(errors)) + 1


@dataclass(frozen=True)
class CodecBlindRecipe:
    """How every training view is processed, whatever its class.

    `qualities` is the JPEG quality distribution, as (quality, probability) pairs; `lossless_prob` the chance a
    view is left lossless; `erase_prob` the chance of the history-erasing downscale by a factor in `erase_factor`
    with one of `kernels`; `window` the shared range of the side of the patch the codec sees.
    """

    qualities: tuple[tuple[int, float], ...] = ((75, 0.5), (95, 0.5))
    lossless_prob: float = 0.25
    erase_prob: float = 0.5
    erase_factor: tuple[float, float] = (1.5, 3.0)
    kernels: tuple[str, ...] = tuple(ERASE_KERNELS)
    window: tuple[int, int] = (72, 128)
    flip: bool = True

    def __post_init__(self) -> None:
        if self.erase_factor[0] < 1.5 or self.erase_factor[1] < self.erase_factor[0]:
            raise ValueError(f"erase_factor {self.erase_factor} must be a range starting at ≥ 1.5")
        if not self.qualities or abs(sum(p for _, p in self.qualities) - 1.0) > 1e-6:
            raise ValueError("qualities must be (quality, probability) pairs whose probabilities sum to 1")
        unknown = set(self.kernels) - set(ERASE_KERNELS)
        if unknown:
            raise ValueError(f"unknown erase kernel(s) {sorted(unknown)}; choose from {sorted(ERASE_KERNELS)}")

    @classmethod
    def fit(cls, real_paths: Sequence[str | Path], min_lossless_prob: float = 0.25, **settings) -> CodecBlindRecipe:
        """The recipe whose codec draw follows these real photos' own estimated qualities (the training fold's)."""
        qualities = [estimate_jpeg_quality(path) for path in real_paths]
        coded = Counter(q for q in qualities if q is not None)
        if not coded:
            raise InputError("no JPEG among the real training photos: the quality distribution needs some")
        total = sum(coded.values())
        distribution = tuple((int(q), round(n / total, 6)) for q, n in sorted(coded.items()))
        # rounding may leave the sum a hair off 1; the largest share absorbs it
        largest = max(range(len(distribution)), key=lambda i: distribution[i][1])
        fixed = 1.0 - sum(p for i, (_, p) in enumerate(distribution) if i != largest)
        distribution = tuple((q, fixed if i == largest else p) for i, (q, p) in enumerate(distribution))
        lossless = max(min_lossless_prob, (len(qualities) - total) / len(qualities))
        return cls(qualities=distribution, lossless_prob=round(lossless, 6), **settings)


@dataclass(frozen=True)
class Draw:
    """One processing chain, as a value: apply it to two images and they get the same processing.

    Positions are fractions of the free room, so one draw fits images of different sizes.
    """

    window: int
    erase_factor: float | None
    kernel: str
    quality: int | None
    place: tuple[float, float]
    offset: tuple[float, float]
    flip: bool


def draw_processing(recipe: CodecBlindRecipe, rng: np.random.Generator) -> Draw:
    """A draw from the recipe; it never looks at the image or its class, so every class gets the same draws."""
    erase = _erase_factor(recipe, rng) if rng.random() < recipe.erase_prob else None
    kernel = recipe.kernels[int(rng.integers(len(recipe.kernels)))]
    values, probabilities = zip(*recipe.qualities)
    quality = None if rng.random() < recipe.lossless_prob else int(rng.choice(values, p=probabilities))
    return Draw(window=int(rng.integers(recipe.window[0], recipe.window[1] + 1)), erase_factor=erase, kernel=kernel,
                quality=quality, place=(float(rng.random()), float(rng.random())),
                offset=(float(rng.random()), float(rng.random())), flip=bool(recipe.flip and rng.random() < 0.5))


def _erase_factor(recipe: CodecBlindRecipe, rng: np.random.Generator) -> float:
    """A factor in the recipe's range, away from the integers 2 and 3: ×2 turns the old 8-pixel grid into a
    4-pixel one, ×3 into a 8/3-pixel one that still lines up every 8 pixels — neither erases it."""
    while True:
        factor = float(rng.uniform(*recipe.erase_factor))
        if min(abs(factor - 2.0), abs(factor - 3.0)) >= INTEGER_FACTOR_MARGIN:
            return factor


def apply_draw(image: np.ndarray, draw: Draw, crop: int) -> np.ndarray:
    """The crop×crop view `draw` makes of `image`: patch → erase (downscale) → codec → crop → flip.

    An image too small for the patch gives its whole side; one too small to downscale by the draw's factor and
    still hold the crop skips the erase (the 64–128-pixel lossless ProGAN tiles: they hold no old JPEG grid).
    The crop is at least core.images' minimum side (64), which the JPEG round trip goes through.
    """
    if crop < ImageLimits().min_side:
        raise ValueError(f"a {crop}-pixel crop is under the {ImageLimits().min_side}-pixel side the codec accepts")
    height, width = image.shape[:2]
    side = min(height, width)
    if side < crop:
        raise ValueError(f"a {width}×{height} image is smaller than the {crop}-pixel crop")
    factor = draw.erase_factor if draw.erase_factor is not None and side / draw.erase_factor >= crop else None
    source = min(side, round(max(draw.window, crop) * (factor or 1.0)))
    top, left = round(draw.place[0] * (height - source)), round(draw.place[1] * (width - source))
    patch = image[top:top + source, left:left + source]
    if factor is not None:
        patch = downscale(patch, max(crop, round(source / factor)) / source, ERASE_KERNELS[draw.kernel])
    if draw.quality is not None:
        patch = jpeg_reencode(patch, draw.quality)
    room = patch.shape[0] - crop, patch.shape[1] - crop
    top, left = round(draw.offset[0] * room[0]), round(draw.offset[1] * room[1])
    view = patch[top:top + crop, left:left + crop]
    return np.ascontiguousarray(view[:, ::-1] if draw.flip else view)


def pair_batch(labels: Sequence[str], sources: Sequence[str], pairs: int, rng: np.random.Generator,
               twins: Mapping[int, int] | None = None) -> list[tuple[int, int]]:
    """`pairs` (fake index, real index) pairs, each to be given one draw.

    Fakes are spread evenly over the fake labels and, inside a label, evenly over its sources (a 300-image source
    does not drown a 20-image one). The real partner is the fake's twin when it has one (a made-from-real fake),
    else a real photo of the fake's own source when that source holds some (a same-processing pair), else a real
    photo drawn evenly over the real sources.
    """
    labels, sources = np.asarray(labels), np.asarray(sources)
    twins = twins or {}
    is_real = labels == REAL
    if not is_real.any() or is_real.all():
        raise ValueError("a paired batch needs real and fake training images")
    fake_pools = [[np.flatnonzero((labels == label) & (sources == source))
                   for source in sorted(set(sources[labels == label].tolist()))]
                  for label in sorted(set(labels[~is_real].tolist()))]
    real_pools = {source: np.flatnonzero(is_real & (sources == source))
                  for source in sorted(set(sources[is_real].tolist()))}
    real_sources = list(real_pools)
    batch = []
    for _ in range(pairs):
        per_source = fake_pools[int(rng.integers(len(fake_pools)))]
        members = per_source[int(rng.integers(len(per_source)))]
        fake = int(members[int(rng.integers(len(members)))])
        if fake in twins:
            real = int(twins[fake])
        else:
            pool = real_pools.get(sources[fake], real_pools[real_sources[int(rng.integers(len(real_sources)))]])
            real = int(pool[int(rng.integers(len(pool)))])
        batch.append((fake, real))
    return batch


def recipe_fingerprint(recipe: CodecBlindRecipe) -> str:
    """A short hash of every setting: put it in a cache key and a changed recipe recomputes the cache."""
    return hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode()).hexdigest()[:16]
