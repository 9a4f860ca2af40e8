"""Tiny random models behind the shipped branch classes, for every test that needs a whole pipeline.

`tiny_pipeline()` builds every stage tiny and randomly initialised through the stages' own code, so the tests of
the pipeline, the runners, the outputs and the app need no weights and run in seconds.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

import pipeline as P
from pipeline.branches import BRANCHES, ClipProbeBranch, FaceFinder, FingerprintBranch, LatentBranch
from pipeline.branch import Branch, BranchRole, Registry
from core.device import Precision
from pipeline.evidence import BranchEvidence
from core.weights import WeightUnavailableError
from encoder.align import AlignedFace

DESIGN_FIELDS = {"schema_version", "file", "sha256", "width", "height", "is_fake", "fake_probability", "label",
                 "probabilities", "evidence", "faces", "warnings", "timings_ms", "models", "uncertain"}


@lru_cache(maxsize=4)
def _tiny_networks(precision: Precision) -> dict:
    """The tiny CLIP tower + probe and the tiny e4e in one precision, from the same seeds in every precision."""
    from detector.clip_probe import ClipProbe, ClipProbeConfig
    from encoder.e4e import E4EConfig, Encoder4Editing

    return {"clip_probe": ClipProbe.random_init(ClipProbeConfig.tiny(), precision=precision),
            "e4e": Encoder4Editing.random_init(E4EConfig.tiny(), precision=precision)}


@lru_cache(maxsize=1)
def _tiny_models(svm_dir: str) -> dict:
    from attribution.latent_svm import LatentAttributor
    from detector.fingerprint_net import FingerprintConfig, FingerprintNet

    import torch

    fp32 = Precision(torch.device("cpu"), torch.float32)
    svm_path = tiny_attributor(Path(svm_dir) / "tiny-svm.joblib")
    fingerprint = FingerprintNet.random_init(FingerprintConfig.tiny(), precision=fp32)
    return {**_tiny_networks(fp32), "fingerprint_net": fingerprint,
            "latent_svm": LatentAttributor.from_pretrained(svm_path)}


def tiny_attributor(path: Path) -> Path:
    """A latent SVM fitted on random latents of the tiny e4e's W+ shape, saved at `path` (.skops or legacy .joblib):
    real attribution code on meaningless data."""
    from attribution.latent_svm import LatentAttributor
    from encoder.e4e import E4EConfig

    config = E4EConfig.tiny()
    LatentAttributor.random_init((config.n_styles, config.style_dim)).save(path)
    return path


def tiny_branches(tmp_dir: Path, precision: Precision | None = None, **replace: Branch) -> dict[str, Branch]:
    """The shipped branch classes around tiny random models (the real dlib aligner stays: it ships in a pip
    package); CLIP and e4e in `precision` when given (bf16 or int8 weights), fp32 otherwise."""
    models = _tiny_models(str(tmp_dir))
    if precision is not None:
        models = {**models, **_tiny_networks(precision)}
    branches = {
        "clip_probe": ClipProbeBranch(models["clip_probe"], {"clip-probe-tiny": P.RANDOM_WEIGHTS}),
        "fingerprint_net": FingerprintBranch(models["fingerprint_net"], {"fingerprintnet-tiny": P.RANDOM_WEIGHTS}),
        "latent_svm": LatentBranch(models["e4e"], models["latent_svm"],
                                   {"e4e-tiny": P.RANDOM_WEIGHTS, "latent-svm-tiny": P.RANDOM_WEIGHTS}),
    }
    branches.update(replace)
    return branches


def tiny_pipeline(tmp_dir: Path, batch_size: int = 4, face_finder: FaceFinder | None = None,
                  fusion: P.FusionConfig | None = None, registry: Registry = BRANCHES,
                  branch_options: dict | None = None, research: tuple[str, ...] = (), **replace: Branch
                  ) -> P.Pipeline:
    """The shipped pipeline around tiny models; a test that adds a toy branch passes its own `registry`, one that
    trusts the C2PA test chain passes `branch_options={"provenance": {"trust": CHAIN}}`, one that runs a
    research-only branch with its shipped weights names it in `research`."""
    config = P.PipelineConfig(device="cpu", dtype="fp32", batch_size=batch_size, fusion=fusion or P.FusionConfig(),
                              branch_options=branch_options or {}, extra_branches=research)
    return P.Pipeline(config, tiny_branches(tmp_dir, **replace), face_finder, registry)


NOTHING_TRUSTED = P.FusionConfig(trust_unmeasured=())


def unskilled_pipeline(tmp_dir: Path, registry: Registry = BRANCHES, **replace: Branch) -> P.Pipeline:
    """The tiny pipeline where no branch may vote unmeasured, as offline where no loaded detector has the skill:
    every branch runs and shows its own reading, and nothing decides real vs fake."""
    return tiny_pipeline(tmp_dir, fusion=NOTHING_TRUSTED, registry=registry, **replace)


PASSING_SKILL = {"protocol": "leave-one-source-out",
                 "real_vs_fake": {"auc": 0.95, "real_false_positive_rate": 0.02}}


class ToyDetector:
    """A branch fusion has never heard of, with a passing held-out skill record: it calls every image fake (P = 0.9)
    and scores no architecture. Register it with `registry=(*BRANCHES, BranchEntry(ToyDetector))`."""

    name, level, warning, skill = "toy_detector", "image", None, PASSING_SKILL
    role = BranchRole(title="Toy detector")
    models = {"toy-detector": "0" * 64}

    def required_weights(self, context) -> list[str]:
        return []

    def load(self, context) -> None:
        pass

    def run(self, inputs):
        return [BranchEvidence({"real": 0.1, "fake": 0.9}) for _ in inputs]


class Missing:
    """A branch whose weight is not on disk: loading raises the registry's error."""

    models: dict = {}
    warning = skill = None

    def __init__(self, name: str, weight: str, level: str = "image"):
        self.name, self.weight, self.level = name, weight, level

    def required_weights(self, context) -> list[str]:
        return [self.weight]

    def load(self, context) -> None:
        raise WeightUnavailableError(self.weight, "it is not in the local cache and downloads are disabled",
                                     "the Hub", f"python scripts/download_weights.py --name {self.weight}")

    def run(self, inputs):
        raise AssertionError("a branch that failed to load must never run")


class CentreFaceFinder(FaceFinder):
    """Stands in for dlib: one 'face' per image (or `per_image` of them), the centre square resized to 256 px, so
    the face-level branches run without the development face set."""

    def __init__(self, per_image: int = 1):
        super().__init__(aligner=object(), models={"centre-face-finder": "test"})
        self.per_image = per_image

    def find(self, images, names):
        return [[centre_face(image, index) for index in range(self.per_image)] for image in images]


def centre_face(image: np.ndarray, index: int = 0) -> AlignedFace:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(image[top:top + side, left:left + side]).resize((256, 256))
    pixels = np.asarray(crop if index == 0 else crop.rotate(90 * index))
    box = (left, top, left + side, top + side)
    landmarks = np.zeros((68, 2), np.float32)
    quad = np.array([[left, top], [left, top + side], [left + side, top + side], [left + side, top]], np.float32)
    return AlignedFace(image=pixels, box=box, landmarks=landmarks, quad=quad, alignment_error=0.01, score=1.0)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
