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

from pipeline.branch import BranchContext, BranchEntry, BranchRole, Registry
from pipeline.evidence import BranchEvidence
from core.weights import (WeightUnavailableError, names_a_file, registry_default, resolve, sha256_file,
                          weight_sha256)

RANDOM_WEIGHTS = "random-init"
CLIP_WEIGHTS = ("clip-vit-l14-openai", "ufd-probe")
E4E_WEIGHTS = "e4e-ffhq"
LANDMARK_WEIGHTS = "dlib-landmarks-68"
DEFAULT_ATTRIBUTOR = "ganorigin-svm"


class ModelBranch:
    """What every shipped branch shares: an optional injected estimator, the weights used and a caveat to repeat."""

    name = ""
    level = "image"
    default_weights = ""

    def __init__(self, estimator: Any = None, models: dict[str, str] | None = None, warning: str | None = None):
        self.estimator = estimator
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
        """The estimator's own skill record (spectral, residual) or the one in its metadata (FingerprintNet)."""
        return _skill_of(self.estimator)

    def load(self, context: BranchContext) -> None:
        if self.estimator is None:
            self.estimator = self._build(context)

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
        if names_a_file(name):
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


def _skill_of(estimator: Any) -> dict | None:
    if estimator is None:
        return None
    return getattr(estimator, "skill", None) or getattr(estimator, "metadata", {}).get("skill")


def _evidence(classes: Sequence[str], probabilities: np.ndarray, **per_input: Sequence[Any]) -> list[BranchEvidence]:
    """One BranchEvidence per row of an estimator's predict_proba, keyed by its classes_, with any other field
    (`label`, `out_of_distribution`) given per input."""
    return [BranchEvidence(dict(zip(classes, map(float, row))), **{field: values[index]
                                                                   for field, values in per_input.items()})
            for index, row in enumerate(probabilities)]


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
            model = ClipProbe.from_pretrained(precision=context.precision, download=context.download, config=config)
        except WeightUnavailableError as err:
            self._random_fallback(context, err, "its P(fake)")
            return ClipProbe.random_init(config, precision=context.precision)
        self._models.update(model.weights_sha256)
        return model

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        """P(real), P(fake); an image smaller than the probe's crop is zero-padded as UFD does, which the probe never
        saw in training, so such a reading is flagged as out of its distribution."""
        crop = self.estimator.config.crop_size
        padded = [f"the image is {image.shape[1]}×{image.shape[0]} px, under the {crop} px crop the probe reads, so "
                  "it judged a zero-padded image" if min(image.shape[:2]) < crop else None for image in inputs]
        return _evidence(self.estimator.classes_, self.estimator.predict_proba(inputs), out_of_distribution=padded)


class FingerprintBranch(ModelBranch):
    """FingerprintNet: P(real / progan / stylegan2 / stylegan3) from spatial and spectral cues, with Grad-CAM."""

    name = "fingerprint_net"
    role = BranchRole(title="FingerprintNet", unsure_below=0.5)  # top class under 0.5: none of its classes fits
    default_weights = "fingerprintnet-small"

    def _build(self, context: BranchContext) -> Any:
        from detector.fingerprint_net import FingerprintNet

        return FingerprintNet.from_pretrained(self._weights_file(context), context.precision)

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        return _evidence(self.estimator.classes_, self.estimator.predict_proba(inputs))

    def explain(self, image: np.ndarray) -> np.ndarray:
        """Grad-CAM of the predicted class over the image: where the network looked."""
        from detector.gradcam import gradcam, overlay

        return overlay(image, gradcam(self.estimator, [image])[0])


class SpectralBranch(ModelBranch):
    """The classical baseline (Frank et al. 2020): DCT log-spectrum + linear models, fast and explainable."""

    name = "spectral_dct"
    role = BranchRole(title="Spectral DCT baseline")
    default_weights = "spectral-dct-codecblind"

    def _build(self, context: BranchContext) -> Any:
        from detector.spectral import SpectralDetector

        return SpectralDetector.from_pretrained(self._weights_file(context))

    def run(self, inputs: Sequence[np.ndarray]) -> list[BranchEvidence]:
        """P(real) and P(fake) shared out over the architectures (the model applies its held-out threshold); a
        spectrum far from the training data is said."""
        features = self.estimator.features(inputs)
        return _evidence(self.estimator.classes_, self.estimator.predict_proba_features(features),
                         out_of_distribution=self.estimator.out_of_distribution_features(features))


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
        """P(real) and P(fake) shared out by P(architecture | fake) (the model applies its held-out threshold)."""
        return _evidence(self.estimator.classes_, self.estimator.predict_proba(inputs))


