"""What the pipeline knows about one image while its batch runs, and how that becomes a `Verdict`.

Split from `pipeline.pipeline` so the pipeline keeps only loading, batching and isolation; here live the per-face
fusion rule (each face fused with the image-level evidence; the image reports its most suspicious face) and the
order-stable assembly of warnings, models and timings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.branch import SourceFile
from pipeline.fusion import FusionConfig, Fused, Roles, Skills, Voters, fuse
from pipeline.evidence import BranchEvidence
from core.images import LoadedImage
from core.timing import timed
from pipeline.verdict import EvidencePictures, Failure, Result, Verdict

STAGE_ORDER_HEAD = ("load",)
STAGE_ORDER_TAIL = ("align", "fusion", "pictures")


@dataclass(eq=False)
class ImageRecord:
    """Working state of one image (face fields are written by the alignment thread)."""

    name: str
    source: Any = None
    image: LoadedImage | None = None
    error: str | None = None
    evidence: dict[str, BranchEvidence] = field(default_factory=dict)
    aligned: list = field(default_factory=list)
    face_evidence: list[dict[str, BranchEvidence]] = field(default_factory=list)
    no_face: str | None = None
    face_warnings: list[str] = field(default_factory=list)
    face_models: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    fused: Fused | None = None
    face_fused: list[Fused] = field(default_factory=list)
    primary: int | None = None
    pictures: EvidencePictures | None = None

    def used(self, branch: Any) -> None:
        """Record the weights a branch used on this image and repeat its caveat once."""
        self.models.update(branch.models)
        if branch.warning and branch.warning not in self.warnings:
            self.warnings.append(branch.warning)

    def take_faces(self, found: Any, models: dict[str, str], max_faces: int, max_error: float) -> None:
        """Keep the largest `max_faces` aligned faces, or the reason there are none, with the warnings due (faces are
        numbered from 1 in messages, as in the app and the report)."""
        if isinstance(found, BranchEvidence):
            self.no_face = found.reason
            return
        if not isinstance(found, list):
            self.no_face = found.message
            self.face_warnings.append(f"{found.message}; the detectors were trained on faces, so weigh this "
                                      "verdict with care")
            return
        self.face_models.update(models)
        if len(found) > max_faces:
            self.face_warnings.append(f"{len(found)} faces found; only the {max_faces} largest were analysed "
                                      "(max_faces)")
        self.aligned = found[:max_faces]
        self.face_evidence = [{} for _ in self.aligned]
        for index, face in enumerate(self.aligned):
            if face.alignment_error > max_error:
                self.face_warnings.append(f"face {index + 1}: alignment is poor (error {face.alignment_error:.3f} > "
                                          f"{max_error}); its latent evidence is less reliable")

    def fuse(self, config: FusionConfig, skills: Skills, roles: Roles) -> None:
        """Fuse each face with the image-level evidence; the image answers for its most suspicious face."""
        if not self.aligned:
            self.fused = fuse(self.evidence, roles, config, skills)
            return
        self.face_fused = [fuse({**self.evidence, **own}, roles, config, skills) for own in self.face_evidence]
        scores = [-1.0 if f.fake_probability is None else f.fake_probability for f in self.face_fused]
        self.primary = int(np.argmax(scores))
        self.fused = self.face_fused[self.primary]
        self.evidence.update(self.face_evidence[self.primary])
        if len(self.aligned) > 1:
            self.face_warnings.append(f"{len(self.aligned)} faces analysed; the verdict is for face "
                                      f"{self.primary + 1}, the most suspicious (highest P(fake), largest on ties); every face's own "
                                      "answer is in `faces`")

    def result(self, total_ms: float, branch_names: Sequence[str], skills: Skills) -> Result:
        """The Verdict (or Failure); warnings and models in a fixed order whatever the threads' timing (the
        branches' skill notes come from the voters fusion worked out for the face the verdict answers for)."""
        if self.image is None:
            return Failure(file=self.name, error=self.error or f"{self.name}: could not be analysed")
        fused = self.fused
        order = (*STAGE_ORDER_HEAD, *branch_names, *STAGE_ORDER_TAIL)
        timings = {stage: round(self.timings[stage], 2) for stage in order if stage in self.timings}
        timings["total"] = round(total_ms, 2)
        return Verdict(
            file=self.name, sha256=self.image.sha256, width=self.image.width, height=self.image.height,
            is_fake=fused.is_fake, fake_probability=_rounded(fused.fake_probability), label=fused.label,
            probabilities=_rounded_all(fused.probabilities),
            evidence={name: _evidence_record(name, self.evidence.get(name, BranchEvidence(reason="not run")),
                                             skills.get(name), fused.voters) for name in branch_names},
            faces=[self._face_record(i, skills) for i in range(len(self.aligned))],
            warnings=[*self.image.warnings, *self.warnings, *self.face_warnings, *self._evidence_warnings(branch_names),
                      *fused.warnings], timings_ms=timings,
            models=dict(sorted({**self.models, **self.face_models}.items())), uncertain=fused.uncertain,
            pictures=self.pictures)

    def source_file(self) -> SourceFile:
        """The file as received, for "file" branches (they read its bytes inside their own isolation)."""
        return SourceFile(name=self.name, source=self.source)

    def _evidence_warnings(self, branch_names: Sequence[str]) -> list[str]:
        """The per-image caveats the branches' evidence carries, in registry order."""
        return [note for name in branch_names for note in self.evidence.get(name, BranchEvidence()).warnings]

    def _face_record(self, index: int, skills: Skills) -> dict:
        face, fused = self.aligned[index], self.face_fused[index]
        return {"box": [int(v) for v in face.box],
                "landmarks": np.round(np.asarray(face.landmarks, dtype=np.float64), 1).tolist(),
                "alignment_error": round(float(face.alignment_error), 4), "primary": index == self.primary,
                "label": fused.label, "is_fake": fused.is_fake, "fake_probability": _rounded(fused.fake_probability),
                "probabilities": _rounded_all(fused.probabilities),
                "uncertain": fused.uncertain,
                "evidence": {name: _evidence_record(name, evidence, skills.get(name), fused.voters)
                             for name, evidence in self.face_evidence[index].items()}}


