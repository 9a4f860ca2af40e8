"""The one check that an array is what every stage expects: an H×W×3 uint8 RGB image, as core.images returns.

Stages receive pixels, not files, so a caller who skips core.images (a grayscale array, floats in [0, 1], a
channels-first tensor) must get a sentence naming the image and what was wrong, not a shape error deep inside a
model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_rgb(image: object, name: str = "image", min_side: int = 0) -> np.ndarray:
    """`image` as a C-contiguous H×W×3 uint8 array; ValueError naming `name` when it is anything else."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        found = (f"shape {image.shape}, dtype {image.dtype}" if isinstance(image, np.ndarray)
                 else type(image).__name__)
        raise ValueError(f"{name}: expected an H×W×3 uint8 RGB array (decode files with core.images.load_image), "
                         f"got {found}")
    if min(image.shape[:2]) < min_side:
        raise ValueError(f"{name}: {image.shape[1]}×{image.shape[0]} is under the {min_side}-pixel minimum")
    return np.ascontiguousarray(image)


def check_rgb_batch(images: Sequence[object], what: str = "image", min_side: int = 0,
                    first_index: int = 0) -> list[np.ndarray]:
    """Every item through `check_rgb`, named `"{what} {index}"` so the error points at the bad one in the batch."""
    return [check_rgb(image, f"{what} {first_index + offset}", min_side) for offset, image in enumerate(images)]
