"""The provenance branch's cost per file: `ProvenanceBranch.run` on the development face set as it is (no Content
Credentials: the common case, a scan for markers plus EXIF and XMP) and on copies signed with Content Credentials
(validation, the expensive case) by a throwaway certificate chain made here and trusted as the user's anchor.
"""

from __future__ import annotations

import datetime
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

from core.timing import peak_memory_mb, timed
from runners.bench_settings import REPO, BenchSettings, face_images

FALLBACK_FACE = REPO / "tests" / "data" / "astronaut_face.jpg"
GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SIGNED_COPIES = 8


def bench_provenance(args: BenchSettings) -> Iterator[dict]:
    """ms per file for plain and signed files (every file read from bytes already in memory, as the pipeline's
    second read of a file it just decoded hits the page cache)."""
    from pipeline.branch import BranchContext, SourceFile
    from pipeline.branches import ProvenanceBranch

    files = ([p for cls in ("real", "stylegan2", "diffusion") for p in face_images(cls)][:args.images]
             or [FALLBACK_FACE])
    with tempfile.TemporaryDirectory() as folder:
        anchor = Path(folder) / "anchor.pem"
        signed = _signed_copies([p for p in files if p.suffix.lower() in (".jpg", ".jpeg")][:SIGNED_COPIES]
                                or [FALLBACK_FACE], anchor)
        branch = ProvenanceBranch()
        branch.load(BranchContext(precision=None, options={"trust": str(anchor)}))
        for kind, inputs in (("plain", [SourceFile(p.name, p.read_bytes()) for p in files]),
                             ("signed", [SourceFile(f"signed-{i}.jpg", data) for i, data in enumerate(signed)])):
            votes = sum(bool(e.probabilities) for e in branch.run(inputs))  # warm-up, and the check it votes
            with timed() as watch:
                for _ in range(args.repeats):
                    branch.run(inputs)
            yield {"stage": "provenance", "files": kind, "count": len(inputs), "votes_fake": votes,
                   "face_set": files[0] != FALLBACK_FACE,
                   "ms_per_image": round(1000 * watch.seconds / (len(inputs) * args.repeats), 2),
                   "peak_mem_mb": round(peak_memory_mb(), 1)}


def _signed_copies(files: list[Path], anchor: Path) -> list[bytes]:
    """Each file signed (declaring trainedAlgorithmicMedia) by a fresh chain whose root is written to `anchor`."""
    import c2pa
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _certificate("GANTrace benchmark root", None, root_key, root_key)
    leaf = _certificate("GANTrace benchmark signer", root, leaf_key, root_key)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root)).decode()
    anchor.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    manifest = {"claim_generator_info": [{"name": "gantrace-benchmark"}], "assertions": [
        {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": GENERATED}]}}]}
    copies = []
    for path in files:
        signer = c2pa.Signer.from_callback(lambda data: leaf_key.sign(data, ec.ECDSA(hashes.SHA256())),
                                           c2pa.C2paSigningAlg.ES256, pem, None)
        out = io.BytesIO()
        c2pa.Builder(manifest, c2pa.Context()).sign(signer, "image/jpeg", io.BytesIO(path.read_bytes()), out)
        copies.append(out.getvalue())
    return copies


def _certificate(common_name: str, issuer, key, signing_key):
    """A 30-day certificate: a CA when `issuer` is None (self-signed), else a leaf for signing (e-mail EKU, as
    c2pa's default trust configuration accepts)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca = issuer is None
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(subject if ca else issuer.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                            crl_sign=ca, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                              critical=False))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())
