"""The fixed crops every image detector reads: deterministic windows, so the same image always gets the same score.

The order is the same for every detector: the centre first, then the four corners (the most distinct content),
then the four edge midpoints. Only the CLIP probe uses more than five, and only it rounds the centre offset as
torchvision's CenterCrop does (round half to even), to stay equal to UFD's own evaluation.
"""

from __future__ import annotations

import numpy as np

ANCHORS = (
    ("centre", "centre"),
    ("start", "start"), ("start", "end"), ("end", "start"), ("end", "end"),
    ("start", "centre"), ("end", "centre"), ("centre", "start"), ("centre", "end"),
)


def crop_origins(height: int, width: int, size: int, num_crops: int,
                 torchvision_centre: bool = False) -> list[tuple[int, int]]:
    """Top-left corners (row, column) of the first `num_crops` size² windows of a height×width image (≥ size).

    The centre offset is (excess // 2), or, with `torchvision_centre`, int(round(excess / 2)) with Python's
    round-half-to-even, exactly as torchvision's CenterCrop computes it.
    """
    if not 1 <= num_crops <= len(ANCHORS):
        raise ValueError(f"num_crops must be between 1 and {len(ANCHORS)}, got {num_crops}")

    def offset(length: int, anchor: str) -> int:
        excess = length - size
        centre = int(round(excess / 2.0)) if torchvision_centre else excess // 2
        return {"start": 0, "centre": centre, "end": excess}[anchor]

    return [(offset(height, row), offset(width, column)) for row, column in ANCHORS[:num_crops]]


def fixed_crops(image: np.ndarray, size: int, num_crops: int, torchvision_centre: bool = False) -> list[np.ndarray]:
    """The size² windows of an H×W(×C) image at least `size` on each side, in ANCHORS order (views, not copies)."""
    return [image[top:top + size, left:left + size]
            for top, left in crop_origins(image.shape[0], image.shape[1], size, num_crops, torchvision_centre)]


def pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """The image with zeros added around a side shorter than `size` ((size − length) // 2 of them before it), as
    torchvision's CenterCrop pads; unchanged when both sides are at least `size`."""
    height, width = image.shape[:2]
    if height >= size and width >= size:
        return image
    canvas = np.zeros((max(height, size), max(width, size), *image.shape[2:]), dtype=image.dtype)
    top, left = max(size - height, 0) // 2, max(size - width, 0) // 2
    canvas[top:top + height, left:left + width] = image
    return canvas
