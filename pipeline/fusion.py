"""Combine the branches' evidence into one verdict that never contradicts itself.

Why a separate module: the rules that turn three noisy opinions into "fake, StyleGAN2, 0.83" are the part of the
tool an analyst must be able to audit, so they live here as small pure functions with their thresholds in one
dataclass, and are unit-tested without any model.

Fusion names no branch and reads no registry: it loops over the evidence it gets, and each branch's
`pipeline.branch.BranchRole`, which the caller hands over (the pipeline: the roles of the branches it runs), says
what that branch may vote on, with which weight, whether it may vote unmeasured and its open-set rule.
`FusionConfig.roles` overrides any of these per branch. So a new branch votes once registered with a role and a
passing skill record. Who may vote on what is worked out once per image (`Voters`), and every rule below, the
reasons and the skill notes read that one answer.

The rules (defaults in `FusionConfig` and in each branch's role):

* **Measured skill decides who votes.** Every artifact may carry the skill measured under the leave-one-source-out
  protocol (`skills[branch]`, see `real_vs_fake_refusal`): a branch votes on real vs fake only when its held-out
  ROC AUC reaches `min_real_vs_fake_auc` and it calls at most `max_real_false_positive_rate` of held-out real
  photos fake (clean and after JPEG q75 when both are recorded), and on the architecture only when its held-out
  attribution accuracy reaches `min_attribution_accuracy`. A branch with no figure for a task votes on it only when
  its role trusts it unmeasured: the shipped roles trust UFD's probe (a published detector whose skill on our
  held-out faces is not measured yet) and the latent SVM (its artifact is the user's own); the verdict says "not
  measured". `FusionConfig.trust_unmeasured`, when set, names the trusted branches instead.
* **P(fake)** is the weighted mean of the detectors that may vote, each read as its "fake" probability or else
  1 − its "real" probability (the latent SVM votes only when its classes include "real"). The mean is taken in
  probability space so one over-confident branch cannot veto the others. The operating point `fake_threshold`
  (0.5 by default) is applied as a logit shift, so that the reported `fake_probability` is always ≥ 0.5 exactly
  when `is_fake` is true (GANOrigin's 0.89 cut-off reported "Authentic" beside "Fake 0.85").
* **A decisive branch** (its role's `decisive`, the provenance branch's trusted Content Credentials) that votes
  decides alone: P(fake) and P(architecture) are its own, and with no architecture of its own the generator is
  "unknown"; the other branches' readings stay in the evidence.
* **A decisive branch** (its role's `decisive`: the provenance branch's trusted Content Credentials) that votes on
  real vs fake decides alone: P(fake) and P(architecture) are its own, and with no architecture of its own the
  generator is "unknown"; the others' readings stay in the evidence, with a skill note saying they were overruled.
* **P(architecture | fake)** is the weighted mean of the attribution branches' distributions over the known
  architectures (ProGAN, StyleGAN2, StyleGAN3), each renormalised after dropping its non-architecture classes.
* **Open set**: the generator is "unknown" when a voting attributor's own open-set rule says so (its evidence
  `label` is "unknown", as the latent SVM's can be), when the top fused architecture probability is below
  `min_architecture_probability`, or when a voting attributor's top class probability is below its role's
  `unsure_below` (FingerprintNet's: 0.5). Then the whole fake mass is reported as "unknown"; the branches'
  architecture guesses stay visible in their evidence.
* **Uncertain**: a verdict is marked uncertain, with the reasons in `Fused.uncertain`, when P(fake) is near the
  decision point, when the voting detectors disagree, or when a voting branch says the image lies outside what it
  was trained on (`BranchEvidence.out_of_distribution`).
* **No decision is an answer**: when no detector may vote, `label` is "undecided", `is_fake` and every probability
  are None and `uncertain` says why each branch stayed silent. "unknown" keeps one meaning: fake, by a generator
  none of the known architectures fits (or no attribution branch with the skill to say ran; a warning says which).
* **Consistency**: `probabilities` has every decision label (`PROBABILITY_LABELS`) and sums to 1;
  `probabilities["real"] = 1 − fake_probability`; `label == "real"` exactly when `is_fake` is false; otherwise
  `label` is the most probable non-real label. `contradictions()` checks these and the tests drive it with random
  evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.probability import recentre
from pipeline.branch import ROLE_FIELDS, BranchRole
from pipeline.evidence import BranchEvidence

PROBABILITY_LABELS = ("real", "progan", "stylegan2", "stylegan3", "unknown")
UNKNOWN = "unknown"
UNDECIDED = "undecided"
LABELS = (*PROBABILITY_LABELS, UNDECIDED)
ARCHITECTURES = ("progan", "stylegan2", "stylegan3")



@dataclass(frozen=True)
class FusionConfig:
    """Every threshold the verdict depends on, with the reason for each default, and overrides of branch roles.

    fake_threshold: operating point on the combined detector score. 0.5 is UFD's and FingerprintNet's own
        decision point; tune it on held-out data, never on the test set.
    roles: per branch, `BranchRole` fields to override, e.g. {"clip_probe": {"detect_weight": 3.0},
        "fingerprint_net": {"unsure_below": 0.4}}; a branch not named keeps the role it declares.
    min_architecture_probability: below this the best known architecture is not a fit ("unknown"). With three
        classes chance is 1/3; 0.5 asks for a clear majority.
    uncertain_margin: P(fake) this close to 0.5 earns a warning that the verdict is uncertain.
    disagreement: detectors whose P(fake) differ by more than this earn a warning naming them.
    min_real_vs_fake_auc, max_real_false_positive_rate: the bar a branch's held-out (leave-one-source-out) skill
        must clear to vote on real vs fake. AUC 0.85 is what the classical spectral baselines reach on held-out
        face sources; a detector that calls more than one real photo in ten fake does more harm than good.
    min_attribution_accuracy: the bar for voting on the architecture (chance among three is 0.33).
    trust_unmeasured: when set, exactly the branches that may vote without any skill record (None: each branch's
        role says).
    """

    fake_threshold: float = 0.5
    roles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    min_architecture_probability: float = 0.5
    uncertain_margin: float = 0.1
    disagreement: float = 0.5
    min_real_vs_fake_auc: float = 0.85
    max_real_false_positive_rate: float = 0.10
    min_attribution_accuracy: float = 0.70
    trust_unmeasured: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.fake_threshold < 1.0:
            raise ValueError(f"fake_threshold must be strictly between 0 and 1, not {self.fake_threshold}")
        for branch, changes in self.roles.items():
            unknown = set(changes) - set(ROLE_FIELDS)
            if unknown:
                raise ValueError(f"FusionConfig.roles[{branch!r}] has {sorted(unknown)}, not fields of a branch "
                                 f"role {ROLE_FIELDS}")
            replace(BranchRole(), **changes)  # the role's own checks (weights >= 0)


Skills = Mapping[str, Mapping | None]
Roles = Mapping[str, BranchRole]


@dataclass(frozen=True)
class Voters:
    """Who may vote on what for one image's evidence, worked out once per `fuse` call: every rule, the reasons and
    the skill notes of the verdict read this one answer instead of asking again.

    order: the branches of the evidence in the order of `roles` (then by name), the order of every sum and list.
    roles: the role fusion applies to each of them (its declared role with `FusionConfig`'s overrides).
    detectors: P(fake) of each branch that votes on real vs fake (only the decisive ones when one of them votes).
    attributors: P(architecture), renormalised over the known architectures, of each branch that votes on them
        (only the decisive ones, possibly none, when a decisive branch votes on real vs fake).
    detect_refusals: why a branch with a real/fake reading may not vote on it (a decisive branch's vote included).
    attribution_refusals: why a branch that scores an architecture may not vote on it.
    """

    order: tuple[str, ...]
    roles: Mapping[str, BranchRole]
    detectors: Mapping[str, float]
    attributors: Mapping[str, Mapping[str, float]]
    detect_refusals: Mapping[str, str]
    attribution_refusals: Mapping[str, str]

    @classmethod
    def of(cls, evidence: Mapping[str, BranchEvidence], roles: Roles, config: FusionConfig,
           skills: Skills | None = None) -> Voters:
        """Read each branch's role and skill record once (`skills`: the record of the artifact each branch ran,
        None or absent when unmeasured)."""
        order = tuple(_in_order(evidence, roles))
        applied = {branch: branch_role(branch, config, roles) for branch in order}
        detectors, attributors, detect_refusals, attribution_refusals = {}, {}, {}, {}
        for branch in order:
            item, skill = evidence[branch], (skills or {}).get(branch)
            if (p_fake := branch_fake_probability(item)) is not None:
                if refusal := real_vs_fake_refusal(applied[branch], skill, config):
                    detect_refusals[branch] = refusal
                else:
                    detectors[branch] = p_fake
            if any(arch in (item.probabilities or {}) for arch in ARCHITECTURES):
                if refusal := attribution_refusal(applied[branch], skill, config):
                    attribution_refusals[branch] = refusal
                elif (dist := _architectures_only(item.probabilities)) is not None:
                    attributors[branch] = dist
        if decisive := [branch for branch in detectors if applied[branch].decisive]:
            overruled = f"{' and '.join(decisive)} decided alone"
            detect_refusals.update({b: f"no real/fake vote: {overruled}" for b in detectors if b not in decisive})
            attribution_refusals.update({b: f"no attribution vote: {overruled}" for b in attributors
                                         if b not in decisive})
            detectors = {b: detectors[b] for b in decisive}
            attributors = {b: dist for b, dist in attributors.items() if b in decisive}
        return cls(order, applied, detectors, attributors, detect_refusals, attribution_refusals)


@dataclass
class Fused:
    """The decision part of a verdict: what the pipeline copies into `Verdict` (`uncertain`: why the verdict
    should not be taken as confident; empty when it can; `voters`: who voted, for the branches' skill notes)."""

    is_fake: bool | None
    fake_probability: float | None
    label: str
    probabilities: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    voters: Voters | None = field(default=None, repr=False)


def branch_role(branch: str, config: FusionConfig, roles: Roles) -> BranchRole:
    """The role fusion applies to a branch: the one it declares in `roles` (the defaults when it declares none)
    with the config's overrides."""
    role = roles.get(branch) or BranchRole()
    if branch in config.roles:
        role = replace(role, **config.roles[branch])
    if config.trust_unmeasured is not None:
        role = replace(role, trust_unmeasured=branch in config.trust_unmeasured)
    return role


def branch_title(branch: str, roles: Roles) -> str:
    """The name people read for a branch: its role's title, else its registry name."""
    return (roles.get(branch) or BranchRole()).title or branch


def real_vs_fake_refusal(role: BranchRole, skill: Mapping | None, config: FusionConfig) -> str | None:
    """Why a branch with this (applied) role and skill record may not vote on real vs fake; None when it may."""
    if not role.detects or role.detect_weight == 0:
        return "no real/fake vote: its role gives it none"
    record = (skill or {}).get("real_vs_fake") or {}
    if record.get("auc") is None:
        return None if role.trust_unmeasured else "no real/fake skill: none measured on held-out sources"
    problems = []
    # the AUC bar holds as stored and after JPEG q75; the real-photo bar also after a 0.5× downscale (a real photo
    # reaching an analyst as a resized PNG has lost its JPEG grid), where the record measured it
    for suffix, when in (("", ""), ("_jpeg75", " after JPEG q75"), ("_half", " after a 0.5× downscale")):
        auc, fpr = record.get("auc" + suffix), record.get("real_false_positive_rate" + suffix)
        if auc is not None and suffix != "_half" and auc < config.min_real_vs_fake_auc:
            problems.append(f"held-out AUC {auc:.2f}{when} < {config.min_real_vs_fake_auc:.2f}")
        if fpr is not None and fpr > config.max_real_false_positive_rate:
            problems.append(f"calls {fpr:.0%} of held-out real photos fake{when} "
                            f"(> {config.max_real_false_positive_rate:.0%})")
    return "no real/fake skill: " + "; ".join(problems) if problems else None


def attribution_refusal(role: BranchRole, skill: Mapping | None, config: FusionConfig) -> str | None:
    """Why a branch with this (applied) role and skill record may not vote on the architecture; None when it may."""
    if not role.attributes or role.attribution_weight == 0:
        return "no attribution vote: its role gives it none"
    record = (skill or {}).get("attribution") or {}
    if record.get("accuracy") is None:
        return None if role.trust_unmeasured else "no attribution skill: none measured on held-out sources"
    problems = [f"held-out attribution accuracy {value:.2f}{when} < {config.min_attribution_accuracy:.2f}"
                for key, when in (("accuracy", ""), ("accuracy_jpeg75", " after JPEG q75"))
                if (value := record.get(key)) is not None and value < config.min_attribution_accuracy]
    return "no attribution skill: " + "; ".join(problems) if problems else None


def branch_fake_probability(evidence: BranchEvidence) -> float | None:
    """P(fake) according to one branch's own reading (its "fake" class, else 1 − its "real" class), or None when
    it ran without a real-vs-fake output. Whether that reading votes is `real_vs_fake_refusal`'s question."""
    probs = evidence.probabilities
    if probs is None:
        return None
    if "fake" in probs:
        return float(probs["fake"])
    if "real" in probs:
        return 1.0 - float(probs["real"])
    return None


def fake_probability(voters: Voters, config: FusionConfig) -> float | None:
    """Weighted mean P(fake) of the detectors that may vote, re-centred so the operating point maps to 0.5."""
    total = weighted = 0.0
    for branch, p in voters.detectors.items():
        weight = voters.roles[branch].detect_weight
        total += weight
        weighted += weight * p
    if total == 0:
        return None
    return recentre(weighted / total, config.fake_threshold)


def architecture_distribution(voters: Voters) -> dict[str, float] | None:
    """Weighted mean P(architecture | fake) of the attribution branches that may vote, or None when none can."""
    total = 0.0
    mixed = dict.fromkeys(ARCHITECTURES, 0.0)
    for branch, dist in voters.attributors.items():
        weight = voters.roles[branch].attribution_weight
        total += weight
        for arch in ARCHITECTURES:
            mixed[arch] += weight * dist[arch]
    if total == 0:
        return None
    return {arch: value / total for arch, value in mixed.items()}


def open_set_reasons(evidence: Mapping[str, BranchEvidence], architectures: dict[str, float] | None,
                     voters: Voters, config: FusionConfig, roles: Roles) -> list[str]:
    """Why no known architecture fits (empty when one does); each reason is a sentence for the analyst, naming a
    branch by the title its declared role (in `roles`) gives it."""
    if architectures is None:
        return ["no attribution branch with the skill to vote ran"]
    reasons = [f"the open-set rule of {branch_title(branch, roles)} rejected every known architecture"
               for branch in voters.attributors if evidence[branch].label == UNKNOWN]
    best = max(ARCHITECTURES, key=lambda arch: architectures[arch])
    if architectures[best] < config.min_architecture_probability:
        reasons.append(f"the most likely architecture, {best}, has P = {architectures[best]:.2f}, "
                       f"under the {config.min_architecture_probability:.2f} needed")
    for branch in voters.attributors:
        floor = voters.roles[branch].unsure_below
        top_class, top = max(evidence[branch].probabilities.items(), key=lambda item: item[1])
        if floor is not None and top < floor:
            reasons.append(f"{branch_title(branch, roles)} is unsure (its top class, {top_class}, has P = {top:.2f}, "
                           f"under {floor:.2f})")
    return reasons


def fuse(evidence: Mapping[str, BranchEvidence], roles: Roles, config: FusionConfig | None = None,
         skills: Skills | None = None) -> Fused:
    """Turn the branches' evidence for one image into a consistent decision with the warnings behind it.

    `roles` maps a branch to its declared role (a branch it does not name gets the defaults); `skills` maps it to
    the skill record of the artifact it ran (None or absent: unmeasured)."""
    config = config or FusionConfig()
    voters = Voters.of(evidence, roles, config, skills)
    evidence = {branch: evidence[branch] for branch in voters.order}
    uncertain = _disagreement(voters, config) + _out_of_distribution(evidence, voters)
    p_fake = fake_probability(voters, config)
    architectures = architecture_distribution(voters)
    reasons = open_set_reasons(evidence, architectures, voters, config, roles)

    if p_fake is None:
        warnings = ["no real-vs-fake detector with the skill to vote ran, so real or fake cannot be decided; "
                    "see `evidence` for each branch's own output and why the others did not run or vote"]
        uncertain.append("nothing voted on real vs fake: " + "; ".join(_silent_detectors(evidence, voters)))
        return Fused(is_fake=None, fake_probability=None, label=UNDECIDED,
                     probabilities=dict.fromkeys(PROBABILITY_LABELS, None), warnings=warnings, uncertain=uncertain,
                     voters=voters)
    warnings = []

    probabilities = dict.fromkeys(PROBABILITY_LABELS, 0.0)
    probabilities["real"] = 1.0 - p_fake
    if reasons:
        probabilities[UNKNOWN] = p_fake
        fake_label = UNKNOWN
    else:
        for arch in ARCHITECTURES:
            probabilities[arch] = p_fake * architectures[arch]
        fake_label = max(ARCHITECTURES, key=lambda arch: architectures[arch])
    is_fake = p_fake >= 0.5
    if is_fake:
        warnings += _attribution_warnings(evidence)
    if is_fake and reasons:
        warnings.append("generator unknown: " + "; ".join(reasons))
    if abs(p_fake - 0.5) < config.uncertain_margin:
        uncertain.append(f"P(fake) = {p_fake:.2f} is within {config.uncertain_margin:.2f} of the decision point")
    warnings += [f"uncertain: {reason}" for reason in uncertain]
    return Fused(is_fake=is_fake, fake_probability=p_fake, label=fake_label if is_fake else "real",
                 probabilities=probabilities, warnings=warnings, uncertain=uncertain, voters=voters)


def contradictions(fused: Fused, tolerance: float = 1e-6) -> list[str]:
    """Every way `fused` contradicts itself (empty when consistent); the invariant the tests hold fusion to.

    "undecided" goes with no P(fake), `is_fake` None, no probabilities and a reason in `uncertain`, and with
    nothing else; "unknown" is a fake answer like the architectures."""
    problems = []
    if set(fused.probabilities) != set(PROBABILITY_LABELS):
        problems.append(f"probabilities has labels {sorted(fused.probabilities)}, not {sorted(PROBABILITY_LABELS)}")
        return problems
    if fused.label not in LABELS:
        problems.append(f"label {fused.label!r} is not one of {LABELS}")
    if fused.fake_probability is None:
        if fused.is_fake is not None or fused.label != UNDECIDED:
            problems.append("no P(fake) but a real/fake decision was made")
        if any(value is not None for value in fused.probabilities.values()):
            problems.append(f"probabilities without a P(fake): {fused.probabilities}")
        if not fused.uncertain:
            problems.append("undecided without the reason in `uncertain`")
        return problems
    if fused.label == UNDECIDED:
        problems.append(f"label 'undecided' beside P(fake) = {fused.fake_probability:.3f}")
    values = fused.probabilities
    if any(v is None or v < -tolerance or v > 1 + tolerance for v in values.values()):
        problems.append(f"probabilities outside [0, 1]: {values}")
        return problems
    if abs(sum(values.values()) - 1.0) > tolerance:
        problems.append(f"probabilities sum to {sum(values.values()):.6f}, not 1")
    if abs(values["real"] - (1.0 - fused.fake_probability)) > tolerance:
        problems.append("probabilities['real'] is not 1 - fake_probability")
    if fused.is_fake != (fused.fake_probability >= 0.5):
        problems.append(f"is_fake={fused.is_fake} but fake_probability={fused.fake_probability:.3f}")
    if (fused.label == "real") == bool(fused.is_fake):
        problems.append(f"label {fused.label!r} disagrees with is_fake={fused.is_fake}")
    if fused.is_fake:
        best = max(values[label] for label in PROBABILITY_LABELS if label != "real")
        if values[fused.label] < best - tolerance:
            problems.append(f"label {fused.label!r} is not the most probable non-real label")
    return problems


def _in_order(evidence: Mapping[str, BranchEvidence], roles: Roles) -> dict[str, BranchEvidence]:
    """The evidence in registry order (then by name), whatever order the lanes filled it in, so that sums, reasons
    and warnings come out the same on every run."""
    rank = {branch: index for index, branch in enumerate(roles)}
    return dict(sorted(evidence.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def _architectures_only(probabilities: dict[str, float] | None) -> dict[str, float] | None:
    if probabilities is None:
        return None
    mass = sum(float(probabilities.get(arch, 0.0)) for arch in ARCHITECTURES)
    if mass <= 0:
        return None
    return {arch: float(probabilities.get(arch, 0.0)) / mass for arch in ARCHITECTURES}


def _silent_detectors(evidence: Mapping[str, BranchEvidence], voters: Voters) -> list[str]:
    """Why each branch did not vote on real vs fake, for the `uncertain` reason of an undecided verdict."""
    silent = []
    for branch, item in evidence.items():
        if not item.ran:
            why = "did not run"
        elif branch in voters.detectors:
            why = "voted"
        else:
            why = voters.detect_refusals.get(branch) or "gives no real/fake reading"
        silent.append(f"{branch}: {why}")
    return silent or ["no branch ran"]


def _out_of_distribution(evidence: Mapping[str, BranchEvidence], voters: Voters) -> list[str]:
    """The out-of-distribution notes of the branches whose vote counts (a silent branch's doubt changes nothing)."""
    voting = set(voters.detectors) | set(voters.attributors)
    return [f"{branch}: {note}" for branch, item in evidence.items()
            if branch in voting and (note := item.out_of_distribution)]


def _disagreement(voters: Voters, config: FusionConfig) -> list[str]:
    opinions = voters.detectors
    if len(opinions) < 2:
        return []
    low = min(opinions, key=opinions.get)
    high = max(opinions, key=opinions.get)
    if opinions[high] - opinions[low] > config.disagreement:
        return [f"the detectors disagree: {high} gives P(fake) = {opinions[high]:.2f}, "
                f"{low} gives {opinions[low]:.2f}"]
    return []


def _attribution_warnings(evidence: Mapping[str, BranchEvidence]) -> list[str]:
    tops = {}
    for branch, item in evidence.items():
        dist = _architectures_only(item.probabilities)
        if dist is not None:
            tops[branch] = max(ARCHITECTURES, key=lambda arch: dist[arch])
    if len(set(tops.values())) > 1:
        return ["the attribution branches disagree: " + ", ".join(f"{b} says {a}" for b, a in tops.items())]
    return []
