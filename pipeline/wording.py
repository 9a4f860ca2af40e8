"""The words for a verdict, in one place: label names, the headline, face captions, branch titles and readings.

Why a module: the app and the evidence report render the same `Verdict` dict, and an analyst who reads both must
read the same answer in the same words. Both call these functions; neither words a label on its own. Branch titles
come from the roles the branches declare in the registry (`pipeline.branch.BranchRole.title`), so a new branch is named
where it is registered.

"undecided" is worded as *no decision*, never as a generator: an undecided face is neither real nor "unknown
generator" (which means: fake, by a generator none of the known architectures fits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline import fusion
from pipeline.branch import registry_roles
from pipeline.branches import BRANCHES
from pipeline.evidence import BranchEvidence
from pipeline.fusion import ARCHITECTURES, UNDECIDED, UNKNOWN, branch_fake_probability

__all__ = ["FACE_LEGEND", "LABEL_NAMES", "NO_DECISION", "NO_READING", "Headline", "branch_title", "branches_sentence",
           "face_caption", "fake_reading", "headline", "label_name", "own_fake_probability", "own_readings",
           "top_class"]

LABEL_NAMES = {"real": "Real photo", "progan": "ProGAN", "stylegan2": "StyleGAN2", "stylegan3": "StyleGAN3",
               UNKNOWN: "Unknown generator", UNDECIDED: "No decision"}
FACE_LEGEND = "numbered; green real, red GAN, orange unknown generator, grey no decision"
NO_DECISION = "no branch with the skill to vote on real vs fake ran"
NO_READING = "No decision, and no branch gave a real/fake reading of its own"
SHIPPED_ROLES = registry_roles(BRANCHES)


@dataclass(frozen=True)
class Headline:
    """The answer in words: `kind` is real, fake, unknown or undecided (the colour an output gives it)."""

    kind: str
    title: str
    detail: str


def label_name(label: str | None) -> str:
    """The name people read for a label (the label itself when it is not one of ours)."""
    return LABEL_NAMES.get(str(label), str(label))


def headline(verdict: Mapping[str, Any]) -> Headline:
    """What the verdict says, for the app's card and the report's finding."""
    label, p_fake = str(verdict.get("label")), verdict.get("fake_probability")
    if label == UNDECIDED or verdict.get("is_fake") is None:
        return Headline(UNDECIDED, "No real/fake decision", NO_DECISION + " (each branch's own reading is shown, "
                        "not as a vote)")
    if not verdict["is_fake"]:
        return Headline("real", LABEL_NAMES["real"], f"P(fake) = {p_fake:.2f}")
    if label == UNKNOWN:
        return Headline(UNKNOWN, "GAN-generated or synthetic, generator unknown", f"P(fake) = {p_fake:.2f}")
    name = label_name(label)
    share = (verdict.get("probabilities") or {}).get(label)
    detail = f"P(fake) = {p_fake:.2f}" + ("" if share is None else f", P({name}) = {share:.2f}")
    return Headline("fake", f"GAN-generated: {name}", detail)


def branch_title(branch: str) -> str:
    """The name people read for a branch: the title its role declares in `BRANCHES`, else its name."""
    return fusion.branch_title(branch, SHIPPED_ROLES)


def face_caption(number: int, face: Mapping[str, Any]) -> str:
    """A face's caption, numbered from 1 as in the overview: "1: StyleGAN2", "2: No decision"."""
    return f"{number}: {label_name(face.get('label'))}"


def own_fake_probability(item: Mapping[str, Any] | None) -> float | None:
    """A branch's own P(fake) reading from its evidence JSON (whether or not it voted), or None."""
    return branch_fake_probability(BranchEvidence((item or {}).get("probabilities")))


def fake_reading(item: Mapping[str, Any] | None) -> str:
    """A branch's P(fake): "0.900" when it voted, "0.731 own reading, not a vote" when its role or skill kept it
    silent, "" when it has no real/fake reading."""
    item = item or {}
    if item.get("fake_probability") is not None:
        return f"{item['fake_probability']:.3f}"
    own = own_fake_probability(item)
    return "" if own is None else f"{own:.3f} own reading, not a vote"


def top_class(item: Mapping[str, Any] | None) -> str:
    """A branch's most probable class, with its own open-set label when that differs: "stylegan2 (0.50), says
    unknown"."""
    probabilities = (item or {}).get("probabilities")
    if not probabilities:
        return ""
    top = max(probabilities, key=probabilities.get)
    own = item.get("label")
    silent = any(str(note).startswith("no attribution") for note in item.get("skill_notes") or [])
    has_architecture = any(arch in probabilities for arch in ARCHITECTURES)
    return (f"{top} ({probabilities[top]:.2f})" + (f", says {own}" if own and own != top else "")
            + (", no attribution vote" if silent and has_architecture else ""))


def own_readings(evidence: Mapping[str, Any]) -> dict[str, float]:
    """"<branch title>: own P(fake), not a vote" → that P(fake), for every branch that gave one: what an undecided
    verdict can still show, named so that no reader takes it for the verdict's."""
    return {f"{branch_title(branch)}: own P(fake), not a vote": own for branch, item in evidence.items()
            if (own := own_fake_probability(item)) is not None}


def branches_sentence(titles: list[str]) -> str:
    """"A, B and C" for the page header (the branches that are actually loaded)."""
    if len(titles) <= 1:
        return "".join(titles) or "no branch"
    return ", ".join(titles[:-1]) + " and " + titles[-1]
