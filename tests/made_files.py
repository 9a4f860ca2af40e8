"""Files with provenance, made at test time: a face signed with the C2PA test chain, the same face altered after
signing, a PNG with Stable Diffusion WebUI parameters, a JPEG with an XMP digital source type, a stripped copy.
Beside tiny_models.py so that the provenance, app and report tests all import the one copy."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

DATA = Path(__file__).resolve().parent / "data"
FACE = DATA / "astronaut_face.jpg"
CHAIN = DATA / "c2pa" / "es256_certs.pem"
KEY = DATA / "c2pa" / "es256_private.key"
GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURED = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
SD_PARAMETERS = ("portrait of a smiling woman, studio light\nNegative prompt: blurry\n"
                 "Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, "
                 "Model: v1-5-pruned-emaonly, Version: v1.10.1")


def signed_face(target: Path, source_type: str = GENERATED, agent: str = "StyleGAN2 ada") -> Path:
    """The test face with Content Credentials from the test chain: a c2pa.created action declaring `source_type`."""
    import c2pa

    builder = c2pa.Builder(_manifest(target.name, source_type, agent), c2pa.Context())
    builder.sign_file(str(FACE), str(target), _signer())
    return target


def _signer():
    """The test chain's leaf key signing offline (ECDSA P-256 over SHA-256, no time-stamp server)."""
    import c2pa
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(KEY.read_bytes(), None)
    return c2pa.Signer.from_callback(lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())),
                                     c2pa.C2paSigningAlg.ES256, CHAIN.read_text(), None)


def _manifest(title: str, source_type: str, agent: str) -> dict:
    return {"claim_generator_info": [{"name": "gantrace-tests", "version": "1"}], "title": title,
            "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": source_type, "softwareAgent": agent}]}}]}


def altered(signed: Path, target: Path) -> Path:
    """The signed file with bytes of its JPEG scan data flipped: other pixels, the same manifest."""
    data = bytearray(signed.read_bytes())
    end = len(data) - 2  # before the EOI marker
    for index in range(end - 240, end - 200):
        data[index] ^= 0x55
    target.write_bytes(bytes(data))
    return target


def sd_png(target: Path, parameters: str = SD_PARAMETERS) -> Path:
    """The face as a PNG carrying A1111's `parameters` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    Image.open(FACE).save(target, "PNG", pnginfo=info)
    return target


def xmp_jpeg(target: Path, packet: str | None = None, source_type: str = GENERATED) -> Path:
    """The face as a JPEG with an XMP packet declaring `source_type` (unsigned)."""
    packet = packet or (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Generator X 2">'
        f'<Iptc4xmpExt:DigitalSourceType>{source_type}</Iptc4xmpExt:DigitalSourceType>'
        '</rdf:Description></rdf:RDF></x:xmpmeta>')
    Image.open(FACE).save(target, "JPEG", quality=90, xmp=packet.encode())
    return target


def stripped(source: Path, target: Path) -> Path:
    """The pixels of `source` re-encoded with no metadata at all."""
    pixels = np.asarray(Image.open(source).convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    target.write_bytes(buffer.getvalue())
    return target


def remote_manifest_face(url: str) -> bytes:
    """The test face whose Content Credentials are not embedded but referenced at `url` (XMP dcterms:provenance)."""
    import c2pa

    builder = c2pa.Builder(_manifest("remote.jpg", GENERATED, "StyleGAN2 ada"), c2pa.Context())
    builder.set_no_embed()
    builder.set_remote_url(url)
    out = io.BytesIO()
    builder.sign(_signer(), "image/jpeg", io.BytesIO(FACE.read_bytes()), out)
    return out.getvalue()