class LatentBranch(ModelBranch):
    """GANOrigin's method: the aligned face inverted by e4e into W+, attributed by a calibrated linear SVM."""

    name = "latent_svm"
    level = "face"
    role = BranchRole(title="Latent SVM (e4e W+)", trust_unmeasured=True)  # the user's own artifact

    def __init__(self, encoder: Any = None, attributor: Any = None, models: dict[str, str] | None = None):
        super().__init__(None, models)
        self.encoder = encoder
        self.attributor = attributor
        self.attributor_name: str | None = None

    @property
    def skill(self) -> dict | None:
        """The skill record in the attributor's metadata."""
        return _skill_of(self.attributor)

    def required_weights(self, context: BranchContext) -> list[str]:
        if self._models:
            return []
        return [E4E_WEIGHTS, str(context.options.get("artifact") or default_attributor())]

    def load(self, context: BranchContext) -> None:
        if self.attributor is None:
            self.attributor = self._load_attributor(context)
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
        model = LatentAttributor.from_pretrained(path, trust_foreign=bool(context.options.get("trust_foreign", False)))
        self.attributor_name = str(artifact) if artifact else default_attributor()
        self._models[self.attributor_name] = sha256_file(path)
        return model

    @property
    def origin(self) -> str | None:
        """Which attribution model runs (its name and sha256 prefix) and where it came from, in one line for the
        status panel (None before it loads)."""
        if self.attributor is None:
            return None
        sha256 = self._models.get(self.attributor_name or "", "")
        name = f"{self.attributor_name} (sha256 {sha256[:12]}…)" if self.attributor_name else "an injected model"
        return f"{name}: {self.attributor.origin}"

    def _load_encoder(self, context: BranchContext) -> Any:
        from encoder.e4e import E4EConfig, Encoder4Editing

        self._note_int8(context, "e4e convolutions")
        try:
            encoder = Encoder4Editing.from_pretrained(precision=context.precision, download=context.download)
        except WeightUnavailableError as err:
            self._random_fallback(context, err, "the latent evidence")
            return Encoder4Editing.random_init(E4EConfig.ffhq(), precision=context.precision)
        self._models[E4E_WEIGHTS] = encoder.weights_sha256 or RANDOM_WEIGHTS
        return encoder

    def run(self, inputs: Sequence[Any]) -> list[BranchEvidence]:
        """P(architecture) per face from its W+ latent, labelled with the open-set answer (a class or "unknown")."""
        from attribution.open_set import open_set_labels

        latents = self.encoder.encode([face.image for face in inputs], batch_size=max(len(inputs), 1),
                                      add_latent_avg=self.attributor.latent_avg_added)
        return _evidence(self.attributor.classes_, self.attributor.predict_proba(latents),
                         label=open_set_labels(self.attributor, latents))


class CueBranch(ModelBranch):
    """A linear model over one cue's features (detector.feature_model): P(real) plus P(fake) shared out by its
    P(architecture | fake), its held-out threshold applied inside the model (0.5 is its decision point). A subclass
    names its cue: the feature version its weights must match and the feature function."""

    kind = ""

    def cue(self) -> tuple[str, Callable[[Sequence[Any]], np.ndarray]]:
        raise NotImplementedError

    def _build(self, context: BranchContext) -> Any:
        from detector.feature_model import FeatureModel

        return FeatureModel.from_pretrained(self._weights_file(context), self.kind, self.cue()[0])

    def run(self, inputs: Sequence[Any]) -> list[BranchEvidence]:
        """P(real) and P(fake) shared out over the architectures (the model applies its held-out threshold)."""
        return _evidence(self.estimator.classes_, self.estimator.predict_proba(self.cue()[1](inputs)))


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


class ProvenanceBranch:
    """What the file declares about its own origin (Content Credentials, IPTC/XMP source type, generator metadata,
    camera EXIF). It reads the file, not the pixels, needs no weights and votes only through the trust rule of
    `provenance.findings`: fake, decisively, when valid Content Credentials signed by a trusted anchor declare a
    generative source type; every other finding is shown and votes nothing."""

    name = "provenance"
    level = "file"
    role = BranchRole(title="Provenance (Content Credentials, metadata)", trust_unmeasured=True, decisive=True)
    models: dict[str, str] = {}
    warning = None
    skill = None

    def __init__(self) -> None:
        self.reader: Any = None

    def required_weights(self, context: BranchContext) -> list[str]:
        return []

    def load(self, context: BranchContext) -> None:
        """The trust anchors: the shipped C2PA list plus the user's PEM (options["trust"], else GANTRACE_C2PA_TRUST)."""
        from provenance.c2pa_manifest import ManifestReader
        from provenance.trust import load_trust, trust_path

        self.reader = ManifestReader(load_trust(trust_path(context.options.get("trust"))))

    @property
    def origin(self) -> str | None:
        """The trust lists in force, for the status panel (None before it loads)."""
        return None if self.reader is None else f"trusts {self.reader.trust.description}"

    def run(self, inputs: Sequence[Any]) -> list[BranchEvidence]:
        """Each file's findings in `details`; probabilities only when it votes ({} otherwise: ran, no reading)."""
        from provenance.read import read_provenance

        evidence = []
        for item in inputs:
            findings = read_provenance(item.read(), item.name, self.reader)
            votes: dict[str, float] = {}
            if findings.votes_fake:
                architecture = findings.architecture
                votes = {"real": 0.0, "fake": 1.0} if architecture == "unknown" else {"real": 0.0, architecture: 1.0}
            evidence.append(BranchEvidence(votes, details=findings.to_json(), warnings=findings.warnings))
        return evidence


# The shipped branches, in the order the verdict lists their evidence; the pipeline runs every default one.
BRANCHES: Registry = (
    BranchEntry(ClipProbeBranch),
    # research only: refit per fold under source-grouped CV it reached AUC 0.66 as stored but 0.49 after JPEG q75
    # (artifacts/residual-npr.md), i.e. it misleads on re-encoded photos; `--branch fingerprint_net` still runs it
    BranchEntry(FingerprintBranch, default=False),
    BranchEntry(SpectralBranch),
    # research only: it reads the codec (refit per fold in issue 27: AUC 0.73 as stored, 0.51 after JPEG q75, and
    # half of the real photos called fake once downscaled, see artifacts/cv-comparison-issue27.md), so its reading
    # would mislead an analyst even unvoted; `--branch residual_npr` still runs it
    BranchEntry(ResidualBranch, default=False),
    # research only: codec-robust but below the voting bars under source-grouped CV (artifacts/face-geometry.md,
    # artifacts/colour-stats.md); `--branch face_geometry` / `--branch colour_stats` run them
    BranchEntry(GeometryBranch, default=False),
    BranchEntry(ColourBranch, default=False),
    BranchEntry(LatentBranch),
    BranchEntry(ProvenanceBranch),
)
