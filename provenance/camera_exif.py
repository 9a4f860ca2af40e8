"""Camera EXIF: make, model, software and original date-time, shown to the analyst and never a vote (EXIF is copied
and forged freely), plus the EXIF text tags where some generators write their parameters."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

BASE_TAGS = {271: "Make", 272: "Model", 305: "Software", 270: "ImageDescription"}
EXIF_IFD = 0x8769
EXIF_TAGS = {36867: "DateTimeOriginal", 37510: "UserComment"}
MAX_TAG_CHARS = 1_000_000


@dataclass(frozen=True)
class CameraExif:
    """What the EXIF says about the device; each field None when absent."""

    make: str | None = None
    model: str | None = None
    software: str | None = None
    taken_at: str | None = None


def exif_tags(data: bytes, exif_block: bytes | None = None) -> dict[str, str]:
    """The named EXIF tags as text, from a raw EXIF block (a PNG's eXIf chunk) or else the file as Pillow opens it
    (headers only; the pixels are not decoded). ValueError (one line) when the file is no image Pillow knows."""
    if exif_block is not None:
        exif = Image.Exif()
        exif.load(exif_block)
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                exif = image.getexif()
        except Exception as err:  # noqa: BLE001 - Pillow's plugins raise many types for one meaning
            raise ValueError(f"its EXIF could not be read ({type(err).__name__})") from None
    tags = {name: exif.get(tag) for tag, name in BASE_TAGS.items()}
    inner = exif.get_ifd(EXIF_IFD)
    tags.update({name: inner.get(tag) for tag, name in EXIF_TAGS.items()})
    return {name: text for name, value in tags.items() if (text := _as_text(value))}


def camera_of(tags: dict[str, str]) -> CameraExif | None:
    """The device facts, or None when the EXIF names none of them."""
    camera = CameraExif(make=tags.get("Make"), model=tags.get("Model"), software=tags.get("Software"),
                        taken_at=tags.get("DateTimeOriginal"))
    return camera if any(vars(camera).values()) else None


def _as_text(value: object) -> str | None:
    """A tag value as stripped text; UserComment's 8-byte charset prefix (ASCII, UNICODE) is honoured."""
    if value is None:
        return None
    if isinstance(value, bytes):
        prefix, payload = value[:8], value[8:MAX_TAG_CHARS]
        if prefix.startswith(b"UNICODE"):
            text = payload.decode("utf-16-be" if payload[:1] == b"\0" else "utf-16-le", errors="replace")
        else:
            text = (payload if prefix.rstrip(b"\0") in (b"ASCII", b"") else value).decode("utf-8", errors="replace")
    else:
        text = str(value)
    return text.replace("\0", "").strip()[:MAX_TAG_CHARS] or None
