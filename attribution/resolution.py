"""Resolution augmentation for training the latent SVM, and the deterministic path used at inference.

GANOrigin's idea is that the latent attribution must not learn image size or compression as a clue, so every
training face is shown at many resolutions: it is resized to a drawn size (64 to 1024 px, antialiased), optionally
JPEG re-encoded at that size (as a face published at that size would be), and resized back to the encoder's 256 px.
GANOrigin also applied this random resize at inference, which made the same image give different answers; here
inference goes through `prepare_for_inference`, which has no randomness at all.

Every random draw comes from a generator seeded by (seed, image index, copy index), so an augmented copy is the
same whichever worker makes it and in whatever order: extraction is reproducible and resumable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.arrays import check_rgb
from core.images import encode_image

ENCODER_INPUT_SIZE = 256


@dataclass(frozen=True)
class ResolutionAugmentConfig:
    """How augmented copies are drawn.

    `resolutions` (a fixed set) wins over the `min_resolution`..`max_resolution` range. Sizes from the range are
    drawn log-uniformly by default so each octave (64-128, 128-256, ...) is equally likely; a uniform draw over
    64..1024 would make 80% of copies larger than the 256 px encoder input, where resizing barely changes a face.
    `jpeg_quality` is an inclusive (low, high) range, or None for no re-encoding; `jpeg_probability` is the share
    of copies that are re-encoded.
    """

    min_resolution: int = 64
    max_resolution: int = 1024
    resolutions: tuple[int, ...] | None = None
    log_uniform: bool = True
    jpeg_quality: tuple[int, int] | None = (60, 100)
    jpeg_probability: float = 1.0
    output_size: int = ENCODER_INPUT_SIZE

    def __post_init__(self) -> None:
        sizes = self.resolutions if self.resolutions is not None else (self.min_resolution, self.max_resolution)
        if not sizes or min(sizes) < 8:
            raise ValueError(f"resolutions must be at least 8 px, got {sizes}")
        if self.resolutions is None and self.min_resolution > self.max_resolution:
            raise ValueError(f"min_resolution {self.min_resolution} is above max_resolution {self.max_resolution}")
        if self.jpeg_quality is not None:
            low, high = self.jpeg_quality
            if not 1 <= low <= high <= 100:
                raise ValueError(f"jpeg_quality must be a range within 1..100 with low <= high, got {low}..{high}")
        if not 0.0 <= self.jpeg_probability <= 1.0:
            raise ValueError(f"jpeg_probability must be in [0, 1], got {self.jpeg_probability}")


@dataclass(frozen=True)
class Augmentation:
    """One drawn augmentation: the intermediate size and the JPEG quality (None = not re-encoded)."""

    resolution: int
    jpeg_quality: int | None


def augmentation_rng(seed: int, image_index: int, copy_index: int) -> np.random.Generator:
    """A generator that depends only on (seed, image, copy), never on the order in which copies are made."""
    return np.random.default_rng(np.random.SeedSequence([seed, image_index, copy_index]))


def draw_augmentation(rng: np.random.Generator, config: ResolutionAugmentConfig) -> Augmentation:
    """Draw one size and JPEG quality; the draws always happen in the same order so a seed fixes the result."""
    if config.resolutions is not None:
        resolution = int(config.resolutions[int(rng.integers(len(config.resolutions)))])
    elif config.log_uniform:
        value = math.exp(rng.uniform(math.log(config.min_resolution), math.log(config.max_resolution + 1)))
        resolution = min(int(value), config.max_resolution)
    else:
        resolution = int(rng.integers(config.min_resolution, config.max_resolution + 1))
    encode = rng.random() < config.jpeg_probability
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)) if config.jpeg_quality else None
    return Augmentation(resolution=resolution, jpeg_quality=quality if encode else None)


def apply_augmentation(face: np.ndarray, augmentation: Augmentation, output_size: int = ENCODER_INPUT_SIZE
                       ) -> np.ndarray:
    """Resize a face to the drawn size (antialiased Lanczos), JPEG it there if asked, and resize to output_size."""
    image = Image.fromarray(check_rgb(face, "face"))
    if image.size != (augmentation.resolution, augmentation.resolution):
        image = image.resize((augmentation.resolution, augmentation.resolution), Image.Resampling.LANCZOS)
    if augmentation.jpeg_quality is not None:
        jpeg = encode_image(image, "JPEG", quality=augmentation.jpeg_quality)
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    if image.size != (output_size, output_size):
        image = image.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def augment_face(face: np.ndarray, config: ResolutionAugmentConfig, seed: int, image_index: int,
                 copies: int) -> tuple[list[np.ndarray], list[Augmentation]]:
    """The `copies` augmented versions of one aligned face, each a pure function of (seed, image_index, copy)."""
    faces, drawn = [], []
    for copy_index in range(copies):
        augmentation = draw_augmentation(augmentation_rng(seed, image_index, copy_index), config)
        faces.append(apply_augmentation(face, augmentation, config.output_size))
        drawn.append(augmentation)
    return faces, drawn


def prepare_for_inference(faces: Sequence[np.ndarray], output_size: int = ENCODER_INPUT_SIZE) -> list[np.ndarray]:
    """The inference path: no randomness; a face already at output_size passes unchanged, others are resized."""
    prepared = []
    for face in faces:
        face = check_rgb(face, "face")
        if face.shape[:2] != (output_size, output_size):
            resized = Image.fromarray(face).resize((output_size, output_size), Image.Resampling.LANCZOS)
            face = np.asarray(resized, dtype=np.uint8)
        prepared.append(face)
    return prepared

