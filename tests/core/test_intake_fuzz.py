"""Fuzzing core.images: every mutated file gives RGB uint8 pixels or the one-line '<file>: <problem>', nothing else.

Each case starts from a real image written by Pillow (JPEG, PNG, WebP, TIFF, GIF, BMP, plus 16-bit, float,
animated and EXIF-rotated variants) and damages it the way files get damaged or forged: bit flips, truncation at a
random offset, a scrambled header, corrupted chunk/segment lengths, huge declared sizes, a wrong extension. Cases
run in a forked child under an address-space limit and a per-case alarm, so a hang or a memory blow-up fails the
test instead of the machine. Case i is a pure function of (SEED, i): a failure names the case to replay.

    GANTRACE_FUZZ_CASES=5000 pytest tests/test_intake_fuzz.py -q      # the long run (default: 300 cases)
"""

from __future__ import annotations

import io
import multiprocessing
import os
import resource
import signal
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.images import ImageError, load_image

SEED = 20261130
CASES = int(os.environ.get("GANTRACE_FUZZ_CASES", "300"))
CASE_SECONDS = 5.0
EXTRA_ADDRESS_SPACE = 2 * 1024 ** 3
SUFFIXES = [".jpg", ".png", ".webp", ".tif", ".gif", ".bmp", ".txt", ""]


def _pixels(width: int = 120, height: int = 104) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(0).integers(0, 40, (height, width), dtype=np.int64)
    return np.stack([x * 2 + noise, y * 2, (x * y) % 256], axis=2).clip(0, 255).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def base_images() -> dict[str, bytes]:
    """Valid files of every format and awkward mode the intake accepts."""
    rgb = Image.fromarray(_pixels())
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [rgb, Image.fromarray(255 - _pixels())]
    animated = io.BytesIO()
    frames[0].save(animated, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    gray16 = Image.fromarray((np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))
    floats = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0, mode="F")
    return {
        "jpeg": _save(rgb, "JPEG", quality=90),
        "jpeg-progressive-exif": _save(rgb, "JPEG", quality=80, progressive=True, exif=exif.tobytes()),
        "png": _save(rgb, "PNG"),
        "png-rgba": _save(rgb.convert("RGBA"), "PNG"),
        "png-16bit": _save(gray16, "PNG"),
        "png-palette": _save(rgb.convert("P"), "PNG"),
        "webp-lossy": _save(rgb, "WEBP", quality=80),
        "webp-lossless": _save(rgb, "WEBP", lossless=True),
        "tiff": _save(rgb, "TIFF"),
        "tiff-lzw": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-float": _save(floats, "TIFF"),
        "gif": _save(rgb.convert("P"), "GIF"),
        "gif-animated": animated.getvalue(),
        "bmp": _save(rgb, "BMP"),
    }


def _bit_flips(data: bytearray, rng: np.random.Generator) -> str:
    count = int(rng.integers(1, 33))
    for _ in range(count):
        position = int(rng.integers(0, len(data)))
        data[position] ^= 1 << int(rng.integers(0, 8))
    return f"{count} bit flips"


def _truncate(data: bytearray, rng: np.random.Generator) -> str:
    cut = int(rng.integers(0, len(data)))
    del data[cut:]
    return f"truncated at {cut}"


