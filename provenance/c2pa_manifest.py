"""Content Credentials (a C2PA manifest) read and validated by the Content Authenticity Initiative's own library.

Why c2pa-python: signature, certificate-chain and hard-binding checks are the part of provenance that must not be
hand-rolled; this module only turns the library's reader JSON into the few facts an analyst needs, and its
validation state into one of three words: "trusted" (valid and chained to a trust anchor), "untrusted" (valid but
the signer is on no trust list in force) or "invalid" (a check failed, e.g. `assertion.dataHash.mismatch`: the
pixels changed after signing).
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from typing import Any

from provenance.source_type import short_name
from provenance.trust import TrustAnchors

# an embedded manifest store is a JUMBF box labelled c2pa; a remote one is referenced by XMP dcterms:provenance
JUMBF_MARKERS = (b"jumb", b"c2pa", b"dcterms:provenance")
VALIDATION = {"Trusted": "trusted", "Valid": "untrusted", "Invalid": "invalid"}


@dataclass(frozen=True)
class ManifestAction:
    """One action of the active manifest (c2pa.created, c2pa.edited...) with what it declares."""

    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None


@dataclass(frozen=True)
class ContentCredentials:
    """The active manifest's facts; `validation` is "trusted", "untrusted" or "invalid"."""

    claim_generator: str | None
    actions: tuple[ManifestAction, ...]
    ingredients: tuple[str, ...]
    signer: str | None
    signer_organization: str | None
    signed_at: str | None
    validation: str
    status_codes: tuple[str, ...]

    def source_types(self) -> tuple[str, ...]:
        """Every digital source type the actions declare, in order, once each."""
        return tuple(dict.fromkeys(a.digital_source_type for a in self.actions if a.digital_source_type))

    def names(self) -> tuple[str, ...]:
        """Every generator name the manifest gives (claim generator, software agents), for naming an architecture."""
        return tuple(name for name in (self.claim_generator, *(a.software_agent for a in self.actions)) if name)


class ManifestReader:
    """Reads manifests with one c2pa Context built from the trust anchors (the Context is reused across files)."""

    def __init__(self, trust: TrustAnchors):
        self.trust = trust
        self._context: Any = None
        self._lock = threading.Lock()

    def read(self, data: bytes) -> ContentCredentials | None:
        """The file's Content Credentials, or None when it carries none; a manifest that cannot be parsed raises
        ValueError with the library's reason on one line."""
        if not any(marker in data for marker in JUMBF_MARKERS):
            return None
        import c2pa

        try:
            reader = c2pa.Reader(io.BytesIO(data), context=self._reader_context())
        except c2pa.C2paError.ManifestNotFound:
            return None
        except c2pa.C2paError as err:
            if isinstance(err, c2pa.C2paError.RemoteManifest) or str(err).startswith("Remote:"):
                raise ValueError("its Content Credentials are stored remotely and were not fetched (reading "
                                 f"stays offline): {_one_line(err)}") from None
            raise ValueError(f"its Content Credentials could not be read ({_one_line(err)})") from None
        try:
            report = json.loads(reader.json())
        finally:
            reader.close()
        return parse_report(report)

    def _reader_context(self) -> Any:
        import c2pa

        with self._lock:
            if self._context is None:
                self._context = c2pa.Context.from_dict(self.trust.reader_settings())
            return self._context


def parse_report(report: dict) -> ContentCredentials:
    """The facts GANTrace shows, from c2pa-python's reader JSON (`Reader.json()`)."""
    manifest = (report.get("manifests") or {}).get(report.get("active_manifest") or "")
    if not isinstance(manifest, dict):
        raise ValueError("its Content Credentials name no active manifest")
    signature = manifest.get("signature_info") or {}
    codes = tuple(str(item.get("code")) for item in report.get("validation_status") or [] if isinstance(item, dict))
    return ContentCredentials(
        claim_generator=_claim_generator(manifest), actions=_actions(manifest),
        ingredients=tuple(str(i.get("title") or "untitled") for i in manifest.get("ingredients") or []
                          if isinstance(i, dict)),
        signer=_text(signature.get("common_name")), signer_organization=_text(signature.get("issuer")),
        signed_at=_text(signature.get("time")),
        validation=VALIDATION.get(str(report.get("validation_state")), "invalid"), status_codes=codes)


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        return _agent(info[0])
    return _text(manifest.get("claim_generator"))


def _actions(manifest: dict) -> tuple[ManifestAction, ...]:
    actions = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for item in (assertion.get("data") or {}).get("actions") or []:
            if isinstance(item, dict):
                actions.append(ManifestAction(action=str(item.get("action") or "unnamed"),
                                              digital_source_type=short_name(item.get("digitalSourceType")),
                                              software_agent=_agent(item.get("softwareAgent"))))
    return tuple(actions)


def _agent(value: Any) -> str | None:
    """A software agent or claim generator: a string, or {"name", "version"}."""
    if isinstance(value, dict):
        return _text(" ".join(str(value[key]) for key in ("name", "version") if value.get(key)))
    return _text(value)


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
