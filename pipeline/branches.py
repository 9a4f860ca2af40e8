"""The branches GANTrace ships, each wrapping a stage model behind `pipeline.branch.Branch`, registered in one place.

Why a module of its own: a branch may combine stages that must not import each other (the latent branch is e4e
from `encoder` plus the SVM from `attribution`), so the wiring lives here, above the stages and below the
pipeline. Every branch loads offline unless `BranchContext.download` is set, reports the weights it used, and
can be handed an already built model (tests inject tiny ones through the same code path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.branch import BranchContext, BranchRole, register_branch
from pipeline.evidence import BranchEvidence
from core.weights import WeightUnavailableError, registry_default, resolve, sha256_file, weight_sha256

RANDOM_WEIGHTS = "random-init"
CLIP_WEIGHTS = ("clip-vit-l14-openai", "ufd-probe")
E4E_WEIGHTS = "e4e-ffhq"
LANDMARK_WEIGHTS = "dlib-landmarks-68"
DEFAULT_ATTRIBUTOR = "ganorigin-svm"


class ModelBranch:
    """What every shipped branch shares: an optional injected model, the weights used and a caveat to repeat."""

    name = ""
    level = "image"
    default_weights = ""

    def __init__(self, model: Any = None, models: dict[str, str] | None = None, warning: str | None = None):
        self.model = model
        self._models = dict(models or {})
        self._warning = warning

    @property
    def models(self) -> dict[str, str]:
        return dict(self._models)

    @property
    def warning(self) -> str | None:
        return self._warning

    @property
    def skill(self) -> dict | None:
        """The model's own skill record (spectral, residual) or the one in its metadata (FingerprintNet, SVM)."""
        if self.model is None:
            return None
        return getattr(self.model, "skill", None) or getattr(self.model, "metadata", {}).get("skill")

    def load(self, context: BranchContext) -> None:
        if self.model is None:
            self.model = self._build(context)

    def _build(self, context: BranchContext) -> Any:
        raise NotImplementedError

    def required_weights(self, context: BranchContext) -> list[str]:
        return [] if self._models else [self._weights_name(context)]

    def _weights_name(self, context: BranchContext) -> str:
        return str(context.options.get("weights", self.default_weights))

    def _weights_file(self, context: BranchContext) -> Path:
        """The branch's weights: a registry name (verified, fetched when allowed) or a path to a file of one's own."""
        name = self._weights_name(context)
        path = Path(name)
        if "/" in name or path.suffix or path.is_file():
            if not path.is_file():
                raise WeightUnavailableError(name, "no such file", f"the path given as the {self.name} weights")
            self._models[path.name] = sha256_file(path)
            return path
        path = resolve(name, download=context.download)
        self._models[name] = weight_sha256(name, path)
        return path

    def _note_int8(self, context: BranchContext, layers: str) -> None:
        """With --dtype int8, say on every verdict that this branch's numbers come from int8 layers."""
        if context.precision.quantized:
            self._add_warning(f"{self.name} ran its {layers} in int8 (--dtype int8), whose agreement with fp32 is "
                              "measured on random weights only: re-check a close call with --dtype fp32")

    def _add_warning(self, note: str) -> None:
        self._warning = f"{self._warning}; {note}" if self._warning else note

    def _random_fallback(self, context: BranchContext, err: WeightUnavailableError, what: str) -> None:
        """Benchmarks only: say loudly that the output is meaningless, or re-raise the missing weight."""
        if not context.random_weights_ok:
            raise err
        self._models[self.name] = RANDOM_WEIGHTS
        self._add_warning(f"{self.name} uses RANDOM weights (benchmark mode; {err.weight} is missing): "
                          f"{what} is meaningless")


