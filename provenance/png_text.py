"""The text chunks (tEXt, zTXt, iTXt) and the eXIf chunk of a PNG, read by walking its chunks with bounds.

Why not Pillow: opening a PNG reads every text chunk before the pixels, however long; here a value longer than
`MAX_VALUE_BYTES` is only measured (a 10 MB chunk costs a skip, not a parse) and compressed values are inflated
at most that far, so a zlib bomb stops early.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_VALUE_BYTES = 1_000_000


@dataclass(frozen=True)
class PngChunks:
    """Text values by keyword, the raw EXIF block (None without one) and one line per value left unread."""

    texts: dict[str, str] = field(default_factory=dict)
    exif: bytes | None = None
    notes: tuple[str, ...] = ()


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def png_chunks(data: bytes, max_value: int = MAX_VALUE_BYTES) -> PngChunks:
    """Every text chunk up to `max_value` bytes and the eXIf chunk; ValueError (one line) for a broken chunk list."""
    texts: dict[str, str] = {}
    notes: list[str] = []
    exif = None
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        start, end = position + 8, position + 8 + length
        if end > len(data):
            notes.append(f"its PNG chunk {kind.decode('latin-1')!r} is cut off (the file is truncated)")
            break
        if kind == b"IEND":
            break
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = data[start:min(end, start + 80)].partition(b"\0")[0].decode("latin-1")
            if length > max_value:
                notes.append(f"its PNG text chunk {keyword!r} is {length:,} bytes, over the {max_value:,} read; "
                             "not parsed")
            else:
                value = _text_value(kind, data[start:end], max_value)
                if value is None:
                    notes.append(f"its PNG text chunk {keyword!r} could not be decoded")
                else:
                    texts.setdefault(keyword, value)
        elif kind == b"eXIf" and length <= max_value:
            exif = data[start:end]
        position = end + 4  # the CRC
    return PngChunks(texts=texts, exif=exif, notes=tuple(notes))


def _text_value(kind: bytes, body: bytes, max_value: int) -> str | None:
    _, _, rest = body.partition(b"\0")
    try:
        if kind == b"tEXt":
            return rest.decode("latin-1")
        if kind == b"zTXt":
            return _inflate(rest[1:], max_value).decode("latin-1")
        compressed, rest = rest[0], rest[2:]
        _language, _, rest = rest.partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        return (_inflate(text, max_value) if compressed else text).decode("utf-8", errors="replace")
    except (zlib.error, IndexError, ValueError):
        return None


def _inflate(compressed: bytes, max_value: int) -> bytes:
    """At most `max_value` bytes of a zlib stream; longer output is refused (a decompression bomb)."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(compressed, max_value + 1)
    if len(out) > max_value:
        raise ValueError("text chunk inflates past the read limit")
    return out
