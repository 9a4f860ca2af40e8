"""The words for a verdict, in one place: label names, the verdict said once, face captions, branch titles, readings.

Why a module: the app and the evidence report render the same `Verdict` dict, and an analyst who reads both must
read the same answer in the same words. Both call these functions; neither words a label on its own. Branch titles
come from the roles the branches declare (`pipeline.branch.BranchRole.title`), so a new branch is named where it is
registered.

A verdict is said once (`statement`): one plain headline, one reason line a journalist can read, and the technical
detail (skill figures, the bars they missed, branch names) for a disclosure an analyst opens. Everything here is
read off the verdict's own fields; nothing is decided again.

"undecided" is worded as *no decision*, never as a generator: an undecided face is neither real nor "unknown
generator" (which means: fake, by a generator none of the known architectures fits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline import fusion
from pipeline.branch import BranchRole, registry_roles
from pipeline.branches import BRANCHES
from pipeline.evidence import BranchEvidence
from pipeline.fusion import ARCHITECTURES, UNDECIDED, UNKNOWN, branch_fake_probability

__all__ = ["FACE_LEGEND", "LABEL_NAMES", "NO_READING", "OWN_READINGS_TITLE", "PROBABILITIES_TITLE", "Statement",
           "branch_title", "branches_sentence", "face_caption", "fake_reading", "label_name", "notes",
           "own_fake_probability", "own_readings", "statement", "top_class", "without_remedy"]

LABEL_NAMES = {"real": "Real photo", "progan": "ProGAN", "stylegan2": "StyleGAN2", "stylegan3": "StyleGAN3",
               UNKNOWN: "Unknown generator", UNDECIDED: "No decision"}
FACE_LEGEND = ("Each box is numbered as in the list of aligned faces. Green: real photo · red: GAN-generated · "
               "orange: unknown generator · grey: no decision.")
PROBABILITIES_TITLE = "Probabilities"
OWN_READINGS_TITLE = "No decision: each check's own P(fake), not a vote"
NO_READING = "No decision, and no branch gave a real/fake reading of its own"
SHIPPED_ROLES = registry_roles(BRANCHES)

# Fusion's warnings that restate the verdict or speak in branch names (kept word for word in the CSV, so their
# openings are stable): the headline and the reason say the first in plain words; the technical detail keeps the
# figures (`uncertain` holds the same reasons) and the branch names.
_RESTATEMENTS = ("uncertain: ", "no real-vs-fake detector with the skill to vote ran")
_TECHNICAL = ("generator unknown: ", "the attribution branches disagree: ",
              # provenance.findings' note on a trusted generative manifest: the reason already says it plainly
              "trusted Content Credentials declare the picture generated")
# The parts of an unavailable weight's message (core.weights.WeightUnavailableError) that say where it comes from
# and how to fetch it.
_REMEDY_PARTS = ("it comes from ", "fetch it with: ")


@dataclass(frozen=True)
class Statement:
    """A verdict said once. `kind` is real, fake, unknown or undecided (the colour an output gives it);
    `headline` and `reason` are plain words; `details` are the technical lines behind them, for a disclosure."""

    kind: str
    headline: str
    reason: str
    details: tuple[str, ...]


def label_name(label: str | None) -> str:
    """The name people read for a label (the label itself when it is not one of ours)."""
    return LABEL_NAMES.get(str(label), str(label))


def statement(verdict: Mapping[str, Any]) -> Statement:
    """The verdict (or one face of it, with the evidence it was fused from) in words, for the app and the report."""
    label, p_fake = str(verdict.get("label")), verdict.get("fake_probability")
    evidence = verdict.get("evidence") or {}
    subject = "face" if verdict.get("faces") or "box" in verdict else "image"
    if label == UNDECIDED or verdict.get("is_fake") is None:
        return _undecided(evidence, subject)
    odds = f"The checks reliable enough to vote put the chance that this {subject} is generated at {p_fake:.0%}"
    voters = [branch_title(b) for b, item in evidence.items() if (item or {}).get("fake_probability") is not None]
    attributors = [branch_title(b) for b, item in evidence.items() if _votes_on_architecture(item)]
    details = [f"P(fake) = {p_fake:.3f}",
               "Voted on real vs fake: " + (", ".join(voters) or "none"),
               "Voted on the architecture: " + (", ".join(attributors) or "none")]
    details += [f"Caution: {reason}" for reason in verdict.get("uncertain") or []]
    caution = _caution(verdict.get("uncertain") or [], evidence)
    details += [w for w in verdict.get("warnings") or [] if str(w).startswith(_TECHNICAL)]
    decided = [b for b, item in evidence.items()
               if (item or {}).get("fake_probability") is not None and _declared_role(b).decisive]
    if decided and verdict["is_fake"]:
        return _declared(label, evidence[decided[0]], tuple(details))
    if not verdict["is_fake"]:
        return Statement("real", "Real photo: the checks found no trace of a GAN", odds + "." + caution,
                         tuple(details))
    if label == UNKNOWN:
        tail = ("it matches none of the generators GANTrace knows (ProGAN, StyleGAN2, StyleGAN3)" if attributors
                else "no check reliable enough to name the generator ran")
        return Statement(UNKNOWN, "GAN-generated or synthetic, generator unknown", f"{odds}, but {tail}." + caution,
                         tuple(details))
    name = label_name(label)
    share = (verdict.get("probabilities") or {}).get(label)
    details[0] += "" if share is None else f", P({name}) = {share:.3f}"
    made_by = "" if share is None else f", and the chance that {name} made it at {share:.0%}"
    return Statement("fake", f"GAN-generated: {name}", odds + made_by + "." + caution, tuple(details))


def _declared(label: str, item: Mapping[str, Any], details: tuple[str, ...]) -> Statement:
    """Fake because a decisive branch voted: the file's own signed declaration, checked against the trust list,
    decided alone (the provenance branch's trusted Content Credentials declaring a generative source)."""
    credentials = ((item.get("details") or {}).get("content_credentials")) or {}
    signer = f" ({credentials['signer']})" if credentials.get("signer") else ""
    named = label in ARCHITECTURES
    reason = (f"The file carries Content Credentials signed by a trusted signer{signer} declaring it was made by a "
              "generative model" + (f", named as {label_name(label)}" if named else "")
              + "; a valid signature from a trusted signer decides alone, whatever the other checks read.")
    headline = f"Generated: {label_name(label)}" if named else "Generated by a generative model"
    return Statement("fake" if named else UNKNOWN, headline, reason, details)


def _declared_role(branch: str) -> BranchRole:
    return SHIPPED_ROLES.get(branch) or BranchRole()


def _undecided(evidence: Mapping[str, Any], subject: str) -> Statement:
    """No decision: how many checks gave an answer that may not count and how many could not run; the detail says
    why each branch that ran may not vote (why the others did not run is in their evidence)."""
    answered = [b for b, item in evidence.items() if own_fake_probability(item) is not None]
    ran = [b for b, item in evidence.items() if (item or {}).get("probabilities") is not None]
    missing = len(evidence) - len(ran)
    others = "" if not missing else f"; {_count(missing, 'other check')} could not run"
    if not ran:
        headline = f"No decision: no check could run on this {subject}"
        reason = "Every check failed to load or had nothing to look at; the list of branches says why each did not run."
    else:
        headline = f"No decision: none of the loaded checks is reliable enough to call this {subject} real or generated"
        if len(answered) == 1:
            reason = ("The check that gave an answer has not proved reliable on images from sources it was not "
                      f"trained on, so its answer does not count{others}.")
        elif answered:
            reason = (f"The {len(answered)} checks that gave an answer have not proved reliable on images from "
                      f"sources they were not trained on, so their answers do not count{others}.")
        else:
            reason = f"The checks that ran cannot tell real from generated{others}."
    silent = [f"{branch_title(b)}: {_silence(item)}" for b, item in evidence.items() if b in ran]
    details = ("Voted on real vs fake: none", *silent)
    return Statement(UNDECIDED, headline, reason, details)


def _silence(item: Mapping[str, Any]) -> str:
    """Why a branch that ran did not vote on real vs fake, from its evidence record."""
    if own_fake_probability(item) is None:
        return "gives no real/fake reading"
    refusals = [str(note) for note in item.get("skill_notes") or [] if not str(note).startswith("no attribution")]
    return "; ".join(refusals) or "its reading is not a vote"


def _caution(uncertain: list[str], evidence: Mapping[str, Any]) -> str:
    """" Treat it with caution: …" in plain words for the reasons fusion gave, or "" when it gave none."""
    out_of_range = {f"{branch}: {item['out_of_distribution']}" for branch, item in evidence.items()
                    if (item or {}).get("out_of_distribution")}
    phrases = []
    for reason in uncertain:
        if reason.startswith("P(fake) = "):
            phrases.append("the result is close to the line between real and generated")
        elif reason.startswith("the detectors disagree"):
            phrases.append("the checks disagree with each other")
        elif reason in out_of_range:
            phrases.append("the image is unlike what a check was trained on")
        else:
            phrases.append("see the technical detail")
    return "" if not phrases else " Treat it with caution: " + "; ".join(dict.fromkeys(phrases)) + "."


def _votes_on_architecture(item: Mapping[str, Any] | None) -> bool:
    """Whether a branch's architecture reading counted in the verdict (it ran, scores architectures and no skill
    note withholds its attribution vote)."""
    item = item or {}
    probabilities = item.get("probabilities") or {}
    return (any(arch in probabilities for arch in ARCHITECTURES)
            and not any(str(note).startswith("no attribution") for note in item.get("skill_notes") or []))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def notes(verdict: Mapping[str, Any]) -> list[str]:
    """The warnings that say something the headline and the reason do not (no face found, random weights,
    several faces...): fusion's restatements of the verdict and its branch-by-branch ones are left to `statement`."""
    return [w for w in verdict.get("warnings") or [] if not str(w).startswith(_RESTATEMENTS + _TECHNICAL)]


def without_remedy(reason: str) -> str:
    """Why a branch did not run, without where its weight comes from and the command that fetches it: those
    belong to the Model status tab, which shows them beside the branch."""
    return "; ".join(part for part in reason.split("; ") if not part.startswith(_REMEDY_PARTS))


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
    """Branch title → its own P(fake), for every branch that gave one: what an undecided verdict can still show,
    under `OWN_READINGS_TITLE` so that no reader takes a bar for the verdict's."""
    return {branch_title(branch): own for branch, item in evidence.items()
            if (own := own_fake_probability(item)) is not None}


def branches_sentence(titles: list[str]) -> str:
    """"A, B and C" for the page header (the branches that are actually loaded)."""
    if len(titles) <= 1:
        return "".join(titles) or "no branch"
    return ", ".join(titles[:-1]) + " and " + titles[-1]
