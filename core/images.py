"""The one door through which images enter GANTrace.

Every stage sees the same pixels for the same file: EXIF orientation applied, any mode converted to RGB uint8,
and inputs that would crash or exhaust a worker (non-images, truncated files, decompression bombs, huge or tiny
images) refused early with a one-line message that names the file.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


class ImageError(ValueError):
    """An input that cannot be analysed; `str()` is one line: '<name>: <problem and what to do>'."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")


class NotAnImageError(ImageError):
    pass


class TruncatedImageError(ImageError):
    pass


class DecompressionBombError(ImageError):
    pass


class ImageTooLargeError(ImageError):
    pass


class ImageTooSmallError(ImageError):
    pass


class PixelRangeError(ImageError):
    """Pixel values no defined rule maps to 8 bits (NaN, infinity, negative, or beyond the format's range)."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds that keep one upload from exhausting memory or giving meaningless evidence."""

    max_pixels: int = 50_000_000
    max_bytes: int = 50_000_000
    min_side: int = 64


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels plus what an analyst must know about the decoding (`warnings`: one line each, with the name)."""

    pixels: np.ndarray
    name: str
    width: int
    height: int
    format: str | None
    sha256: str
    num_bytes: int
    warnings: list[str] = field(default_factory=list)


ImageSource = str | Path | bytes | Image.Image


def load_image(source: ImageSource, limits: ImageLimits | None = None, name: str | None = None) -> LoadedImage:
    """Decode a path, bytes or PIL image into RGB uint8 pixels, refusing what cannot be analysed."""
    limits = limits or ImageLimits()
    if isinstance(source, Image.Image):
        return _from_pil(source, limits, name or "<PIL image>")
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or str(path)
        data = _read_file(path, limits, name)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = name or "<bytes>"
        if len(data) > limits.max_bytes:
            raise ImageTooLargeError(name, f"{len(data):,} bytes is over the {limits.max_bytes:,}-byte limit")
    else:
        raise TypeError(f"load_image takes a path, bytes or PIL image, not {type(source).__name__}")
    return _decode(data, limits, name)


def encode_image(image: Image.Image | np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """Encode pixels to file bytes, so perturbations (JPEG re-encoding, resizing) go through a real codec."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted so that runs over the same folder are reproducible."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_file(path: Path, limits: ImageLimits, name: str) -> bytes:
    if not path.exists():
        raise NotAnImageError(name, "no such file")
    if not path.is_file():
        raise NotAnImageError(name, "is a folder, not an image file")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise ImageTooLargeError(name, f"{size:,} bytes is over the {limits.max_bytes:,}-byte limit")
    return path.read_bytes()


# What Pillow's format plugins raise on malformed files (found by tests/test_intake_fuzz.py); all mean "cannot decode".
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                   ZeroDivisionError, OverflowError)


def _decode(data: bytes, limits: ImageLimits, name: str) -> LoadedImage:
    if not data:
        raise NotAnImageError(name, "the file is empty")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixel_count(image.size, limits, name, len(data))
            image.load()
            return _finish(image, limits, name, image.format, digest, len(data))
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise DecompressionBombError(name, f"refused as a decompression bomb ({_one_line(err)})") from None
    except Image.DecompressionBombWarning:
        raise DecompressionBombError(name, "refused as a possible decompression bomb (too many pixels)") from None
    except UnidentifiedImageError:
        raise NotAnImageError(name, "not an image file Pillow can read (JPEG, PNG, WebP, BMP, GIF, TIFF)") from None
    except _DECODER_ERRORS as err:
        if "truncated" in str(err).lower() or "broken data stream" in str(err).lower():
            raise TruncatedImageError(name, "the image file is truncated or corrupt; re-download it") from None
        raise NotAnImageError(name, f"cannot be decoded: {_one_line(err)}") from None