def _scramble_header(data: bytearray, rng: np.random.Generator) -> str:
    start = int(rng.integers(0, min(64, len(data))))
    length = int(rng.integers(1, 17))
    data[start:start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    return f"header bytes {start}..{start + length} random"


def _length_fields(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of every length-like field the container formats declare."""
    fields: list[tuple[int, str]] = []
    if data.startswith(b"\x89PNG"):
        position = 8
        while position + 8 <= len(data):
            fields.append((position, ">I"))
            position += 12 + struct.unpack(">I", data[position:position + 4])[0]
    elif data.startswith(b"\xff\xd8"):
        position = 2
        while position + 4 <= len(data) and data[position] == 0xFF and data[position + 1] not in (0xD9, 0xDA):
            fields.append((position + 2, ">H"))
            position += 2 + struct.unpack(">H", data[position + 2:position + 4])[0]
    elif data.startswith(b"RIFF"):
        fields += [(4, "<I"), (16, "<I")]
    elif data.startswith(b"BM"):
        fields += [(2, "<I"), (10, "<I"), (14, "<I"), (34, "<I")]
    elif data[:2] in (b"II", b"MM"):
        endian = "<" if data[:2] == b"II" else ">"
        fields.append((4, endian + "I"))
        ifd = struct.unpack(endian + "I", data[4:8])[0]
        if ifd + 2 <= len(data):
            fields.append((ifd, endian + "H"))
            count = struct.unpack(endian + "H", data[ifd:ifd + 2])[0]
            fields += [(ifd + 2 + 12 * i + 4, endian + "I") for i in range(count) if ifd + 14 + 12 * i <= len(data)]
    elif data.startswith(b"GIF"):
        fields += [(10, "<B"), (13, "<B")]
    return fields


def _corrupt_length(data: bytearray, rng: np.random.Generator) -> str:
    fields = _length_fields(bytes(data))
    if not fields:
        return _bit_flips(data, rng)
    offset, fmt = fields[int(rng.integers(0, len(fields)))]
    limit = 2 ** (8 * struct.calcsize(fmt))
    value = int(rng.choice([0, 1, limit - 1, limit // 2, int(rng.integers(0, limit))]))
    struct.pack_into(fmt, data, offset, value)
    return f"length field at {offset} set to {value}"


def _huge_size(data: bytearray, rng: np.random.Generator) -> str:
    """Declare a far larger picture than the bytes hold, fixing the PNG CRC so only the size is wrong."""
    width, height = (int(v) for v in rng.integers(1, 2 ** 16, 2))
    if data.startswith(b"\x89PNG"):
        width, height = (int(v) for v in rng.integers(1, 2 ** 31, 2))
        struct.pack_into(">II", data, 16, width, height)
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    elif data.startswith(b"\xff\xd8"):
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if sof < 0:
            return _bit_flips(data, rng)
        struct.pack_into(">HH", data, sof + 5, height, width)
    elif data.startswith(b"BM"):
        struct.pack_into("<ii", data, 18, width * 1000, height * 1000)
    elif data.startswith(b"GIF"):
        struct.pack_into("<HH", data, 6, width, height)
        descriptor = data.find(b"\x2c", 13)
        if descriptor > 0:
            struct.pack_into("<HH", data, descriptor + 5, width, height)
    elif data.startswith(b"RIFF") and data[12:16] == b"VP8L":
        bits = (width - 1) & 0x3FFF | ((height - 1) & 0x3FFF) << 14
        struct.pack_into("<I", data, 21, bits | (data[24] & 0xF0) << 24)
    else:
        return _corrupt_length(data, rng)
    return f"declared size {width}×{height}"


MUTATIONS = [_bit_flips, _truncate, _scramble_header, _corrupt_length, _huge_size]


def make_case(index: int, bases: dict[str, bytes]) -> tuple[str, bytes, str]:
    """Case `index`: (file name with a possibly wrong suffix, mutated bytes, what was done)."""
    rng = np.random.default_rng([SEED, index])
    kind = sorted(bases)[int(rng.integers(0, len(bases)))]
    data = bytearray(bases[kind])
    done = [MUTATIONS[int(rng.integers(0, len(MUTATIONS)))](data, rng) for _ in range(int(rng.integers(1, 3)))]
    suffix = SUFFIXES[int(rng.integers(0, len(SUFFIXES)))]
    return f"case{index:05d}-{kind}{suffix}", bytes(data), f"{kind}: " + "; ".join(done)


class _CaseTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _CaseTimeout


def _check_one(name: str, data: bytes, folder: Path, via_path: bool) -> str | None:
    """None when the outcome is allowed, else what went wrong."""
    try:
        if via_path:
            path = folder / name
            path.write_bytes(data)
            name = str(path)
            loaded = load_image(path)
        else:
            loaded = load_image(data, name=name)
    except ImageError as err:
        message = str(err)
        if not message.startswith(f"{name}: ") or "\n" in message or len(message) > len(name) + 400:
            return f"malformed error message {message!r}"
        return None
    pixels = loaded.pixels
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape != (loaded.height, loaded.width, 3):
        return f"decoded to {pixels.dtype} {pixels.shape}, not RGB uint8 {loaded.height}×{loaded.width}"
    if not pixels.flags.c_contiguous or min(pixels.shape[:2]) < 64:
        return f"decoded pixels break the contract: shape {pixels.shape}"
    return None


def run_cases(start: int, count: int, folder: Path, connection) -> None:
    """Child process body: run the cases under an address-space limit; send back failures and timings."""
    with open("/proc/self/statm") as handle:
        mapped = int(handle.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + EXTRA_ADDRESS_SPACE, resource.RLIM_INFINITY))
    signal.signal(signal.SIGALRM, _on_alarm)
    bases = base_images()
    failures, slowest = [], 0.0
    for index in range(start, start + count):
        name, data, what = make_case(index, bases)
        began = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        try:
            problem = _check_one(name, data, folder, via_path=index % 4 == 0)
        except _CaseTimeout:
            problem = f"no answer within {CASE_SECONDS} s"
        except BaseException as err:  # the point of the test: report anything that is not an ImageError
            problem = f"raised {type(err).__name__}: {err}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - began)
        if problem:
            failures.append(f"case {index} ({what}): {problem}")
    connection.send({"failures": failures, "slowest_s": slowest,
                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    connection.close()


def test_every_base_image_is_valid_before_mutation():
    for kind, data in base_images().items():
        loaded = load_image(data, name=kind)
        assert loaded.pixels.shape[2] == 3 and min(loaded.pixels.shape[:2]) >= 64, kind


def test_mutated_images_give_pixels_or_the_one_line_error(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("the fuzz cases run in a forked child with resource limits (POSIX only)")
    receiver, sender = multiprocessing.get_context("fork").Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=run_cases, args=(0, CASES, tmp_path, sender))
    child.start()
    sender.close()
    deadline = 60 + CASES * CASE_SECONDS / 10
    report = receiver.recv() if receiver.poll(deadline) else None
    child.join(10)
    if child.is_alive():
        child.kill()
    assert report is not None, f"the fuzz child died or hung (exit code {child.exitcode})"
    assert not report["failures"], f"{len(report['failures'])} of {CASES} cases failed:\n" + \
        "\n".join(report["failures"][:20])
    assert report["slowest_s"] < CASE_SECONDS
