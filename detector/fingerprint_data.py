"""Training data for FingerprintNet: a source-held-out split of labelled images and shortcut-removing augmentation.

The development face set differs by class in file format, JPEG quality and source dataset. A model trained on it
naively learns those instead of the generator, and a validation split by file hides that. So: validation holds
out whole sources (repos) per class, and every class gets the same random downscale and JPEG re-encoding during
training.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from core.augment import KERNELS, AugmentSettings
from core.datasets import LabelledImage
from core.errors import InputError
from core.images import ImageError, encode_image, load_image

MAX_ENUMERATED_GROUPS = 12


@dataclass
class Split:
    train: list[LabelledImage]
    val: list[LabelledImage]
    held_out: dict[str, list[str]] = field(default_factory=dict)
    unit: dict[str, str] = field(default_factory=dict)


def split_by_source(samples: Sequence[LabelledImage], labels: Sequence[str], seed: int,
                    val_range: tuple[float, float] = (0.1, 0.4)) -> Split:
    """Hold out whole sources per class so that validation never shares a source with training.

    For each class, every set of its sources whose share of the class lies in `val_range` is a candidate; the
    seed picks one. A class whose sources cannot be split that way (one dominant repo) falls back to finer
    subgroups (folders inside the repo), then to single files; `Split.unit` records which level each class used,
    because validation on that class is then more optimistic.
    """
    split = Split(train=[], val=[])
    for label in labels:
        members = [s for s in samples if s.label == label]
        if len(members) < 2:
            raise InputError(f"class {label!r} has {len(members)} image(s); at least 2 are needed to validate")
        rng = random.Random(f"{seed}:{label}")
        for unit in ("group", "subgroup", "file"):
            sizes = Counter(_unit_key(s, unit) for s in members)
            chosen = _choose_held_out(sizes, len(members), val_range, rng)
            if chosen:
                break
        split.held_out[label] = sorted(chosen)
        split.unit[label] = unit
        split.val += [s for s in members if _unit_key(s, unit) in chosen]
        split.train += [s for s in members if _unit_key(s, unit) not in chosen]
    return split


def _unit_key(sample: LabelledImage, unit: str) -> str:
    return str(sample.path) if unit == "file" else getattr(sample, unit)


def _choose_held_out(sizes: Counter, total: int, val_range: tuple[float, float], rng: random.Random) -> set[str]:
    keys = sorted(sizes)
    if len(keys) < 2:
        return set()
    if len(keys) <= MAX_ENUMERATED_GROUPS:
        candidates = [combo for k in range(1, len(keys)) for combo in itertools.combinations(keys, k)
                      if val_range[0] <= sum(sizes[key] for key in combo) / total <= val_range[1]]
        return set(rng.choice(candidates)) if candidates else set()
    shuffled = keys[:]
    rng.shuffle(shuffled)
    chosen, count = set(), 0
    for key in shuffled:
        if count / total >= val_range[0]:
            break
        if (count + sizes[key]) / total <= val_range[1]:
            chosen.add(key)
            count += sizes[key]
    return chosen if count / total >= val_range[0] else set()


def decode_samples(samples: Sequence[LabelledImage], min_side: int = 0, desc: str = "decoding",
                   progress: bool = True) -> tuple[list[LabelledImage], list[np.ndarray], list[dict]]:
    """Decode every image once (through core.images) so training spends its CPU on the model, not on decoding.

    Files that cannot be decoded, or are smaller than `min_side`, are returned in the third list with the reason.
    """
    kept, pixels, bad = [], [], []
    for sample in tqdm(samples, desc=desc, unit="img", mininterval=5, disable=not progress):
        try:
            image = load_image(sample.path).pixels
        except ImageError as err:
            bad.append({"path": str(sample.path), "label": sample.label, "error": str(err)})
            continue
        if min(image.shape[:2]) < min_side:
            bad.append({"path": str(sample.path), "label": sample.label,
                        "error": f"{image.shape[1]}×{image.shape[0]} is smaller than the {min_side}-pixel crop"})
            continue
        kept.append(sample)
        pixels.append(image)
    return kept, pixels, bad


def jpeg_reencode(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at `quality` (4:2:0, as most encoders do), decoded by core.images."""
    return load_image(encode_image(pixels, "JPEG", quality=int(quality)), name="<jpeg re-encode>").pixels


def downscale(pixels: np.ndarray, factor: float,
              resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """Shrink by `factor` (anti-aliased), as an upload pipeline or a screenshot would."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(pixels).resize(size, resample=resample))


def augment(pixels: np.ndarray, crop: int, rng: np.random.Generator, config: AugmentSettings) -> np.ndarray:
    """A crop×crop training view: random region, always a random downscale (factor from `scale`, kernel from
    `kernels`), random JPEG, random flip; FingerprintNet's recipe is `AugmentSettings.fingerprint()`.

    Only a region slightly larger than needed is resized and re-encoded (not the whole 1024² image): same
    statistics for the crop, ~50× less CPU.
    """
    height, width = pixels.shape[:2]
    factor = rng.uniform(*config.scale)
    region = min(math.ceil(crop / factor), height, width)
    top = int(rng.integers(0, height - region + 1))
    left = int(rng.integers(0, width - region + 1))
    view = pixels[top:top + region, left:left + region]
    target = max(crop, round(region * factor))
    if target < region:
        view = downscale(view, target / region, KERNELS[config.kernels[int(rng.integers(len(config.kernels)))]])
    if rng.random() < config.jpeg_prob:
        view = jpeg_reencode(view, int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)))
    top = int(rng.integers(0, view.shape[0] - crop + 1))
    left = int(rng.integers(0, view.shape[1] - crop + 1))
    view = view[top:top + crop, left:left + crop]
    if config.flip and rng.random() < 0.5:
        view = view[:, ::-1]
    return np.ascontiguousarray(view)


def balanced_indices(labels: Sequence[int], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices drawn with replacement so every class is equally likely (the set is very unbalanced)."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    picks = rng.choice(classes, size=count)
    return np.array([rng.choice(np.flatnonzero(labels == label)) for label in picks])
