"""Everything the provenance branch found in one file, and the one rule by which any of it votes.

The trust rule: Content Credentials vote fake only when they validate, chain to a trust anchor in force and declare
a generative digital source type (`source_type.GENERATIVE`). The architecture is named only when the manifest
itself names ProGAN, StyleGAN2 or StyleGAN3; otherwise it is "unknown" and a warning names the declared generator.
A trusted capture manifest is shown as strong evidence of a camera original but never votes real (a re-photographed
screen is a camera original too). Untrusted or invalid signatures, unsigned XMP, generator metadata and EXIF are
shown and vote nothing; an invalid manifest is a warning of its own.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from provenance.c2pa_manifest import ContentCredentials
from provenance.camera_exif import CameraExif
from provenance.generator_metadata import GeneratorMetadata
from provenance.source_type import CAPTURE, GENERATIVE
from provenance.xmp import XmpFindings

ARCHITECTURE_NAMES = (("stylegan3", re.compile(r"style\s*-?\s*gan\s*-?\s*3", re.IGNORECASE)),
                      ("stylegan2", re.compile(r"style\s*-?\s*gan\s*-?\s*2", re.IGNORECASE)),
                      ("progan", re.compile(r"\bpro\s*-?\s*gan\b|\bpggan\b|progressive(ly)?[\s-]+grow", re.IGNORECASE)))


@dataclass(frozen=True)
class ProvenanceFindings:
    """What one file declares about its origin; `notes` holds one line per part that could not be read."""

    content_credentials: ContentCredentials | None = None
    xmp: XmpFindings | None = None
    generator: GeneratorMetadata | None = None
    camera: CameraExif | None = None
    trust: str = ""
    notes: tuple[str, ...] = ()

    @property
    def declared_source_type(self) -> str | None:
        """The digital source type the file declares: the manifest's first, else the XMP's."""
        manifest = self.content_credentials.source_types() if self.content_credentials else ()
        return manifest[0] if manifest else (self.xmp.digital_source_type if self.xmp else None)

    @property
    def votes_fake(self) -> bool:
        """The trust rule: a valid, trusted manifest that declares a generative source type."""
        credentials = self.content_credentials
        return bool(credentials and credentials.validation == "trusted"
                    and GENERATIVE & set(credentials.source_types()))

    @property
    def architecture(self) -> str | None:
        """When the file votes fake: the architecture the manifest names, else "unknown"; None when it does not vote."""
        if not self.votes_fake:
            return None
        text = " ".join(self.content_credentials.names())
        return next((arch for arch, pattern in ARCHITECTURE_NAMES if pattern.search(text)), "unknown")

    @property
    def capture_original(self) -> bool:
        """A trusted manifest declaring a capture and nothing generative: strong evidence, never a vote."""
        credentials = self.content_credentials
        types = set(credentials.source_types()) if credentials else set()
        return bool(credentials and credentials.validation == "trusted" and types & CAPTURE and not types & GENERATIVE)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Caveats the verdict repeats: a manifest broken after signing, a generator outside the known three."""
        credentials = self.content_credentials
        found = []
        if credentials and credentials.validation == "invalid":
            codes = ", ".join(credentials.status_codes) or "no status code given"
            found.append(f"Content Credentials are invalid ({codes}): the file was changed after it was signed")
        if self.architecture == "unknown":
            generator = "; ".join(credentials.names()) or "a generator it does not name"
            found.append(f"trusted Content Credentials declare the picture generated ({self.declared_source_type}) "
                         f"by {generator}, not one of the known architectures, so the generator is unknown")
        return tuple(found)

    def to_json(self) -> dict:
        """The stable JSON shape of `evidence.provenance.details` (every key always present, null when absent)."""
        credentials = self.content_credentials
        return {
            "content_credentials": None if credentials is None else {
                "validation": credentials.validation, "status_codes": list(credentials.status_codes),
                "claim_generator": credentials.claim_generator, "signer": credentials.signer,
                "signer_organization": credentials.signer_organization, "signed_at": credentials.signed_at,
                "actions": [asdict(action) for action in credentials.actions],
                "ingredients": {"count": len(credentials.ingredients), "titles": list(credentials.ingredients)}},
            "xmp": None if self.xmp is None else asdict(self.xmp),
            "generator_metadata": None if self.generator is None else asdict(self.generator),
            "camera": None if self.camera is None else asdict(self.camera),
            "declared_source_type": self.declared_source_type,
            "votes_fake": self.votes_fake, "architecture": self.architecture,
            "capture_original": self.capture_original, "warnings": list(self.warnings),
            "trust": self.trust, "notes": list(self.notes)}