def make_pictures(items: list[ImageRecord],
                  explainer: tuple[str, Callable[[np.ndarray], np.ndarray]] | None) -> None:
    """Evidence pictures; a failure here only costs the picture, never the verdict. The explaining branch draws
    only on images it ran on."""
    from detector.spectrum import spectrum_picture

    for item in items:
        with timed() as watch:
            faces = [face.image for face in item.aligned]
            pictures = EvidencePictures(aligned_face=faces[item.primary] if faces else None, faces=faces)
            if faces:
                pictures.faces_overview = _picture(item, "faces overview", lambda: faces_overview(
                    item.image.pixels, [face.box for face in item.aligned], [f.label for f in item.face_fused]))
            pictures.spectrum = _picture(item, "spectrum picture", lambda: spectrum_picture(item.image.pixels))
            if explainer is not None and item.evidence.get(explainer[0], BranchEvidence()).ran:
                pictures.gradcam = _picture(item, "Grad-CAM", lambda: explainer[1](item.image.pixels))
        item.pictures = pictures
        item.timings["pictures"] = watch.seconds * 1000


LABEL_COLOURS = {"real": (46, 125, 50), "unknown": (239, 108, 0), "undecided": (117, 117, 117)}
FAKE_COLOUR = (198, 40, 40)


def faces_overview(pixels: np.ndarray, boxes: Sequence[Sequence[int]], labels: Sequence[str]) -> np.ndarray:
    """The image with every analysed face boxed and numbered from 1 (largest first), green when judged real, red
    when judged made by a known GAN, orange for an unknown generator, grey when undecided (nothing voted)."""
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.fromarray(pixels).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(canvas.size) / 40)))
    for number, (box, label) in enumerate(zip(boxes, labels), start=1):
        colour = LABEL_COLOURS.get(label, FAKE_COLOUR)
        x0, y0, x1, y1 = (int(v) for v in box)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=width)
        tag = draw.textbbox((x0, y0), str(number), font=font)
        pad = width + 2
        draw.rectangle((tag[0], tag[1], tag[2] + 2 * pad, tag[3] + 2 * pad), fill=colour)
        draw.text((x0 + pad, y0 + pad), str(number), fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def _picture(item: ImageRecord, what: str, draw: Callable[[], np.ndarray]) -> np.ndarray | None:
    try:
        return draw()
    except Exception as err:  # noqa: BLE001 - a picture is optional evidence
        item.warnings.append(f"{what} failed: {type(err).__name__}: {err}")
        return None


def _evidence_record(name: str, evidence: BranchEvidence, skill: dict | None, voters: Voters) -> dict:
    """A branch's evidence as JSON with what fusion made of it (`voters`, for the evidence this branch's reading
    was fused with): its P(fake) only when it voted on real vs fake (a non-voter's reading stays in its own
    `probabilities`), and `skill_notes` saying which votes its role or measured skill withholds (or that it is
    unmeasured), so no reader over-reads it."""
    notes = [note for note in (voters.detect_refusals.get(name), voters.attribution_refusals.get(name)) if note]
    if not (skill or {}).get("real_vs_fake") and not (skill or {}).get("attribution") and evidence.ran and not notes:
        notes = ["skill on held-out sources not measured"]
    return {**evidence.to_dict(), "fake_probability": _rounded(voters.detectors.get(name)), "skill_notes": notes}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _rounded_all(probabilities: dict[str, float | None]) -> dict[str, float | None]:
    return {label: _rounded(p) for label, p in probabilities.items()}
