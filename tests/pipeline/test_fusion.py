"""Fusion rules: P(fake) from the detectors, P(architecture) from the attributors, the open set, no contradictions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.branch import BranchRole
from pipeline.fusion import (
    ARCHITECTURES,
    PROBABILITY_LABELS,
    BranchEvidence,
    FusionConfig,
    Voters,
    architecture_distribution,
    attribution_refusal,
    contradictions,
    fake_probability,
    fuse,
    real_vs_fake_refusal,
    recentre,
)


CLIP_PROBE, FINGERPRINT_NET, LATENT_SVM = "clip_probe", "fingerprint_net", "latent_svm"
# The roles fusion is tested with, handed over explicitly as the pipeline does (the shipped branches declare these).
ROLES = {CLIP_PROBE: BranchRole(title="CLIP probe (UFD)", trust_unmeasured=True),
         FINGERPRINT_NET: BranchRole(title="FingerprintNet", unsure_below=0.5),
         LATENT_SVM: BranchRole(title="Latent SVM (e4e W+)", trust_unmeasured=True)}


def clip(p_fake: float) -> BranchEvidence:
    return BranchEvidence({"real": 1 - p_fake, "fake": p_fake})


def fingerprint(real: float, progan: float, stylegan2: float, stylegan3: float) -> BranchEvidence:
    return BranchEvidence({"real": real, "progan": progan, "stylegan2": stylegan2, "stylegan3": stylegan3})


def latent(progan: float, stylegan2: float, stylegan3: float, label: str | None = None) -> BranchEvidence:
    probs = {"progan": progan, "stylegan2": stylegan2, "stylegan3": stylegan3}
    return BranchEvidence(probs, label=label or max(probs, key=probs.get))


MISSING = BranchEvidence(reason="weight 'clip-vit-l14-openai' is unavailable")


EQUAL = FusionConfig(trust_unmeasured=(CLIP_PROBE, FINGERPRINT_NET, LATENT_SVM))


def p_fake(evidence, config=FusionConfig(), skills=None, roles=ROLES):
    return fake_probability(Voters.of(evidence, roles, config, skills), config)


def architectures(evidence, config=FusionConfig(), skills=None):
    return architecture_distribution(Voters.of(evidence, ROLES, config, skills))


def test_fake_probability_is_the_mean_of_clip_and_fingerprint_one_minus_real():
    evidence = {CLIP_PROBE: clip(0.9), FINGERPRINT_NET: fingerprint(0.3, 0.1, 0.5, 0.1)}
    assert p_fake(evidence, EQUAL) == pytest.approx((0.9 + 0.7) / 2)


WEAK_DETECTOR = {"protocol": "leave-one-source-out", "real_vs_fake": {"auc": 0.46, "real_false_positive_rate": 0.98},
                 "attribution": {"accuracy": 0.59, "accuracy_jpeg75": 0.44}}
STRONG_DETECTOR = {"protocol": "leave-one-source-out",
                   "real_vs_fake": {"auc": 0.91, "real_false_positive_rate": 0.06, "auc_jpeg75": 0.88,
                                    "real_false_positive_rate_jpeg75": 0.09},
                   "attribution": {"accuracy": 0.81, "accuracy_jpeg75": 0.74}}


def test_a_branch_whose_recorded_skill_is_below_the_bar_does_not_vote():
    """FingerprintNet at chance on held-out real photos (its model card) is evidence, not a vote."""
    evidence = {CLIP_PROBE: clip(0.2), FINGERPRINT_NET: fingerprint(0.05, 0.05, 0.85, 0.05)}
    weak = {FINGERPRINT_NET: WEAK_DETECTOR}
    assert p_fake(evidence, FusionConfig(), weak) == pytest.approx(0.2)
    assert p_fake(evidence, FusionConfig(), {FINGERPRINT_NET: STRONG_DETECTOR}) == \
        pytest.approx((0.2 + 0.95) / 2)
    alone = fuse({FINGERPRINT_NET: fingerprint(0.05, 0.05, 0.85, 0.05)}, ROLES, skills=weak)
    assert alone.is_fake is None and alone.label == "undecided"
    assert alone.uncertain == ["nothing voted on real vs fake: fingerprint_net: no real/fake skill: held-out AUC "
                               "0.46 < 0.85; calls 98% of held-out real photos fake (> 10%)"]


def test_skill_refusal_names_each_shortfall_clean_and_after_jpeg():
    config = FusionConfig()
    reason = real_vs_fake_refusal(ROLES[FINGERPRINT_NET], WEAK_DETECTOR, config)
    assert reason.startswith("no real/fake skill") and "AUC 0.46 < 0.85" in reason and "98%" in reason
    assert real_vs_fake_refusal(ROLES[FINGERPRINT_NET], STRONG_DETECTOR, config) is None
    jpeg_fails = {"real_vs_fake": {**STRONG_DETECTOR["real_vs_fake"], "real_false_positive_rate_jpeg75": 0.3}}
    assert "after JPEG q75" in real_vs_fake_refusal(ROLES[FINGERPRINT_NET], jpeg_fails, config)
    # the real-photo bar holds after a 0.5× downscale too; the AUC bar does not apply there
    half_fails = {"real_vs_fake": {**STRONG_DETECTOR["real_vs_fake"], "real_false_positive_rate_half": 0.5}}
    assert "50% of held-out real photos fake after a 0.5× downscale" in \
        real_vs_fake_refusal(ROLES[FINGERPRINT_NET], half_fails, config)
    weak_half_auc = {"real_vs_fake": {**STRONG_DETECTOR["real_vs_fake"], "auc_half": 0.6,
                                      "real_false_positive_rate_half": 0.05}}
    assert real_vs_fake_refusal(ROLES[FINGERPRINT_NET], weak_half_auc, config) is None
    assert real_vs_fake_refusal(ROLES[FINGERPRINT_NET], {"attribution": {"accuracy": 0.9}}, config).startswith(
        "no real/fake skill")
    assert real_vs_fake_refusal(ROLES[CLIP_PROBE], None, config) is None
    assert "none measured" in real_vs_fake_refusal(ROLES[FINGERPRINT_NET], None, config)
    assert "0.44 after JPEG q75 < 0.70" in attribution_refusal(ROLES[FINGERPRINT_NET], WEAK_DETECTOR, config)


def test_attribution_below_the_bar_leaves_the_architecture_to_the_others():
    evidence = {CLIP_PROBE: clip(0.9), FINGERPRINT_NET: fingerprint(0.1, 0.8, 0.05, 0.05),
                LATENT_SVM: latent(0.1, 0.8, 0.1)}
    fused = fuse(evidence, ROLES, skills={FINGERPRINT_NET: WEAK_DETECTOR})
    assert fused.label == "stylegan2"
    assert architectures(evidence, FusionConfig(), {FINGERPRINT_NET: WEAK_DETECTOR}) == \
        pytest.approx({"progan": 0.1, "stylegan2": 0.8, "stylegan3": 0.1})


def test_out_of_distribution_input_turns_a_confident_verdict_uncertain():
    confident = fuse({CLIP_PROBE: clip(0.97)}, ROLES)
    assert confident.is_fake and confident.uncertain == []
    odd = BranchEvidence({"real": 0.03, "fake": 0.97}, out_of_distribution="its spectrum is farther from the "
                         "training images than 99.5% of them")
    fused = fuse({CLIP_PROBE: odd}, ROLES)
    assert fused.is_fake and fused.uncertain == ["clip_probe: its spectrum is farther from the training images "
                                                 "than 99.5% of them"]
    assert any(w.startswith("uncertain: clip_probe") for w in fused.warnings)
    silent = fuse({CLIP_PROBE: clip(0.97), FINGERPRINT_NET: BranchEvidence(
        {"real": 0.5, "progan": 0.5, "stylegan2": 0.0, "stylegan3": 0.0}, out_of_distribution="far")}, ROLES,
        skills={FINGERPRINT_NET: WEAK_DETECTOR})
    assert silent.uncertain == []


def test_fake_probability_weights_come_from_the_config():
    evidence = {CLIP_PROBE: clip(0.9), FINGERPRINT_NET: fingerprint(0.3, 0.1, 0.5, 0.1)}
    config = FusionConfig(roles={CLIP_PROBE: {"detect_weight": 3.0}}, trust_unmeasured=(CLIP_PROBE, FINGERPRINT_NET))
    assert p_fake(evidence, config) == pytest.approx((3 * 0.9 + 0.7) / 4)


def test_a_missing_detector_is_left_out_of_the_mean_not_counted_as_zero():
    evidence = {CLIP_PROBE: MISSING, FINGERPRINT_NET: fingerprint(0.2, 0.1, 0.6, 0.1)}
    assert p_fake(evidence, EQUAL) == pytest.approx(0.8)


def test_latent_svm_without_a_real_class_does_not_vote_on_real_versus_fake():
    evidence = {CLIP_PROBE: clip(0.2), LATENT_SVM: latent(0.1, 0.8, 0.1)}
    assert p_fake(evidence, FusionConfig()) == pytest.approx(0.2)


def test_operating_point_is_a_logit_shift_so_it_maps_to_one_half():
    assert recentre(0.89, 0.89) == pytest.approx(0.5)
    assert recentre(0.95, 0.89) > 0.5 > recentre(0.85, 0.89)
    assert recentre(0.3, 0.5) == 0.3


def test_high_threshold_never_reports_authentic_beside_a_high_fake_probability():
    """GANOrigin D7: P(fake) 0.85 under a 0.89 cut-off was shown as 'Authentic' next to 'Fake 0.85'."""
    fused = fuse({CLIP_PROBE: clip(0.85)}, ROLES, FusionConfig(fake_threshold=0.89))
    assert fused.is_fake is False and fused.label == "real"
    assert fused.fake_probability < 0.5
    assert fused.probabilities["real"] > 0.5
    assert contradictions(fused) == []


def test_architecture_distribution_drops_real_and_renormalises_each_branch():
    evidence = {FINGERPRINT_NET: fingerprint(0.5, 0.0, 0.5, 0.0), LATENT_SVM: latent(0.0, 0.0, 1.0)}
    dist = architectures(evidence, EQUAL)
    assert dist == pytest.approx({"progan": 0.0, "stylegan2": 0.5, "stylegan3": 0.5})


def test_confident_fake_is_attributed_to_the_agreed_architecture():
    evidence = {CLIP_PROBE: clip(0.95), FINGERPRINT_NET: fingerprint(0.05, 0.05, 0.85, 0.05),
                LATENT_SVM: latent(0.1, 0.8, 0.1)}
    fused = fuse(evidence, ROLES, EQUAL)
    assert fused.is_fake is True and fused.label == "stylegan2"
    assert fused.probabilities["unknown"] == 0.0
    assert fused.probabilities["stylegan2"] == pytest.approx(fused.fake_probability * (0.85 / 0.95 + 0.8) / 2)
    assert contradictions(fused) == []


def test_latent_svm_open_set_rejection_makes_the_generator_unknown():
    evidence = {CLIP_PROBE: clip(0.95), FINGERPRINT_NET: fingerprint(0.05, 0.05, 0.85, 0.05),
                LATENT_SVM: latent(0.1, 0.8, 0.1, label="unknown")}
    fused = fuse(evidence, ROLES)
    assert fused.label == "unknown"
    assert fused.probabilities["unknown"] == pytest.approx(fused.fake_probability)
    assert any("open-set rule of Latent SVM (e4e W+) rejected every known architecture" in w for w in fused.warnings)


def test_flat_architecture_distribution_is_unknown_not_forced_into_a_class():
    evidence = {CLIP_PROBE: clip(0.9), LATENT_SVM: latent(0.3, 0.4, 0.3)}
    fused = fuse(evidence, ROLES)
    assert fused.label == "unknown"
    assert any("stylegan2, has P = 0.40" in w for w in fused.warnings)


def test_unsure_fingerprint_net_makes_the_generator_unknown():
    evidence = {CLIP_PROBE: clip(0.9), FINGERPRINT_NET: fingerprint(0.3, 0.05, 0.4, 0.25)}
    fused = fuse(evidence, ROLES, FusionConfig(min_architecture_probability=0.0,
                                        trust_unmeasured=(CLIP_PROBE, FINGERPRINT_NET)))
    assert fused.label == "unknown"
    assert any("FingerprintNet is unsure" in w for w in fused.warnings)


def test_only_a_detector_ran_so_a_fake_is_of_unknown_generator_and_a_warning_says_why():
    fused = fuse({CLIP_PROBE: clip(0.9), FINGERPRINT_NET: MISSING, LATENT_SVM: MISSING}, ROLES)
    assert fused.is_fake is True and fused.label == "unknown"
    assert "generator unknown: no attribution branch with the skill to vote ran" in fused.warnings
    assert contradictions(fused) == []


def test_real_verdict_still_carries_the_attribution_mass_consistently():
    evidence = {CLIP_PROBE: clip(0.1), FINGERPRINT_NET: fingerprint(0.9, 0.0, 0.1, 0.0),
                LATENT_SVM: latent(0.1, 0.8, 0.1)}
    fused = fuse(evidence, ROLES, EQUAL)
    assert fused.label == "real" and fused.is_fake is False
    assert fused.probabilities["real"] == pytest.approx(0.9)
    assert contradictions(fused) == []


def test_no_detector_means_undecided_with_the_reason_in_uncertain_never_unknown():
    fused = fuse({CLIP_PROBE: MISSING, FINGERPRINT_NET: MISSING, LATENT_SVM: latent(0.1, 0.8, 0.1)}, ROLES)
    assert fused.is_fake is None and fused.fake_probability is None and fused.label == "undecided"
    assert fused.probabilities == dict.fromkeys(PROBABILITY_LABELS, None)
    assert fused.uncertain == ["nothing voted on real vs fake: clip_probe: did not run; fingerprint_net: did not "
                               "run; latent_svm: gives no real/fake reading"]
    assert any("no real-vs-fake detector with the skill to vote ran" in w for w in fused.warnings)
    assert contradictions(fused) == []


def test_contradiction_checker_refuses_unknown_for_no_decision_and_undecided_beside_a_decision():
    from pipeline.fusion import Fused

    empty = dict.fromkeys(PROBABILITY_LABELS, None)
    assert contradictions(Fused(None, None, "unknown", empty, uncertain=["nothing voted"]))
    assert contradictions(Fused(None, None, "undecided", empty)) == ["undecided without the reason in `uncertain`"]
    decided = {"real": 0.8, "progan": 0.0, "stylegan2": 0.0, "stylegan3": 0.0, "unknown": 0.2}
    assert contradictions(Fused(False, 0.2, "undecided", decided))


def test_disagreeing_detectors_and_a_near_threshold_score_are_flagged():
    fused = fuse({CLIP_PROBE: clip(0.95), FINGERPRINT_NET: fingerprint(0.9, 0.02, 0.05, 0.03)}, ROLES, EQUAL)
    assert any("detectors disagree" in w for w in fused.warnings)
    assert any("uncertain" in w for w in fused.warnings)


def test_contradiction_checker_catches_the_ganorigin_output():
    from pipeline.fusion import Fused

    ganorigin = Fused(is_fake=False, fake_probability=0.85, label="real",
                      probabilities={"real": 0.15, "progan": 0.85, "stylegan2": 0.0, "stylegan3": 0.0,
                                     "unknown": 0.0})
    assert contradictions(ganorigin)


def test_random_evidence_never_yields_a_contradiction():
    rng = np.random.default_rng(0)
    for _ in range(500):
        evidence = {}
        if rng.random() < 0.8:
            evidence[CLIP_PROBE] = clip(float(rng.random()))
        if rng.random() < 0.8:
            evidence[FINGERPRINT_NET] = BranchEvidence(dict(zip(("real",) + ARCHITECTURES,
                                                                rng.dirichlet(np.ones(4)).tolist())))
        if rng.random() < 0.8:
            probs = rng.dirichlet(np.ones(3)).tolist()
            evidence[LATENT_SVM] = latent(*probs, label="unknown" if rng.random() < 0.2 else None)
        config = FusionConfig(fake_threshold=float(rng.uniform(0.05, 0.95)),
                              min_architecture_probability=float(rng.uniform(0.0, 0.8)),
                              roles={FINGERPRINT_NET: {"detect_weight": float(rng.choice([0.0, 1.0]))}})
        fused = fuse(evidence, ROLES, config)
        assert contradictions(fused) == [], (evidence, config, fused)


def test_config_refuses_a_threshold_outside_zero_one():
    with pytest.raises(ValueError, match="fake_threshold"):
        FusionConfig(fake_threshold=1.0)


def test_config_role_overrides_are_checked_against_the_role_fields():
    with pytest.raises(ValueError, match="detect_wieght"):
        FusionConfig(roles={CLIP_PROBE: {"detect_wieght": 2.0}})
    with pytest.raises(ValueError, match="detect_weight must be >= 0"):
        FusionConfig(roles={CLIP_PROBE: {"detect_weight": -1.0}})


def test_an_unregistered_branch_with_a_passing_skill_record_votes_with_the_default_role():
    """Fusion loops over the evidence it gets: a branch it has never heard of votes once its skill clears the bar."""
    evidence = {CLIP_PROBE: clip(0.2), "newcomer": BranchEvidence({"real": 0.1, "fake": 0.9})}
    assert p_fake(evidence, FusionConfig()) == pytest.approx(0.2)
    assert p_fake(evidence, FusionConfig(), {"newcomer": STRONG_DETECTOR}) == pytest.approx((0.2 + 0.9) / 2)


def test_a_role_without_a_real_fake_vote_keeps_a_skilled_branch_out_of_p_fake():
    evidence = {CLIP_PROBE: clip(0.2), "newcomer": BranchEvidence({"real": 0.1, "fake": 0.9})}
    roles = {CLIP_PROBE: BranchRole(trust_unmeasured=True), "newcomer": BranchRole(detects=False)}
    assert p_fake(evidence, FusionConfig(), {"newcomer": STRONG_DETECTOR}, roles) == pytest.approx(0.2)
    assert real_vs_fake_refusal(roles["newcomer"], STRONG_DETECTOR, FusionConfig()).startswith("no real/fake vote")


def test_the_verdict_does_not_depend_on_the_order_the_lanes_filled_the_evidence_in():
    evidence = {CLIP_PROBE: MISSING, FINGERPRINT_NET: fingerprint(0.5, 0.2, 0.2, 0.1),
                LATENT_SVM: latent(0.3, 0.4, 0.3), "newcomer": BranchEvidence({"real": 0.4, "fake": 0.6})}
    forwards, backwards = fuse(evidence, ROLES), fuse(dict(reversed(evidence.items())), ROLES)
    assert forwards == backwards and forwards.uncertain[0].startswith("nothing voted on real vs fake: clip_probe:")


def test_fusion_reads_only_the_roles_it_is_handed():
    """The same evidence under two role tables: the titles, the trust and the open-set rule are the ones passed in,
    and a branch no table names gets the defaults (fusion has no registry to fall back on)."""
    evidence = {"alpha": BranchEvidence({"real": 0.2, "fake": 0.8}),
                "beta": BranchEvidence({"progan": 0.45, "stylegan2": 0.35, "stylegan3": 0.2})}
    roles = {"alpha": BranchRole(title="Alpha check", trust_unmeasured=True),
             "beta": BranchRole(title="Beta attributor", trust_unmeasured=True, unsure_below=0.5)}
    fused = fuse(evidence, roles, FusionConfig(min_architecture_probability=0.0))
    assert fused.label == "unknown" and fused.fake_probability == pytest.approx(0.8)
    assert "generator unknown: Beta attributor is unsure (its top class, progan, has P = 0.45, under 0.50)" in \
        fused.warnings
    assert fused.voters.roles == roles and fused.voters.order == ("alpha", "beta")
    bare = fuse(evidence, {}, FusionConfig(min_architecture_probability=0.0))
    assert bare.label == "undecided"
    assert bare.uncertain == ["nothing voted on real vs fake: alpha: no real/fake skill: none measured on held-out "
                              "sources; beta: gives no real/fake reading"]


def test_who_may_vote_is_worked_out_once_per_branch_per_call(monkeypatch):
    """Every rule, reason and note of one verdict reads one `Voters`: each branch's role and refusals are asked for
    once, however many rules use them."""
    import pipeline.fusion as fusion

    calls = []
    for name in ("branch_role", "real_vs_fake_refusal", "attribution_refusal"):
        real = getattr(fusion, name)
        monkeypatch.setattr(fusion, name, lambda *args, _name=name, _real=real: calls.append(_name) or _real(*args))
    evidence = {CLIP_PROBE: clip(0.9), FINGERPRINT_NET: fingerprint(0.2, 0.2, 0.3, 0.3),
                LATENT_SVM: latent(0.3, 0.4, 0.3, label="unknown")}
    fused = fuse(evidence, ROLES, FusionConfig(), {FINGERPRINT_NET: WEAK_DETECTOR})
    assert sorted(calls) == ["attribution_refusal"] * 2 + ["branch_role"] * 3 + ["real_vs_fake_refusal"] * 2
    assert fused.voters.detectors == {CLIP_PROBE: 0.9}
    assert set(fused.voters.attributors) == {LATENT_SVM}
    assert fused.voters.detect_refusals[FINGERPRINT_NET].startswith("no real/fake skill: held-out AUC 0.46")
    assert fused.voters.attribution_refusals[FINGERPRINT_NET].startswith("no attribution skill")


def test_fusion_imports_no_registry():
    """Fusion is a function of what it is handed: it imports neither the shipped branches nor any registry."""
    import ast
    import inspect

    import pipeline.fusion as fusion

    tree = ast.parse(inspect.getsource(fusion))
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    imported |= {(alias.name, None) for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    from_pipeline = {(module, name) for module, name in imported if module.split(".")[0] == "pipeline"}
    assert from_pipeline == {("pipeline.branch", "ROLE_FIELDS"), ("pipeline.branch", "BranchRole"),
                             ("pipeline.evidence", "BranchEvidence")}, from_pipeline
    assert not any(isinstance(node, (ast.Global, ast.Nonlocal)) for node in ast.walk(tree))
    assert inspect.signature(fusion.fuse).parameters["roles"].default is inspect.Parameter.empty


DECISIVE = {**ROLES, "provenance": BranchRole(trust_unmeasured=True, decisive=True)}


def test_a_decisive_vote_decides_alone_and_the_overruled_branches_say_so():
    """A decisive branch that votes (a trusted generative manifest) sets P(fake) and the architecture by itself;
    the others keep their readings, with a skill note saying why they did not count; silent, it changes nothing."""
    others = {CLIP_PROBE: clip(0.1), LATENT_SVM: latent(0.8, 0.1, 0.1)}
    unnamed = fuse({**others, "provenance": BranchEvidence({"real": 0.0, "fake": 1.0})}, DECISIVE)
    assert (unnamed.label, unnamed.fake_probability, unnamed.is_fake) == ("unknown", 1.0, True)
    assert set(unnamed.voters.detectors) == {"provenance"} and not unnamed.voters.attributors
    assert unnamed.voters.detect_refusals[CLIP_PROBE] == "no real/fake vote: provenance decided alone"
    assert unnamed.voters.attribution_refusals[LATENT_SVM] == "no attribution vote: provenance decided alone"
    named = fuse({**others, "provenance": BranchEvidence({"real": 0.0, "stylegan3": 1.0})}, DECISIVE)
    assert named.label == "stylegan3" and named.probabilities["stylegan3"] == 1.0 and not contradictions(named)
    silent = fuse({**others, "provenance": BranchEvidence({})}, DECISIVE)
    assert silent.fake_probability == fuse(others, ROLES).fake_probability
    assert silent.label == fuse(others, ROLES).label
