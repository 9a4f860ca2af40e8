"""First run: the command lines fetch a missing registered weight by default, give up fast on a dead host, and never
touch the network with --offline. A loopback Hub stands in for the weight host; a toy branch needs one weight."""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import huggingface_hub.constants
import pytest
import numpy as np
from loopback_hub import endpoint, serve_hub, silent_host
from tiny_models import png_bytes

import pipeline as P
from runners.cli import add_pipeline_arguments, config_from_args
from pipeline.branch import BranchEntry
from pipeline.branches import BRANCHES
from pipeline.evidence import BranchEvidence
from core.weights import resolve

WEIGHT = b"toy weights " * 64
OTHERS = ["--skip-branch", "clip_probe", "--skip-branch", "fingerprint_net", "--skip-branch", "latent_svm"]


class NeedsAWeight:
    """A branch whose only weight is registered on the (loopback) Hub."""

    name, level, warning, skill = "needs_a_weight", "image", None, None

    def __init__(self):
        self.models: dict[str, str] = {}

    def required_weights(self, context) -> list[str]:
        return ["toy-weight"]

    def load(self, context) -> None:
        path = resolve("toy-weight", download=context.download)
        self.models = {"toy-weight": hashlib.sha256(path.read_bytes()).hexdigest()}

    def run(self, inputs):
        return [BranchEvidence({"real": 0.5, "fake": 0.5}) for _ in inputs]


@pytest.fixture()
def toy_registry(tmp_path, monkeypatch):
    """An isolated GANTRACE_HOME and a weight registry holding only the toy weight."""
    import core.weights

    registry = tmp_path / "weights.json"
    registry.write_text(json.dumps({"weights": [{
        "name": "toy-weight", "kind": "hub", "repo_id": "someone/toy", "filename": "toy.bin", "revision": "main",
        "sha256": hashlib.sha256(WEIGHT).hexdigest(), "licence": "MIT", "used_by": "tests"}]}))
    monkeypatch.setattr(core.weights, "REGISTRY_PATH", registry)
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def pipeline_from(*flags: str) -> P.Pipeline:
    """The pipeline scan.py, evaluate.py and the app build from these command-line flags, with the toy branch
    registered after the shipped ones."""
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    config = config_from_args(parser.parse_args(["--device", "cpu", "--threads", "1", *OTHERS, *flags]))
    return P.Pipeline(config, registry=(*BRANCHES, BranchEntry(NeedsAWeight)))


def status_of(pipe: P.Pipeline) -> P.BranchStatus:
    return {s.branch: s for s in pipe.load_all()}[NeedsAWeight.name]


def test_a_missing_weight_is_fetched_on_first_run_and_then_used(toy_registry, monkeypatch):
    with serve_hub({"toy.bin": WEIGHT}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        pipe = pipeline_from()
        assert status_of(pipe).ready is True and hub.connections > 0
    verdict = pipe.analyze_one(png_bytes(np.full((64, 64, 3), 128, np.uint8)), name="grey.png")
    assert verdict.evidence[NeedsAWeight.name]["probabilities"] == {"real": 0.5, "fake": 0.5}
    assert verdict.models["toy-weight"] == hashlib.sha256(WEIGHT).hexdigest()


def test_a_host_that_never_answers_leaves_the_branch_off_within_the_time_out(toy_registry, monkeypatch):
    monkeypatch.setenv("GANTRACE_DOWNLOAD_TIMEOUT", "1")
    with silent_host() as host:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(host))
        started = time.monotonic()
        status = status_of(pipeline_from())
        assert time.monotonic() - started < 8
    assert status.ready is False and "\n" not in status.reason
    assert "toy-weight" in status.reason and "python scripts/download_weights.py --name toy-weight" in status.reason


def test_offline_never_connects_and_says_why_the_branch_is_off(toy_registry, monkeypatch):
    with serve_hub({"toy.bin": WEIGHT}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        status = status_of(pipeline_from("--offline"))
        assert hub.connections == 0
    assert status.ready is False and "downloads are disabled" in status.reason