class ClipProbeBranch(ModelBranch):
    """UniversalFakeDetect: CLIP ViT-L/14 features through a linear probe, P(fake)."""

    name = "clip_probe"
    role = BranchRole(title="CLIP probe (UFD)", trust_unmeasured=True)  # published; held-out skill not measured yet

    def required_weights(self, context: BranchContext) -> list[str]:
        return [] if self._models else list(CLIP_WEIGHTS)

    def _build(self, context: BranchContext) -> Any:
        from detector.clip_probe import ClipProbe, ClipProbeConfig

        config = ClipProbeConfig(batch_size=context.batch_size, **context.options)
        self._note_int8(context, "CLIP Linear layers")
        try:
            model = ClipProbe.from_registry(config, context.precision, download=context.download)
        except WeightUnavailableError as err:
            self._random_fallback(context, err, "its P(fake)")
            return ClipProbe.random_init(config, context.precision)
        self._models.update(model.weights_sha256)
        return model

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        """P(fake); an image smaller than the probe's crop is zero-padded as UFD does, which the probe never saw in
        training, so such a reading is flagged as out of its distribution."""
        crop = self.model.config.crop_size
        return [BranchEvidence({"real": 1.0 - float(p), "fake": float(p)}, out_of_distribution=(
            f"the image is {image.shape[1]}×{image.shape[0]} px, under the {crop} px crop the probe reads, so it "
            "judged a zero-padded image" if min(image.shape[:2]) < crop else None))
            for image, p in zip(inputs, self.model.predict_proba(inputs))]


class FingerprintBranch(ModelBranch):
    """FingerprintNet: P(real / progan / stylegan2 / stylegan3) from spatial and spectral cues, with Grad-CAM."""

    name = "fingerprint_net"
    role = BranchRole(title="FingerprintNet", unsure_below=0.5)  # top class under 0.5: none of its classes fits
    default_weights = "fingerprintnet-small"

    def _build(self, context: BranchContext) -> Any:
        from detector.fingerprint_net import FingerprintNet

        return FingerprintNet.from_pretrained(self._weights_file(context), context.precision)

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        classes = tuple(self.model.classes)
        return [BranchEvidence(dict(zip(classes, map(float, row)))) for row in self.model.predict_proba(inputs)]

    def explain(self, image: np.ndarray) -> np.ndarray:
        """Grad-CAM of the predicted class over the image: where the network looked."""
        from detector.gradcam import gradcam, overlay

        return overlay(image, gradcam(self.model, [image])[0])


def shared_out(p_fake: float, classes: Sequence[str], attribution: Sequence[float] | None) -> dict[str, float]:
    """P(real) plus P(fake) shared out over the architectures by the branch's P(architecture | fake) (or a plain
    "fake" entry when it has no attribution head): the shape fusion reads from every detector."""
    if attribution is None:
        return {"real": 1.0 - p_fake, "fake": p_fake}
    return {"real": 1.0 - p_fake, **{c: p_fake * float(p) for c, p in zip(classes, attribution)}}


class SpectralBranch(ModelBranch):
    """The classical baseline (Frank et al. 2020): DCT log-spectrum + linear models, fast and explainable."""

    name = "spectral_dct"
    role = BranchRole(title="Spectral DCT baseline")
    default_weights = "spectral-dct"

    def _build(self, context: BranchContext) -> Any:
        from detector.spectral import SpectralDetector

        return SpectralDetector.from_pretrained(self._weights_file(context))

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        """P(real) plus P(fake) shared out over the architectures, its fake score re-centred on the artifact's
        held-out threshold so that 0.5 is its own decision point; a spectrum far from the training data is said."""
        from pipeline.fusion import recentre
        from detector.spectral import image_features

        features = image_features(inputs, self.model.spec)
        scores = self.model.predict_features(features)
        notes = self.model.out_of_distribution_features(features)
        classes = self.model.attribution_classes
        evidence = []
        for index, raw in enumerate(scores["fake"]):
            attribution = scores["attribution"][index] if "attribution" in scores else None
            probabilities = shared_out(recentre(float(raw), self.model.threshold), classes, attribution)
            evidence.append(BranchEvidence(probabilities, out_of_distribution=notes[index]))
        return evidence


class ResidualBranch(ModelBranch):
    """NPR-style up-sampling residual (Tan et al. 2024) of native-resolution crops, read by a small CNN: P(fake) and
    P(architecture), chosen over FingerprintNet by source-grouped 5-fold CV (artifacts/residual-npr.md)."""

    name = "residual_npr"
    role = BranchRole(title="Up-sampling residual (NPR)")
    default_weights = "residual-npr"

    def _build(self, context: BranchContext) -> Any:
        from detector.residual_net import ResidualNet

        return ResidualNet.from_pretrained(self._weights_file(context))

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        """Its P(fake) re-centred on the artifact's held-out threshold (0.5 is its own decision point), shared out
        by its P(architecture | fake) from the four-class head."""
        from pipeline.fusion import recentre

        scores = self.model.predict_proba(inputs)
        classes = self.model.classes[1:]
        evidence = []
        for raw, row in zip(scores["fake"], scores["classes"]):
            attribution = np.asarray(row[1:], dtype=float) / max(float(np.sum(row[1:])), 1e-12)
            evidence.append(BranchEvidence(shared_out(recentre(float(raw), self.model.threshold), classes,
                                                      attribution)))
        return evidence


