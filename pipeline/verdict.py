"""What GANTrace answers for one image: the `Verdict` (DESIGN.md's JSON contract), a `Failure`, and their CSV row.

Kept apart from the pipeline that produces them so the app, the batch runners and the evidence report can read
and write results without knowing how they were computed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from pipeline.fusion import PROBABILITY_LABELS

PROVENANCE = "provenance"  # the branch whose findings have CSV columns of their own
SCHEMA_VERSION = 2  # 2: label "undecided" when nothing voted on real vs fake (1 said "unknown" for it too)


@dataclass
class EvidencePictures:
    """Pictures an analyst looks at; RGB uint8 arrays, None when the branch behind them did not run.

    aligned_face is the face the verdict is about (`Verdict.faces[primary]`); faces holds every analysed face;
    faces_overview is the image with each analysed face boxed, numbered and coloured by its own label.
    """

    aligned_face: np.ndarray | None = None
    spectrum: np.ndarray | None = None
    gradcam: np.ndarray | None = None
    faces: list[np.ndarray] = field(default_factory=list)
    faces_overview: np.ndarray | None = None


@dataclass
class Verdict:
    """The answer for one image; `to_dict()` gives exactly the JSON fields of DESIGN.md's contract.

    `label` is one of `pipeline.fusion.LABELS` (schema 2): "real"; "progan", "stylegan2" or "stylegan3" (fake, made
    by that architecture); "unknown" (fake, by a generator none of the known ones fits, or no attribution branch
    with the skill to say ran: `warnings` says which); "undecided" (no branch with the skill to vote decided real vs
    fake: `is_fake`, `fake_probability` and every probability are None, and `uncertain` says why).

    With several faces, each entry of `faces` carries its own label, probabilities and face-level evidence; the
    image-level fields describe the most suspicious face (highest P(fake), the largest face on ties), so the
    image is called fake when any face is, and a single-face image reads exactly as before. `uncertain` lists why
    the verdict should not be read as confident (near the decision point, detectors disagree, an input outside a
    voting branch's training data); empty when it can.
    `timings_ms` holds each stage's share of its batch's wall time and `total`, the image's share of the whole
    batch; alignment runs beside the image-level branches, so the stages can add up to more than `total`.
    """

    file: str
    sha256: str
    width: int
    height: int
    is_fake: bool | None
    fake_probability: float | None
    label: str
    probabilities: dict[str, float | None]
    evidence: dict[str, dict | None]
    faces: list[dict]
    warnings: list[str]
    timings_ms: dict[str, float]
    models: dict[str, str]
    uncertain: list[str] = field(default_factory=list)
    pictures: EvidencePictures | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """DESIGN.md's JSON fields, led by `schema_version` so a program can tell the label sets apart."""
        return {"schema_version": SCHEMA_VERSION,
                **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "pictures"}}

    def to_row(self) -> dict[str, str]:
        probs = self.probabilities
        row = {"file": self.file, "sha256": self.sha256, "label": self.label, "is_fake": _cell(self.is_fake),
               "fake_probability": _cell(self.fake_probability), "faces": str(len(self.faces)),
               "face": _cell(primary_face_index(self.faces)), "warnings": " | ".join(self.warnings), "error": ""}
        row.update({f"p_{label}": _cell(probs.get(label)) for label in PROBABILITY_LABELS})
        row.update(provenance_cells(self.evidence))
        return row

    def face_rows(self) -> list[dict[str, str]]:
        """One CSV row per analysed face (the image's row when there is none), for `scan.py --per-face`."""
        if not self.faces:
            return [self.to_row()]
        rows = []
        for index, face in enumerate(self.faces):
            row = self.to_row()
            probs = face.get("probabilities") or {}
            row.update(face=str(index), label=face.get("label", ""), is_fake=_cell(face.get("is_fake")),
                       fake_probability=_cell(face.get("fake_probability")))
            row.update({f"p_{label}": _cell(probs.get(label)) for label in PROBABILITY_LABELS})
            rows.append(row)
        return rows


def provenance_cells(evidence: dict[str, dict | None]) -> dict[str, str]:
    """The provenance branch's CSV cells: the declared digital source type, the signer and the validation state of
    its Content Credentials ("absent" without any); empty when the branch did not run. Never the prompt."""
    details = (evidence.get(PROVENANCE) or {}).get("details")
    if not details:
        return {}
    credentials = details.get("content_credentials") or {}
    return {"provenance_source_type": _cell(details.get("declared_source_type")),
            "provenance_signer": _cell(credentials.get("signer")),
            "provenance_validation": _cell(credentials.get("validation") or "absent")}


def primary_face_index(faces: list[dict]) -> int | None:
    """The index (in a verdict's `faces`) of the face the image-level answer is about, or None without faces."""
    flagged = [i for i, face in enumerate(faces) if face.get("primary")]
    return flagged[0] if flagged else (0 if faces else None)


@dataclass
class Failure:
    """An input that could not be analysed (not an image, truncated, too large...), with the one-line reason."""

    file: str
    error: str

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "file": self.file, "error": self.error}

    def to_row(self) -> dict[str, str]:
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update(file=self.file, error=self.error)
        return row

    def face_rows(self) -> list[dict[str, str]]:
        return [self.to_row()]


Result = Verdict | Failure
CSV_COLUMNS = ("file", "sha256", "label", "is_fake", "fake_probability",
               *(f"p_{label}" for label in PROBABILITY_LABELS),
               "faces", "face", "warnings", "error",
               "provenance_source_type", "provenance_signer", "provenance_validation")


def write_csv(results: Iterable[Result], per_face: bool = False) -> str:
    """The CSV text of a batch (one row per file, or per face), as the app's download and scan.py write it."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for result in results:
        writer.writerows(result.face_rows() if per_face else [result.to_row()])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)
