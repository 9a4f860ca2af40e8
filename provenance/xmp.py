"""The XMP packet's IPTC digital source type (`Iptc4xmpExt:DigitalSourceType`) and creator tool, parsed safely.

Why not Pillow's `getxmp`: it parses only with defusedxml, which is not installed, and reads a packet per format.
Here the packet is cut out of the file's bytes (JPEG APP1, WebP, TIFF and uncompressed PNG packets all hold it
verbatim) and refused before parsing when it declares a DTD or entities, so an XML bomb never expands.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from provenance.source_type import short_name

IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
MAX_PACKET_CHARS = 2_000_000
_START = re.compile(rb"<x:x[am]pmeta\b")
_END = re.compile(rb"</x:x[am]pmeta>")
_DECLARATIONS = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_DECLARATION_BYTES = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
DECLARATION_LOOKBACK = 65_536


@dataclass(frozen=True)
class XmpFindings:
    """What the packet declares; each field None when absent."""

    digital_source_type: str | None = None
    creator_tool: str | None = None


def packet_in(data: bytes) -> str | None:
    """The first XMP packet held verbatim in a file's bytes, or None."""
    start = _START.search(data)
    if start is None:
        return None
    end = _END.search(data, start.end())
    stop = end.end() if end else min(len(data), start.start() + MAX_PACKET_CHARS + 1)
    begin = start.start()
    declaration = _DECLARATION_BYTES.search(data, max(0, begin - DECLARATION_LOOKBACK), begin)
    if declaration:  # a DTD written before the packet travels with it, so that `read_xmp` refuses it
        begin = declaration.start()
    return data[begin:stop].decode("utf-8", errors="replace")


def read_xmp(packet: str) -> XmpFindings:
    """The declared source type and creator tool; ValueError (one line) for a packet refused or malformed."""
    if len(packet) > MAX_PACKET_CHARS:
        raise ValueError(f"its XMP packet ({len(packet):,} characters) is over the {MAX_PACKET_CHARS:,} read")
    if _DECLARATIONS.search(packet):
        raise ValueError("its XMP declares a DTD or entities (a possible XML bomb), so it was not parsed")
    try:
        root = ElementTree.fromstring(packet)
    except ElementTree.ParseError as err:
        raise ValueError(f"its XMP is not well-formed XML ({err})") from None
    return XmpFindings(digital_source_type=short_name(_first(root, IPTC_EXT, "DigitalSourceType")),
                       creator_tool=_first(root, XMP_BASIC, "CreatorTool"))


def _first(root: ElementTree.Element, namespace: str, name: str) -> str | None:
    """A property written either as an attribute of rdf:Description or as an element (text or rdf:resource)."""
    key = f"{{{namespace}}}{name}"
    for element in root.iter():
        if key in element.attrib:
            return element.attrib[key].strip() or None
        if element.tag == key:
            value = element.attrib.get(f"{{{RDF}}}resource") or "".join(element.itertext())
            return value.strip() or None
    return None