def _one_line(err: Exception, limit: int = 200) -> str:
    """A decoder's message, flattened and shortened, so the error stays the promised single line."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _from_pil(image: Image.Image, limits: ImageLimits, name: str) -> LoadedImage:
    _check_pixel_count(image.size, limits, name, None)
    data = encode_image(image, "PNG")
    return _finish(image, limits, name, None, hashlib.sha256(data).hexdigest(), len(data))


_BOMB_PIXELS_PER_BYTE = 100
# Below the pixel limit a huge canvas from a tiny file is still a bomb: a 3.7 KB JPEG declaring 52325×931 took 7 s
# and 150 MB to decode (tests/test_intake_fuzz.py). No photograph compresses to under a byte per 1,000 pixels.
_LARGE_PIXELS = 4_000_000
_MAX_PIXELS_PER_BYTE = 1_000


def _check_pixel_count(size: tuple[int, int], limits: ImageLimits, name: str, num_bytes: int | None) -> None:
    """Refuse before decoding; a huge image packed into a few bytes is named a bomb, not just large."""
    pixels = size[0] * size[1]
    if num_bytes is not None and (
            (pixels > limits.max_pixels and pixels > _BOMB_PIXELS_PER_BYTE * num_bytes)
            or (pixels > _LARGE_PIXELS and pixels > _MAX_PIXELS_PER_BYTE * num_bytes)):
        raise DecompressionBombError(
            name, f"claims {size[0]}×{size[1]} pixels from only {num_bytes:,} bytes: refused as a decompression bomb")
    if pixels > limits.max_pixels:
        raise ImageTooLargeError(
            name, f"{size[0]}×{size[1]} = {pixels:,} pixels is over the {limits.max_pixels:,}-pixel limit")


def _finish(image: Image.Image, limits: ImageLimits, name: str, fmt: str | None, digest: str,
            num_bytes: int) -> LoadedImage:
    if getattr(image, "is_animated", False):
        image.seek(0)
    image = ImageOps.exif_transpose(image)
    pixels, notes = _to_rgb_uint8(image, name)
    height, width = pixels.shape[:2]
    if min(width, height) < limits.min_side:
        raise ImageTooSmallError(
            name, f"{width}×{height} is under the {limits.min_side}-pixel minimum side; too small to analyse")
    return LoadedImage(pixels=pixels, name=name, width=width, height=height, format=fmt, sha256=digest,
                       num_bytes=num_bytes, warnings=notes)


def _to_rgb_uint8(image: Image.Image, name: str) -> tuple[np.ndarray, list[str]]:
    """Convert any Pillow mode to RGB uint8 (plus warnings); wide integer and float pixels are rescaled by a
    stated rule, never clipped, and values no rule covers are refused rather than guessed at."""
    if image.mode == "F":
        gray, notes = _float_to_uint8(np.asarray(image, dtype=np.float64), name)
        return np.repeat(gray[:, :, None], 3, axis=2), notes
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
        if low < 0 or high > 65535:
            raise PixelRangeError(name, f"32-bit integer pixels span {low:.0f}..{high:.0f}, outside 0..65535; "
                                  "export the image with 8 or 16 bits per channel")
        peak = 65535.0 if image.mode.startswith("I;16") or high > 255 else 255.0
        gray = np.clip(np.rint(values / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), []
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8)), []


def _float_to_uint8(values: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Floats in 0–1 are scaled ×255, floats in 0–255 kept; anything else has no meaning we can assume."""
    if not np.isfinite(values).all():
        raise PixelRangeError(name, "float pixels include NaN or infinity; export the image with 8 or 16 bits "
                              "per channel")
    low, high = (values.min(), values.max()) if values.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise PixelRangeError(name, f"float pixels span {low:g}..{high:g}, outside both 0–1 and 0–255; export "
                              "the image with 8 or 16 bits per channel")
    if high <= 1:
        return np.rint(values * 255.0).astype(np.uint8), [f"{name}: 32-bit float pixels in 0–1 were scaled ×255 "
                                                          "to 8 bits"]
    return np.rint(values).astype(np.uint8), [f"{name}: 32-bit float pixels in 0–255 were rounded to 8 bits"]
