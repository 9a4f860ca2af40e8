"""Combine the branches' evidence into one verdict that never contradicts itself.

Why a separate module: the rules that turn three noisy opinions into "fake, StyleGAN2, 0.83" are the part of the
tool an analyst must be able to audit, so they live here as small pure functions with their thresholds in one
dataclass, and are unit-tested without any model.

The rules (defaults in `FusionConfig`):

* **Measured skill decides who votes.** Every artifact may carry the skill measured under the leave-one-source-out
  protocol (`skills[branch]`, see `real_vs_fake_refusal`): a branch votes on real vs fake only when its held-out
  ROC AUC reaches `min_real_vs_fake_auc` and it calls at most `max_real_false_positive_rate` of held-out real
  photos fake (clean and after JPEG q75 when both are recorded), and on the architecture only when its held-out
  attribution accuracy reaches `min_attribution_accuracy`. A branch with no figure for a task votes on it only when
  `trust_unmeasured` names it: by default UFD's probe (a published detector whose skill on our held-out faces is
  not measured yet) and the latent SVM (its artifact is the user's own); the verdict says "not measured".
* **P(fake)** is the weighted mean of the detectors that may vote: the CLIP probe's P(fake), FingerprintNet's
  1 − P(real) and, when its classes include "real", the latent SVM's 1 − P(real). The mean is taken in
  probability space so one over-confident branch cannot veto the others. The operating point `fake_threshold`
  (0.5 by default) is applied as a logit shift, so that the reported `fake_probability` is always ≥ 0.5 exactly
  when `is_fake` is true (GANOrigin's 0.89 cut-off reported "Authentic" beside "Fake 0.85").
* **P(architecture | fake)** is the weighted mean of the attribution branches' distributions over the known
  architectures (ProGAN, StyleGAN2, StyleGAN3), each renormalised after dropping its non-architecture classes.
* **Open set**: the generator is "unknown" when the latent SVM's own open-set rule says so, when the top fused
  architecture probability is below `min_architecture_probability`, or when FingerprintNet's top class
  probability is below `fingerprint_min_confidence`. Then the whole fake mass is reported as "unknown"; the
  branches' architecture guesses stay visible in their evidence.
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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.evidence import BranchEvidence

PROBABILITY_LABELS = ("real", "progan", "stylegan2", "stylegan3", "unknown")
UNKNOWN = "unknown"
UNDECIDED = "undecided"
LABELS = (*PROBABILITY_LABELS, UNDECIDED)
ARCHITECTURES = ("progan", "stylegan2", "stylegan3")
CLIP_PROBE = "clip_probe"
FINGERPRINT_NET = "fingerprint_net"
LATENT_SVM = "latent_svm"
SPECTRAL_DCT = "spectral_dct"
BRANCHES = (CLIP_PROBE, FINGERPRINT_NET, SPECTRAL_DCT, LATENT_SVM)
ATTRIBUTORS = (FINGERPRINT_NET, SPECTRAL_DCT, LATENT_SVM)

_EPS = 1e-6


@dataclass(frozen=True)
class FusionConfig:
    """Every threshold and weight the verdict depends on, with the reason for each default.

    fake_threshold: operating point on the combined detector score. 0.5 is UFD's and FingerprintNet's own
        decision point; tune it on held-out data, never on the test set.
    clip_weight, fingerprint_detect_weight, spectral_detect_weight, latent_detect_weight: weights of each detector
        in the P(fake) mean,
        for the branches whose measured skill lets them vote (see the module docstring).
    fingerprint_attribution_weight, spectral_attribution_weight, latent_attribution_weight: weights in the
        P(architecture) mean.
    min_architecture_probability: below this the best known architecture is not a fit ("unknown"). With three
        classes chance is 1/3; 0.5 asks for a clear majority.
    fingerprint_min_confidence: FingerprintNet's top class probability (over real + architectures) below this
        means the image looks like none of its classes, an open-set signal.
    uncertain_margin: P(fake) this close to 0.5 earns a warning that the verdict is uncertain.
    disagreement: detectors whose P(fake) differ by more than this earn a warning naming them.
    min_real_vs_fake_auc, max_real_false_positive_rate: the bar a branch's held-out (leave-one-source-out) skill
        must clear to vote on real vs fake. AUC 0.85 is what the classical spectral baselines reach on held-out
        face sources; a detector that calls more than one real photo in ten fake does more harm than good.
    min_attribution_accuracy: the bar for voting on the architecture (chance among three is 0.33).
    trust_unmeasured: branches that may vote without any skill record.
    """

    fake_threshold: float = 0.5
    clip_weight: float = 1.0
    fingerprint_detect_weight: float = 1.0
    spectral_detect_weight: float = 1.0
    latent_detect_weight: float = 1.0
    fingerprint_attribution_weight: float = 1.0
    spectral_attribution_weight: float = 1.0
    latent_attribution_weight: float = 1.0
    min_architecture_probability: float = 0.5
    fingerprint_min_confidence: float = 0.5
    uncertain_margin: float = 0.1
    disagreement: float = 0.5
    min_real_vs_fake_auc: float = 0.85
    max_real_false_positive_rate: float = 0.10
    min_attribution_accuracy: float = 0.70
    trust_unmeasured: tuple[str, ...] = (CLIP_PROBE, LATENT_SVM)

    def __post_init__(self) -> None:
        if not 0.0 < self.fake_threshold < 1.0:
            raise ValueError(f"fake_threshold must be strictly between 0 and 1, not {self.fake_threshold}")
        for name in ("clip_weight", "fingerprint_detect_weight", "spectral_detect_weight", "latent_detect_weight",
                     "fingerprint_attribution_weight", "spectral_attribution_weight", "latent_attribution_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")


@dataclass
class Fused:
    """The decision part of a verdict: what the pipeline copies into `Verdict` (`uncertain`: why the verdict
    should not be taken as confident; empty when it can)."""

    is_fake: bool | None
    fake_probability: float | None
    label: str
    probabilities: dict[str, float | None]
    warnings: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)


Skills = Mapping[str, Mapping | None]


def real_vs_fake_refusal(branch: str, skill: Mapping | None, config: FusionConfig) -> str | None:
    """Why a branch with this skill record may not vote on real vs fake; None when it may."""
    record = (skill or {}).get("real_vs_fake") or {}
    if record.get("auc") is None:
        return None if branch in config.trust_unmeasured else "no real/fake skill: none measured on held-out sources"
    problems = []
    for suffix, when in (("", ""), ("_jpeg75", " after JPEG q75")):
        auc, fpr = record.get("auc" + suffix), record.get("real_false_positive_rate" + suffix)
        if auc is not None and auc < config.min_real_vs_fake_auc:
            problems.append(f"held-out AUC {auc:.2f}{when} < {config.min_real_vs_fake_auc:.2f}")
        if fpr is not None and fpr > config.max_real_false_positive_rate:
            problems.append(f"calls {fpr:.0%} of held-out real photos fake{when} "
                            f"(> {config.max_real_false_positive_rate:.0%})")
    return "no real/fake skill: " + "; ".join(problems) if problems else None


def attribution_refusal(branch: str, skill: Mapping | None, config: FusionConfig) -> str | None:
    """Why a branch with this skill record may not vote on the architecture; None when it may."""
    record = (skill or {}).get("attribution") or {}
    if record.get("accuracy") is None:
        return None if branch in config.trust_unmeasured else "no attribution skill: none measured on held-out sources"
    problems = [f"held-out attribution accuracy {value:.2f}{when} < {config.min_attribution_accuracy:.2f}"
                for key, when in (("accuracy", ""), ("accuracy_jpeg75", " after JPEG q75"))
                if (value := record.get(key)) is not None and value < config.min_attribution_accuracy]
    return "no attribution skill: " + "; ".join(problems) if problems else None


def branch_fake_probability(branch: str, evidence: BranchEvidence) -> float | None:
    """P(fake) according to one branch, or None when it ran without a real-vs-fake output."""
    if evidence.probabilities is None:
        return None
    probs = evidence.probabilities
    if branch == CLIP_PROBE:
        return float(probs["fake"])
    if "real" in probs:
        return 1.0 - float(probs["real"])
    return None


def fake_probability(evidence: Mapping[str, BranchEvidence], config: FusionConfig,
                     skills: Skills | None = None) -> float | None:
    """Weighted mean P(fake) of the detectors that may vote, re-centred so the operating point maps to 0.5."""
    total = weighted = 0.0
    for branch, p in _votes(evidence, config, skills).items():
        weight = _detector_weights(config)[branch]
        total += weight
        weighted += weight * p
    if total == 0:
        return None
    return recentre(weighted / total, config.fake_threshold)


def recentre(probability: float, threshold: float) -> float:
    """Shift the logit so that `threshold` becomes 0.5; the identity when the threshold is 0.5."""
    if threshold == 0.5:
        return float(probability)
    p = min(max(probability, _EPS), 1 - _EPS)
    return 1.0 / (1.0 + math.exp(-(_logit(p) - _logit(threshold))))


def architecture_distribution(evidence: Mapping[str, BranchEvidence], config: FusionConfig,
                              skills: Skills | None = None) -> dict[str, float] | None:
    """Weighted mean P(architecture | fake) of the attribution branches that may vote, or None when none can."""
    weights = {FINGERPRINT_NET: config.fingerprint_attribution_weight,
               SPECTRAL_DCT: config.spectral_attribution_weight, LATENT_SVM: config.latent_attribution_weight}
    total = 0.0
    mixed = dict.fromkeys(ARCHITECTURES, 0.0)
    for branch, weight in weights.items():
        dist = _architectures_only(evidence.get(branch, BranchEvidence()).probabilities)
        if dist is None or weight == 0 or attribution_refusal(branch, (skills or {}).get(branch), config):
            continue
        total += weight
        for arch in ARCHITECTURES:
            mixed[arch] += weight * dist[arch]
    if total == 0:
        return None
    return {arch: value / total for arch, value in mixed.items()}


def open_set_reasons(evidence: Mapping[str, BranchEvidence], architectures: dict[str, float] | None,
                     config: FusionConfig, skills: Skills | None = None) -> list[str]:
    """Why no known architecture fits (empty when one does); each reason is a sentence for the analyst."""
    if architectures is None:
        return ["no attribution branch with the skill to vote ran"]
    reasons = []
    latent = evidence.get(LATENT_SVM, BranchEvidence())
    if latent.ran and latent.label == "unknown":
        reasons.append("the latent SVM's open-set rule rejected every known architecture")
    best = max(ARCHITECTURES, key=lambda arch: architectures[arch])
    if architectures[best] < config.min_architecture_probability:
        reasons.append(f"the most likely architecture, {best}, has P = {architectures[best]:.2f}, "
                       f"under the {config.min_architecture_probability:.2f} needed")
    fingerprint = evidence.get(FINGERPRINT_NET, BranchEvidence())
    if fingerprint.ran and config.fingerprint_attribution_weight > 0 \
            and not attribution_refusal(FINGERPRINT_NET, (skills or {}).get(FINGERPRINT_NET), config):
        top_class, top = max(fingerprint.probabilities.items(), key=lambda item: item[1])
        if top < config.fingerprint_min_confidence:
            reasons.append(f"FingerprintNet is unsure (its top class, {top_class}, has P = {top:.2f}, under "
                           f"{config.fingerprint_min_confidence:.2f})")
    return reasons


def fuse(evidence: Mapping[str, BranchEvidence], config: FusionConfig | None = None,
         skills: Skills | None = None) -> Fused:
    """Turn the branches' evidence for one image into a consistent decision with the warnings behind it.

    `skills` maps a branch to the skill record of the artifact it ran (None or absent: unmeasured)."""
    config = config or FusionConfig()
    uncertain = _disagreement(evidence, config, skills) + _out_of_distribution(evidence, config, skills)
    p_fake = fake_probability(evidence, config, skills)
    architectures = architecture_distribution(evidence, config, skills)
    reasons = open_set_reasons(evidence, architectures, config, skills)

    if p_fake is None:
        warnings = ["no real-vs-fake detector with the skill to vote ran, so real or fake cannot be decided; "
                    "see `evidence` for each branch's own output and why the others did not run or vote"]
        uncertain.append("nothing voted on real vs fake: " + "; ".join(_silent_detectors(evidence, config, skills)))
        return Fused(is_fake=None, fake_probability=None, label=UNDECIDED,
                     probabilities=dict.fromkeys(PROBABILITY_LABELS, None), warnings=warnings, uncertain=uncertain)
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
                 probabilities=probabilities, warnings=warnings, uncertain=uncertain)


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


def _architectures_only(probabilities: dict[str, float] | None) -> dict[str, float] | None:
    if probabilities is None:
        return None
    mass = sum(float(probabilities.get(arch, 0.0)) for arch in ARCHITECTURES)
    if mass <= 0:
        return None
    return {arch: float(probabilities.get(arch, 0.0)) / mass for arch in ARCHITECTURES}


def _votes(evidence: Mapping[str, BranchEvidence], config: FusionConfig, skills: Skills | None
           ) -> dict[str, float]:
    """Each detector's P(fake), for the detectors that ran, have a weight and the measured skill to vote."""
    weights = _detector_weights(config)
    return {branch: p for branch in BRANCHES if weights[branch] > 0
            and not real_vs_fake_refusal(branch, (skills or {}).get(branch), config)
            and (p := branch_fake_probability(branch, evidence.get(branch, BranchEvidence()))) is not None}


