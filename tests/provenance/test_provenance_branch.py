"""The provenance branch inside the pipeline: a trusted generative manifest decides the verdict alone, anything
less leaves it to the other branches, and its findings reach the verdict JSON, warnings and CSV."""

from __future__ import annotations

import csv
import io

import pytest

import pipeline as P
from made_files import CHAIN
from pipeline.branch import BranchRole
from pipeline.evidence import BranchEvidence
from tiny_models import ToyDetector

OFF = ("clip_probe", "residual_npr", "latent_svm")


class RealToy(ToyDetector):
    """The suite's skilled toy detector, standing in for spectral_dct, that calls every image real (P(fake) = 0.1)."""

    name = "spectral_dct"
    role = BranchRole(title="Toy real detector")
    models: dict = {}

    def run(self, inputs):
        return [BranchEvidence({"real": 0.9, "fake": 0.1}) for _ in inputs]


def pipe(trust=None) -> P.Pipeline:
    options = {"provenance": {"trust": str(trust)}} if trust else {}
    return P.Pipeline(P.PipelineConfig(device="cpu", dtype="fp32", disabled_branches=OFF, find_faces=False,
                                       branch_options=options), branches={"spectral_dct": RealToy()})


@pytest.fixture(autouse=True)
def no_env_anchors(monkeypatch):
    monkeypatch.delenv("GANTRACE_C2PA_TRUST", raising=False)


def test_a_trusted_generative_manifest_decides_fake_against_a_detector_saying_real(made):
    verdict = pipe(CHAIN).analyze_one(made["signed"], name="signed.jpg")
    assert (verdict.is_fake, verdict.label, verdict.fake_probability) == (True, "stylegan2", 1.0)
    assert verdict.evidence["spectral_dct"]["probabilities"]["fake"] == 0.1  # still shown


def test_without_the_anchor_the_other_branches_decide_and_the_evidence_says_untrusted(made):
    verdict = pipe().analyze_one(made["signed"], name="signed.jpg")
    assert (verdict.is_fake, verdict.label) == (False, "real")
    details = verdict.evidence["provenance"]["details"]
    assert details["content_credentials"]["validation"] == "untrusted" and details["votes_fake"] is False
    assert verdict.evidence["provenance"]["fake_probability"] is None


def test_an_altered_file_never_votes_and_warns(made):
    verdict = pipe(CHAIN).analyze_one(made["altered"], name="altered.jpg")
    assert verdict.label == "real"
    assert any("changed after it was signed" in warning for warning in verdict.warnings)


def test_alone_a_trusted_manifest_still_decides(made):
    alone = P.Pipeline(P.PipelineConfig(device="cpu", disabled_branches=(*OFF, "spectral_dct"), find_faces=False,
                                        branch_options={"provenance": {"trust": str(CHAIN)}}))
    assert alone.analyze_one(made["signed"]).is_fake is True
    assert alone.analyze_one(made["xmp"]).label == "undecided"  # an unsigned declaration never votes


def test_csv_has_source_type_signer_and_validation_and_never_the_prompt(made):
    results = pipe(CHAIN).analyze([made["signed"], made["sd_png"]], names=["signed.jpg", "sd.png"])
    rows = list(csv.DictReader(io.StringIO(P.write_csv(results))))
    assert list(rows[0])[-3:] == ["provenance_source_type", "provenance_signer", "provenance_validation"]
    assert (rows[0]["provenance_source_type"], rows[0]["provenance_signer"], rows[0]["provenance_validation"]) == (
        "trainedAlgorithmicMedia", "C2PA Signer", "trusted")
    assert rows[1]["provenance_validation"] == "absent"
    assert not any("smiling woman" in cell for row in rows for cell in row.values())
    assert "smiling woman" in results[1].evidence["provenance"]["details"]["generator_metadata"]["prompt"]


def test_a_broken_manifest_costs_one_line_and_the_other_branch_still_runs(made, tmp_path):
    data = bytearray(made["signed"].read_bytes())
    start = data.find(b"c2pa.signature") + 30
    data[start:start + 200] = b"\x7f" * 200
    verdict = pipe(CHAIN).analyze_one(bytes(data), name="broken.jpg")
    assert verdict.evidence["spectral_dct"]["probabilities"] is not None and verdict.label == "real"
    notes = verdict.evidence["provenance"]["details"]["notes"]
    assert len(notes) == 1 and notes[0].startswith("broken.jpg: its Content Credentials could not be read")


def test_a_bad_trust_file_turns_the_branch_off_with_its_reason(made, tmp_path):
    (tmp_path / "anchors.pem").write_text("not a certificate")
    broken = pipe(tmp_path / "anchors.pem")
    verdict = broken.analyze_one(made["signed"])
    assert "no PEM certificate" in verdict.evidence["provenance"]["reason"] and verdict.label == "real"
