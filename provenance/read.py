"""Read every kind of provenance a file may carry, each part on its own: a part that fails becomes one line in
`ProvenanceFindings.notes` and the others still run (a truncated manifest must not hide the camera EXIF)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import TypeVar

from provenance.c2pa_manifest import ManifestReader
from provenance.camera_exif import camera_of, exif_tags
from provenance.findings import ProvenanceFindings
from provenance.generator_metadata import find_generator
from provenance.png_text import PngChunks, is_png, png_chunks
from provenance.xmp import packet_in, read_xmp

PNG_XMP_KEY = "XML:com.adobe.xmp"
MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF8", "GIF"), (b"II*\0", "TIFF"),
         (b"MM\0*", "TIFF"), (b"BM", "BMP"))
SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP", ".webp": "WEBP"}
T = TypeVar("T")


def read_provenance(data: bytes, name: str, manifests: ManifestReader) -> ProvenanceFindings:
    """All provenance findings of one file's bytes; `name` only labels the notes and checks the extension."""
    notes: list[str] = []
    note = notes.append
    lying = _extension_note(data, name)
    if lying:
        note(f"{name}: {lying}")
    chunks = _attempt(lambda: png_chunks(data), name, note) if is_png(data) else None
    chunks = chunks or PngChunks()
    notes += [f"{name}: {line}" for line in chunks.notes]
    credentials = _attempt(lambda: manifests.read(data), name, note)
    packet = chunks.texts.get(PNG_XMP_KEY) or packet_in(data)
    xmp = _attempt(lambda: read_xmp(packet), name, note) if packet else None
    tags = _attempt(lambda: exif_tags(data, chunks.exif), name, note) if chunks.exif or not is_png(data) else None
    generator = _attempt(lambda: find_generator(chunks.texts, tags or {}), name, note)
    return ProvenanceFindings(content_credentials=credentials, xmp=xmp, generator=generator,
                              camera=camera_of(tags or {}), trust=manifests.trust.description, notes=tuple(notes))


def sniffed_format(data: bytes) -> str | None:
    """The container the bytes hold, by their magic number (None when none of the image formats we read)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in MAGIC if data.startswith(magic)), None)


def _extension_note(data: bytes, name: str) -> str | None:
    claimed = SUFFIX_FORMAT.get(PurePath(name).suffix.lower())
    actual = sniffed_format(data)
    if claimed and actual and claimed != actual:
        return f"the file is {actual} although its name says {PurePath(name).suffix}; it was read as {actual}"
    return None


def _attempt(part: Callable[[], T], name: str, note: Callable[[str], None]) -> T | None:
    """Run one reader; its failure is one line naming the file, never a traceback."""
    try:
        return part()
    except Exception as err:  # noqa: BLE001 - any reader failure is a finding about the file, not a crash
        message = " ".join(str(err).split()) or type(err).__name__
        note(f"{name}: {message}" if isinstance(err, ValueError) else f"{name}: {type(err).__name__}: {message}")
        return None
