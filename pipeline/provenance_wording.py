"""The provenance branch's findings as short plain lines, one a finding, for the app's panel and the report.

Pure: it reads the stable JSON of `evidence.provenance.details` (`provenance.findings.ProvenanceFindings.to_json`),
so the app, the report and a reader of saved verdicts word it the same way, and no UI code decides anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provenance.source_type import plain_words

TRUST_WORDS = {"trusted": "trusted (on the C2PA trust list or your --c2pa-trust anchors)",
               "untrusted": "not on your trust list",
               "invalid": "INVALID: the file was changed after it was signed"}


def provenance_lines(details: Mapping[str, Any] | None) -> list[str]:
    """One line per finding: Content Credentials, the XMP declaration, generator metadata, camera EXIF, the vote,
    and what could not be read; a file without any says so in one line."""
    if not details:
        return ["Provenance: not read"]
    lines = [_credentials_line(details.get("content_credentials"))]
    xmp = details.get("xmp") or {}
    if xmp.get("digital_source_type"):
        lines.append(f"XMP (unsigned) declares: {_declares(xmp['digital_source_type'])}")
    if xmp.get("creator_tool"):
        lines.append(f"XMP creator tool: {xmp['creator_tool']}")
    generator = details.get("generator_metadata")
    if generator:
        model = f", model {generator['model']}" if generator.get("model") else ""
        prompt = f"; prompt: “{generator['prompt']}”" if generator.get("prompt") else ""
        lines.append(f"Generator metadata (unsigned, {generator['found_in']}): {generator['generator']}{model}{prompt}")
    camera = details.get("camera")
    if camera:
        lines.append("Camera EXIF (unsigned, never a vote): " + ", ".join(
            f"{label} {camera[key]}" for key, label in (("make", "make"), ("model", "model"),
                                                         ("software", "software"), ("taken_at", "taken"))
            if camera.get(key)))
    lines.append(_vote_line(details))
    lines += [f"Could not read: {note}" for note in details.get("notes") or []]
    return lines


def _credentials_line(credentials: Mapping[str, Any] | None) -> str:
    if not credentials:
        return "Content Credentials: none (absence is not evidence: most files carry none, and they are easy to strip)"
    signer = credentials.get("signer") or "an unnamed signer"
    if credentials.get("signer_organization"):
        signer += f" ({credentials['signer_organization']})"
    state = TRUST_WORDS.get(credentials.get("validation"), str(credentials.get("validation")))
    codes = credentials.get("status_codes") or []
    parts = [f"Content Credentials: signed by {signer}, {state}" + (f" [{', '.join(codes)}]" if codes else "")]
    for action in credentials.get("actions") or []:
        if action.get("digital_source_type"):
            parts.append(f"declares: {_declares(action['digital_source_type'])}")
        if action.get("software_agent"):
            parts.append(f"software agent {action['software_agent']}")
    if credentials.get("claim_generator"):
        parts.append(f"claim generator {credentials['claim_generator']}")
    ingredients = credentials.get("ingredients") or {}
    if ingredients.get("count"):
        parts.append(f"{ingredients['count']} ingredient(s): {', '.join(ingredients.get('titles') or [])}")
    if credentials.get("signed_at"):
        parts.append(f"signed {credentials['signed_at']}")
    return "; ".join(parts)


def _declares(term: str) -> str:
    return f"{plain_words(term)} ({term})"


def _vote_line(details: Mapping[str, Any]) -> str:
    if details.get("votes_fake"):
        return (f"Vote: fake (trusted Content Credentials declare a generated picture; architecture "
                f"{details.get('architecture')})")
    if details.get("capture_original"):
        return "Vote: none. Trusted Content Credentials declare a camera capture: strong evidence of a camera " \
               "original, but not a vote for real (a re-photographed screen is a camera capture too)"
    return "Vote: none (only a valid signature from a trusted signer declaring a generated picture votes)"