class LatentBranch(ModelBranch):
    """GANOrigin's method: the aligned face inverted by e4e into W+, attributed by a calibrated linear SVM."""

    name = "latent_svm"
    level = "face"
    role = BranchRole(title="Latent SVM (e4e W+)", trust_unmeasured=True)  # the user's own artifact

    def __init__(self, encoder: Any = None, attributor: Any = None, models: dict[str, str] | None = None):
        super().__init__(attributor, models)
        self.encoder = encoder
        self.attributor_name: str | None = None

    def required_weights(self, context: BranchContext) -> list[str]:
        if self._models:
            return []
        return [E4E_WEIGHTS, str(context.options.get("artifact") or default_attributor())]

    def load(self, context: BranchContext) -> None:
        if self.model is None:
            self.model = self._load_attributor(context)
        if self.encoder is None:
            self.encoder = self._load_encoder(context)

    def _load_attributor(self, context: BranchContext) -> Any:
        """The artifact named in the options (a path or hf://OWNER/NAME), else GANOrigin's converted classifier."""
        from attribution.latent_svm import LatentAttributor, resolve_attributor

        artifact = context.options.get("artifact")
        path = resolve_attributor(artifact, download=context.download)
        if not path.is_file():
            raise WeightUnavailableError("latent-svm", f"{path} does not exist; pass the path of an artifact "
                                         "written by scripts/train_svm.py")
        model = LatentAttributor.load(path, trust_foreign=bool(context.options.get("trust_foreign", False)))
        self.attributor_name = str(artifact) if artifact else default_attributor()
        self._models[self.attributor_name] = sha256_file(path)
        return model

    @property
    def origin(self) -> str | None:
        """Which attribution model runs (its name and sha256 prefix) and where it came from, in one line for the
        status panel (None before it loads)."""
        if self.model is None:
            return None
        sha256 = self._models.get(self.attributor_name or "", "")
        name = f"{self.attributor_name} (sha256 {sha256[:12]}…)" if self.attributor_name else "an injected model"
        return f"{name}: {self.model.origin}"

    def _load_encoder(self, context: BranchContext) -> Any:
        from encoder.e4e import E4EConfig, Encoder4Editing

        self._note_int8(context, "e4e convolutions")
        try:
            encoder = Encoder4Editing.from_registry(context.precision, download=context.download)
        except WeightUnavailableError as err:
            self._random_fallback(context, err, "the latent evidence")
            return Encoder4Editing.random_init(E4EConfig.ffhq(), context.precision)
        self._models[E4E_WEIGHTS] = encoder.weights_sha256 or RANDOM_WEIGHTS
        return encoder

    def run(self, inputs: Sequence[Any]) -> list[BranchEvidence]:
        latents = self.encoder.encode([face.image for face in inputs], batch_size=max(len(inputs), 1),
                                      add_latent_avg=self.model.latent_avg_added)
        probabilities, labels = self.model.predict_with_proba(latents)
        classes = [str(c) for c in self.model.classes_]
        return [BranchEvidence(dict(zip(classes, map(float, row))), label=str(label))
                for row, label in zip(probabilities, labels)]


class CueBranch(ModelBranch):
    """A linear model over one cue's features (detector.feature_model): P(real) plus P(fake) shared out by its
    P(architecture | fake), the fake score re-centred on the artifact's held-out threshold (0.5 is its decision
    point). A subclass names its cue: the feature version its weights must match and the feature function."""

    kind = ""

    def cue(self) -> tuple[str, Callable[[Sequence[Any]], np.ndarray]]:
        raise NotImplementedError

    def _build(self, context: BranchContext) -> Any:
        from detector.feature_model import FeatureModel

        return FeatureModel.from_pretrained(self._weights_file(context), self.kind, self.cue()[0])

    def run(self, inputs: Sequence[Any]) -> list[BranchEvidence]:
        from pipeline.fusion import recentre

        features = self.cue()[1](inputs)
        fake = self.model.detector.predict_proba(features)[:, 1]
        attributor = self.model.attributor
        attribution = attributor.predict_proba(features) if attributor is not None else None
        classes = attributor.classes_ if attributor is not None else ()
        return [BranchEvidence(shared_out(recentre(float(p), self.model.detector.threshold), classes,
                                          None if attribution is None else attribution[index]))
                for index, p in enumerate(fake)]