def _silent_detectors(evidence: Mapping[str, BranchEvidence], config: FusionConfig, skills: Skills | None
                      ) -> list[str]:
    """Why each branch did not vote on real vs fake, for the `uncertain` reason of an undecided verdict."""
    weights = _detector_weights(config)
    silent = []
    for branch, item in evidence.items():
        if not item.ran:
            why = "did not run"
        elif branch_fake_probability(branch, item) is None:
            why = "gives no real/fake reading"
        elif weights.get(branch, 0.0) == 0:
            why = "has weight 0 on real vs fake"
        else:
            why = real_vs_fake_refusal(branch, (skills or {}).get(branch), config) or "voted"
        silent.append(f"{branch}: {why}")
    return silent or ["no branch ran"]


def _out_of_distribution(evidence: Mapping[str, BranchEvidence], config: FusionConfig, skills: Skills | None
                         ) -> list[str]:
    """The out-of-distribution notes of the branches whose vote counts (a silent branch's doubt changes nothing)."""
    voting = set(_votes(evidence, config, skills))
    voting |= {b for b in ATTRIBUTORS if not attribution_refusal(b, (skills or {}).get(b), config)}
    return [f"{branch}: {note}" for branch, item in evidence.items()
            if branch in voting and (note := item.out_of_distribution)]


def _disagreement(evidence: Mapping[str, BranchEvidence], config: FusionConfig, skills: Skills | None
                  ) -> list[str]:
    opinions = _votes(evidence, config, skills)
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
    for branch in ATTRIBUTORS:
        dist = _architectures_only(evidence.get(branch, BranchEvidence()).probabilities)
        if dist is not None:
            tops[branch] = max(ARCHITECTURES, key=lambda arch: dist[arch])
    if len(set(tops.values())) > 1:
        return ["the attribution branches disagree: " + ", ".join(f"{b} says {a}" for b, a in tops.items())]
    return []


def _detector_weights(config: FusionConfig) -> dict[str, float]:
    return {CLIP_PROBE: config.clip_weight, FINGERPRINT_NET: config.fingerprint_detect_weight,
            SPECTRAL_DCT: config.spectral_detect_weight, LATENT_SVM: config.latent_detect_weight}


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))
