"""core.images: every accepted mode is converted to RGB uint8, every bad input refused with a one-line message."""

from __future__ import annotations

import io
import zlib
import struct

import numpy as np
import pytest
from PIL import Image

from core.images import (DecompressionBombError, ImageError, ImageLimits, ImageTooLargeError, ImageTooSmallError,
                         NotAnImageError, TruncatedImageError, list_images, load_image)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _gradient(width: int = 96, height: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=2).astype(np.uint8)


def test_png_path_round_trips_pixels_and_reports_metadata(tmp_path):
    pixels = _gradient()
    path = tmp_path / "face.png"
    Image.fromarray(pixels).save(path)
    loaded = load_image(path)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (80, 96, 3)
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert (loaded.width, loaded.height, loaded.format, loaded.name) == (96, 80, "PNG", str(path))
    import hashlib
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_exif_orientation_is_applied():
    pixels = _gradient(120, 70)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _encode(Image.fromarray(pixels), "JPEG", quality=95, exif=exif.tobytes())
    loaded = load_image(data)
    assert loaded.pixels.shape == (120, 70, 3)
    assert (loaded.width, loaded.height) == (70, 120)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "1"])
def test_other_modes_are_converted_to_rgb(mode):
    base = Image.fromarray(_gradient())
    if mode == "I;16":
        image = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
        fmt = "PNG"
    else:
        image = base.convert(mode)
        fmt = "TIFF" if mode == "CMYK" else "PNG"
    loaded = load_image(_encode(image, fmt))
    assert loaded.pixels.shape == (80, 96, 3) and loaded.pixels.dtype == np.uint8
    assert loaded.pixels.std() > 10


def test_sixteen_bit_gray_is_rescaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 96).astype(np.uint16), (80, 1))
    loaded = load_image(_encode(Image.fromarray(ramp), "PNG"))
    assert loaded.pixels[:, 0].max() == 0 and loaded.pixels[:, -1].min() == 255


def _float_tiff(values: np.ndarray) -> bytes:
    return _encode(Image.fromarray(values.astype(np.float32), mode="F"), "TIFF")


def test_float_tiff_in_unit_range_is_scaled_to_full_range_with_a_warning():
    ramp = np.tile(np.linspace(0.0, 1.0, 96, dtype=np.float32), (80, 1))
    loaded = load_image(_float_tiff(ramp), name="scan.tif")
    assert loaded.pixels[:, 0].max() == 0 and loaded.pixels[:, -1].min() == 255
    assert loaded.pixels[:, 48].min() == round(ramp[0, 48] * 255)
    assert loaded.warnings == ["scan.tif: 32-bit float pixels in 0–1 were scaled ×255 to 8 bits"]


def test_float_tiff_in_byte_range_is_kept_with_a_warning():
    ramp = np.tile(np.linspace(0.0, 255.0, 96, dtype=np.float32), (80, 1))
    loaded = load_image(_float_tiff(ramp), name="scan.tif")
    np.testing.assert_array_equal(loaded.pixels[..., 0], np.rint(ramp).astype(np.uint8))
    assert loaded.warnings == ["scan.tif: 32-bit float pixels in 0–255 were rounded to 8 bits"]


@pytest.mark.parametrize("bad", [-0.5, 300.0, float("nan"), float("inf")])
def test_float_tiff_outside_both_ranges_is_refused_in_one_line(bad):
    values = np.full((80, 96), 0.5, np.float32)
    values[3, 4] = bad
    with pytest.raises(ImageError) as info:
        load_image(_float_tiff(values), name="odd.tif")
    assert str(info.value).startswith("odd.tif: ") and "\n" not in str(info.value)


def test_eight_bit_images_carry_no_warning():
    assert load_image(_encode(Image.fromarray(_gradient()), "PNG")).warnings == []


def test_transparent_pixels_become_white():
    rgba = np.zeros((80, 96, 4), np.uint8)
    loaded = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (loaded.pixels == 255).all()


def test_animated_gif_gives_first_frame():
    frames = [Image.fromarray(np.full((80, 96, 3), value, np.uint8)) for value in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    loaded = load_image(buffer.getvalue())
    assert loaded.pixels.max() < 10


def test_pil_input_is_accepted():
    loaded = load_image(Image.fromarray(_gradient()))
    assert loaded.pixels.shape == (80, 96, 3) and loaded.format is None and len(loaded.sha256) == 64


def test_non_image_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture")
    with pytest.raises(NotAnImageError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_missing_and_empty_files_are_refused(tmp_path):
    with pytest.raises(NotAnImageError, match="no such file"):
        load_image(tmp_path / "absent.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(NotAnImageError, match="empty"):
        load_image(tmp_path / "empty.png")


def test_truncated_file_is_refused():
    data = _encode(Image.fromarray(_gradient(400, 400)), "JPEG", quality=90)
    with pytest.raises(TruncatedImageError, match="truncated"):
        load_image(data[: len(data) // 2], name="half.jpg")


def test_decompression_bomb_is_refused():
    width = height = 20_000
    row = b"\x00" + b"\x00" * width
    compressed = zlib.compress(row * height, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) \
        + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")
    with pytest.raises(DecompressionBombError, match="bomb"):
        load_image(png, name="bomb.png")


def test_over_pixel_limit_is_refused():
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), np.uint8)), "PNG")
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        load_image(data, limits=ImageLimits(max_pixels=200 * 200))


def test_over_byte_limit_is_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(_gradient()).save(path)
    with pytest.raises(ImageTooLargeError, match="byte limit"):
        load_image(path, limits=ImageLimits(max_bytes=100))


def test_under_minimum_side_is_refused():
    with pytest.raises(ImageTooSmallError, match="64-pixel minimum"):
        load_image(_encode(Image.fromarray(_gradient(200, 40)), "PNG"))


def test_list_images_keeps_only_images_sorted(tmp_path):
    for name in ("b.PNG", "a.jpg", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp"]


def test_a_large_canvas_declared_by_a_tiny_file_is_refused_before_decoding():
    data = bytearray(_encode(Image.fromarray(_gradient()), "JPEG", quality=50, progressive=True))
    sof = data.find(b"\xff\xc2")
    data[sof + 5:sof + 9] = struct.pack(">HH", 931, 52325)
    with pytest.raises(DecompressionBombError, match="52325×931 pixels from only"):
        load_image(bytes(data), name="tiny.jpg")
