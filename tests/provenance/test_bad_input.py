"""Bad input costs one line in the provenance evidence, never a traceback, and the other readers still report."""

from __future__ import annotations

import time

from PIL import Image, PngImagePlugin

from made_files import CHAIN, FACE, xmp_jpeg
from provenance.c2pa_manifest import ManifestReader
from provenance.read import read_provenance
from provenance.trust import load_trust

BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description>&lol3;</rdf:Description></rdf:RDF></x:xmpmeta>')


def read(data: bytes, name: str = "bad.jpg"):
    return read_provenance(data, name, ManifestReader(load_trust(CHAIN)))


def one_liners(found) -> bool:
    return all("\n" not in note and "Traceback" not in note for note in found.notes)


def test_corrupted_jumbf_is_a_one_line_note_or_invalid_and_never_votes(made):
    data = bytearray(made["signed"].read_bytes())
    start = data.find(b"jumb")
    for index in range(start + 40, start + 400):
        data[index] ^= 0xA5
    found = read(bytes(data))
    assert not found.votes_fake and one_liners(found)
    assert found.notes or found.content_credentials.validation == "invalid"


def test_a_manifest_whose_claim_is_garbage_fails_to_parse_in_one_line(made):
    data = bytearray(made["signed"].read_bytes())
    start = data.find(b"c2pa.signature") + 30
    data[start:start + 200] = b"\x7f" * 200
    found = read(bytes(data))
    assert found.content_credentials is None and not found.votes_fake
    assert any("Content Credentials could not be read" in note for note in found.notes) and one_liners(found)


def test_truncated_file_keeps_a_one_line_note(made):
    data = made["signed"].read_bytes()
    found = read(data[:data.find(b"jumb") + 300])
    assert not found.votes_fake and found.notes and one_liners(found)
    assert all(note.startswith("bad.jpg: ") for note in found.notes)


def test_xml_bomb_in_xmp_is_refused_without_expanding(tmp_path):
    found = read(xmp_jpeg(tmp_path / "bomb.jpg", packet=BOMB).read_bytes())
    assert found.xmp is None
    assert any("DTD or entities" in note for note in found.notes) and one_liners(found)


def test_ten_megabyte_text_chunk_is_measured_not_parsed(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "x" * 10_000_000)
    Image.open(FACE).save(tmp_path / "huge.png", "PNG", pnginfo=info)
    started = time.perf_counter()
    found = read((tmp_path / "huge.png").read_bytes(), "huge.png")
    assert time.perf_counter() - started < 1.0
    assert found.generator is None
    assert any("'parameters' is 10,000,0" in note and "not parsed" in note for note in found.notes)
    assert one_liners(found)


def test_a_file_whose_extension_lies_is_read_as_what_it_is(made, tmp_path):
    liar = tmp_path / "photo.jpg"
    liar.write_bytes(made["sd_png"].read_bytes())
    found = read(liar.read_bytes(), liar.name)
    assert found.generator.generator == "Stable Diffusion WebUI"
    assert any("is PNG although its name says .jpg" in note for note in found.notes)


def test_bytes_that_are_no_image_give_notes_not_exceptions():
    found = read(b"\xff\xd8\xff" + b"c2pa jumb" * 50, "noise.jpg")
    assert not found.votes_fake and one_liners(found)