class GeometryBranch(CueBranch):
    """Where the face sits in the frame, from the 68 landmarks the face finder already found: generators inherit
    their training set's alignment, and a JPEG re-encode moves a landmark by a pixel at most."""

    name = "face_geometry"
    level = "face"
    kind = "face-geometry"
    role = BranchRole(title="Face geometry (landmarks)")
    default_weights = "face-geometry"

    def cue(self) -> tuple[str, Callable[[Sequence[Any]], np.ndarray]]:
        from detector import face_geometry

        return face_geometry.FEATURE_VERSION, lambda faces: np.stack(
            [face_geometry.geometry_features(face.landmarks, face.frame_size) for face in faces])


class ColourBranch(CueBranch):
    """Colour statistics of the whole image (McCloskey & Albright 2019: generators clip fewer highlights and
    shadows than cameras), a cue the codec barely moves."""

    name = "colour_stats"
    kind = "colour-stats"
    role = BranchRole(title="Colour statistics")
    default_weights = "colour-stats"

    def cue(self) -> tuple[str, Callable[[Sequence[Any]], np.ndarray]]:
        from detector import colour_stats

        return colour_stats.FEATURE_VERSION, lambda images: np.stack(
            [colour_stats.colour_features(image) for image in images])


def default_attributor() -> str:
    """The registry's default attributor name (a published Space's registry names its staged one)."""
    return registry_default("attributor") or DEFAULT_ATTRIBUTOR


class FaceFinder:
    """dlib detection + FFHQ alignment, shared by every face-level branch (faces are found once per image)."""

    def __init__(self, aligner: Any = None, models: dict[str, str] | None = None):
        self.aligner = aligner
        self._models = dict(models or {})

    @property
    def models(self) -> dict[str, str]:
        return dict(self._models)

    def required_weights(self, context: BranchContext) -> list[str]:
        return [] if self._models else [LANDMARK_WEIGHTS]

    def load(self, context: BranchContext) -> None:
        """The dlib aligner; `branch_options["face_finder"]` holds AlignConfig fields (e.g. detect_max_side)."""
        if self.aligner is None:
            from encoder.align import AlignConfig, FaceAligner

            path = resolve(LANDMARK_WEIGHTS, download=context.download)
            self.aligner = FaceAligner(AlignConfig(**context.options), predictor_path=path)
            self._models[LANDMARK_WEIGHTS] = weight_sha256(LANDMARK_WEIGHTS, path)

    def find(self, images: Sequence[np.ndarray], names: Sequence[str]) -> list[list | NoFace]:
        """Every image's aligned faces, largest first, or `NoFace` with the detector's reason."""
        from encoder.align import NoFaceError

        return [NoFace(str(out)) if isinstance(out, NoFaceError) else out
                for out in self.aligner.align_batch(images, names)]


@dataclass(frozen=True)
class NoFace:
    """An image in which no face was found: not a failure, a fact the verdict reports."""

    message: str


def register_default_branches() -> None:
    """The shipped branches, in the order the verdict lists their evidence."""
    register_branch(ClipProbeBranch.name, ClipProbeBranch)
    # research only: refit per fold under source-grouped CV it reached AUC 0.66 as stored but 0.49 after JPEG q75
    # (artifacts/residual-npr.md), i.e. it misleads on re-encoded photos; `--branch fingerprint_net` still runs it
    register_branch(FingerprintBranch.name, FingerprintBranch, default=False)
    register_branch(SpectralBranch.name, SpectralBranch)
    register_branch(ResidualBranch.name, ResidualBranch)
    # research only: codec-robust but below the voting bars under source-grouped CV (artifacts/face-geometry.md,
    # artifacts/colour-stats.md); `--branch face_geometry` / `--branch colour_stats` run them
    register_branch(GeometryBranch.name, GeometryBranch, default=False)
    register_branch(ColourBranch.name, ColourBranch, default=False)
    register_branch(LatentBranch.name, LatentBranch)


register_default_branches()
