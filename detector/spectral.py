"""The classical spectral branch: a DCT log-spectrum and a linear model (Frank et al., ICML 2020).

GAN up-sampling leaves a grid of faint periodic patterns; in the 2-D DCT of a grayscale crop they show as
energy at fixed frequencies that camera photos do not have. Frank et al. showed that the log-magnitude DCT
spectrum alone lets a linear model separate GAN images from real ones; Durall et al. (CVPR 2020) showed that even
its azimuthal average (energy per radial frequency) keeps much of that signal and is robust to small shifts.
This branch uses both and two linear heads: real vs fake, and — separately, because it generalises
differently — attribution among the three known GANs.

The spectrum is taken after putting every face at one content scale (short side resized to 128 px). Native
crops keep the up-sampling peaks sharper, but on faces of 64 to 1350 pixels a fixed-size native crop is a whole
face in a small image and a patch of smooth skin in a large one, and the linear model then learns image size
(held-out AUC 0.59 on the face set); resizing trades some peak sharpness for a spectrum that compares like with
like.

It is the fast, explainable baseline every learned branch must beat under the leave-one-source-out protocol, and
it ships without pickle: weights are plain arrays in an .npz, the feature spec, classes, threshold and measured
skill in a JSON beside it.

Its out-of-distribution signal is the root-mean-square of the standardised features (what the linear model
reads): an image whose spectrum lies farther from the training images than OOD_QUANTILE of the training views
gets a sentence that fusion turns into an 'uncertain' verdict, because a linear model extrapolates confidently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from scipy.fft import dctn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detector.artifact_pair import read_artifact_pair
from core.augment import AugmentSettings
from core.images import load_image
from core.probability import HeadEstimator, most_probable, recentred, shared_out
from core.source_holdout import KNOWN_GANS, REAL, HeldOutPredictions, Scores, leave_one_source_out, source_folds
from core.weights import resolve_name_or_path
from detector.fingerprint_data import augment, downscale, jpeg_reencode
from detector.crops import fixed_crops

FILE_FORMAT = "gantrace-spectral"
FILE_VERSION = 1
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_LOG_FLOOR = 1e-5
OOD_STATISTIC = "rms standardised DCT features"
OOD_QUANTILE = 0.99
OOD_GROUPS = {"real": "real photos", "known_gan": "progan / stylegan2 / stylegan3",
              "other_gan_diffusion": "other_gan / diffusion (outside the known classes)"}


@dataclass(frozen=True)
class SpectralSpec:
    """What the features are: crop size, DCT pooling, azimuthal bins, test crops. Stored in the artifact.

    `resize` (short side, pixels) puts every face at one content scale before cropping. Without it, a 64-pixel
    crop of a 1024-pixel face is smooth skin and a crop of a 128-pixel ProGAN tile is a whole face, and a linear
    model learns "small image = fake" (measured leave-one-source-out on the face set: AUC 0.59).
    The azimuthal profile is off by default: with it, held-out AUC fell from 0.67 to 0.64 (C = 0.01).
    """

    crop: int = 128
    dct_pool: int = 8
    azimuthal: bool = False
    num_crops: int = 1
    resize: int | None = 128

    @classmethod
    def tiny(cls) -> SpectralSpec:
        """16-pixel crops of a 32-pixel image, pooled by 2, with the azimuthal profile: the code path in a blink."""
        return cls(crop=16, dct_pool=2, azimuthal=True, num_crops=1, resize=32)

    @property
    def dim(self) -> int:
        side = self.crop // self.dct_pool
        return side * side + (self.crop // 2 if self.azimuthal else 0)


def standardised_rms(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N,) root-mean-square of each row's z-scores: one number for how unlike the training spectra a row is."""
    return np.sqrt(np.mean(((features - mean) / scale) ** 2, axis=1))


def ood_threshold(views: np.ndarray, mean: np.ndarray, scale: np.ndarray, quantile: float = OOD_QUANTILE) -> float:
    """The `quantile` of the training views' standardised RMS: above it, an image is rarer than the training set."""
    return float(np.quantile(standardised_rms(views.reshape(-1, views.shape[-1]), mean, scale), quantile))


def dct_log_spectrum(gray: np.ndarray) -> np.ndarray:
    """log|DCT-II| (orthonormal) of a square grayscale crop in [0, 1]: the picture the linear model reads."""
    return np.log(np.abs(dctn(gray, type=2, norm="ortho")) + _LOG_FLOOR).astype(np.float32)


def azimuthal_spectrum(gray: np.ndarray) -> np.ndarray:
    """Mean log power of the centred FFT per integer radius (Durall et al. 2020), minus its own mean.

    Subtracting the mean removes overall contrast, leaving the shape of the fall-off where GAN up-sampling
    shows as a bump or a plateau at high frequencies.
    """
    size = gray.shape[0]
    power = np.abs(np.fft.fftshift(np.fft.fft2(gray - gray.mean(), norm="ortho"))) ** 2
    y, x = np.indices(power.shape) - size // 2
    radius = np.hypot(y, x).astype(int)
    inside = radius < size // 2
    totals = np.bincount(radius[inside], weights=power[inside], minlength=size // 2)
    counts = np.bincount(radius[inside], minlength=size // 2)
    profile = np.log(totals / np.maximum(counts, 1) + _LOG_FLOOR)
    return (profile - profile.mean()).astype(np.float32)


def crop_features(crop: np.ndarray, spec: SpectralSpec) -> np.ndarray:
    """Feature vector of one crop×crop RGB uint8 crop: pooled DCT log-spectrum, then the azimuthal profile."""
    gray = crop.astype(np.float32) @ _LUMA / 255.0
    side = spec.crop // spec.dct_pool
    dct = dct_log_spectrum(gray).reshape(side, spec.dct_pool, side, spec.dct_pool).mean(axis=(1, 3)).ravel()
    return np.concatenate([dct, azimuthal_spectrum(gray)]) if spec.azimuthal else dct


def image_features(images: Sequence[np.ndarray], spec: SpectralSpec) -> np.ndarray:
    """(N, dim) features, each the mean over the fixed crops (centre, + corners for 5) of the image at the spec's
    scale (short side resized to spec.resize; with resize None, native resolution, enlarged only when under the
    crop size)."""
    rows = []
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {index}: expected H×W×3 uint8 RGB, got shape {image.shape}, {image.dtype}")
        image = _to_scale(image, spec)
        rows.append(np.mean([crop_features(crop, spec) for crop in fixed_crops(image, spec.crop, spec.num_crops)],
                            axis=0))
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), spec.dim)


def training_views(image: np.ndarray, spec: SpectralSpec, augmentation: AugmentSettings,
                   rng: np.random.Generator) -> np.ndarray:
    """(views, dim) features of randomly cropped, downscaled, JPEG-re-encoded, blurred or noised crops."""
    if spec.resize is not None:
        image = _short_side_at_most(image, 2 * spec.resize)
        return np.asarray([crop_features(_rescaled_view(image, spec, augmentation, rng), spec)
                           for _ in range(augmentation.views)], dtype=np.float32)
    image = _at_least(image, spec.crop)
    rows = []
    for _ in range(augmentation.views):
        crop = augment(image, spec.crop, rng, augmentation)
        rows.append(crop_features(_blur_and_noise(crop, augmentation, rng), spec))
    return np.asarray(rows, dtype=np.float32)


def _rescaled_view(image: np.ndarray, spec: SpectralSpec, augmentation: AugmentSettings,
                   rng: np.random.Generator) -> np.ndarray:
    """Whole image downscaled at random, maybe JPEG-re-encoded, then put at the spec's scale and cropped."""
    factor = rng.uniform(*augmentation.scale)
    if min(image.shape[:2]) * factor >= 64:
        image = downscale(image, factor)
    if rng.random() < augmentation.jpeg_prob:
        image = jpeg_reencode(image, int(rng.integers(augmentation.jpeg_quality[0], augmentation.jpeg_quality[1] + 1)))
    image = _to_scale(image, spec)
    top = int(rng.integers(0, image.shape[0] - spec.crop + 1))
    left = int(rng.integers(0, image.shape[1] - spec.crop + 1))
    crop = image[top:top + spec.crop, left:left + spec.crop]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return _blur_and_noise(np.ascontiguousarray(crop), augmentation, rng)


def _blur_and_noise(crop: np.ndarray, augmentation: AugmentSettings, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < augmentation.blur_prob:
        radius = rng.uniform(*augmentation.blur_sigma)
        crop = np.asarray(Image.fromarray(crop).filter(ImageFilter.GaussianBlur(radius)))
    if rng.random() < augmentation.noise_prob:
        noise = rng.normal(0.0, rng.uniform(*augmentation.noise_sigma), crop.shape)
        crop = np.clip(crop + noise, 0, 255).astype(np.uint8)
    return crop


MIN_TEST_SIDE = 64
"""A 0.5× downscale never goes below the 64-pixel side that core.images accepts for an upload."""
TEST_CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda pixels: pixels,
    "jpeg75": lambda pixels: jpeg_reencode(pixels, 75),
    "half": lambda pixels: downscale(pixels, max(0.5, MIN_TEST_SIDE / min(pixels.shape[:2]))),
}


@dataclass
class LinearHead:
    """StandardScaler + LogisticRegression as plain arrays, so it saves to npz and predicts without sklearn."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str], C: float) -> LinearHead:
        """Fit with class-balanced weights (the face set is very unbalanced) and copy the arrays out."""
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
        model.fit(features, np.asarray(labels))
        scaler, linear = model[0], model[1]
        return cls(scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32),
                   linear.coef_.astype(np.float32), linear.intercept_.astype(np.float32),
                   tuple(str(c) for c in linear.classes_))

    def proba(self, features: np.ndarray) -> np.ndarray:
        """(N, K) class probabilities; a binary head's single logit is the score of classes[1]."""
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        if len(self.classes) == 2:
            positive = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - positive, positive], axis=1)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_{name}": getattr(self, name) for name in ("mean", "scale", "coef", "intercept")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str, classes: Sequence[str]) -> LinearHead:
        return cls(*(np.asarray(arrays[f"{prefix}_{name}"], dtype=np.float32)
                     for name in ("mean", "scale", "coef", "intercept")), tuple(classes))


class SpectralDetector:
    """P(fake) and P(progan | stylegan2 | stylegan3) from the DCT log-spectrum of the image at one content scale.

    Two linear heads, exposed as two estimators: `detector` (real vs fake, its held-out threshold applied inside)
    and `attributor` (P(architecture | fake); None when the artifact has no attribution head). The model itself is
    the estimator the pipeline reads: classes_ ("real", *architectures) (or ("real", "fake") without an
    attribution head), P(fake) shared out by P(architecture | fake).
    """

    def __init__(self, spec: SpectralSpec, binary: LinearHead, attribution_head: LinearHead | None,
                 threshold: float = 0.5, metadata: dict | None = None):
        self.spec = spec
        self.binary = binary
        self.attribution_head = attribution_head
        self.threshold = threshold
        self.metadata = metadata or {}
        self.skill: dict | None = None
        self.ood: dict | None = None

    @classmethod
    def fit_features(cls, views: np.ndarray, labels: Sequence[str], spec: SpectralSpec, C: float = 0.1,
                     attribution_classes: Sequence[str] = KNOWN_GANS) -> SpectralDetector:
        """Fit both heads from (N, views, dim) training features; labels are class names per image."""
        labels = np.asarray(labels)
        flat = views.reshape(-1, views.shape[-1])
        repeated = np.repeat(labels, views.shape[1])
        binary = LinearHead.fit(flat, np.where(repeated == REAL, REAL, "fake"), C)
        known = np.isin(repeated, attribution_classes)
        attribution = None
        if len(set(repeated[known].tolist())) == len(attribution_classes):
            attribution = LinearHead.fit(flat[known], repeated[known], C)
        return cls(spec, binary, attribution)

    @classmethod
    def random_init(cls, spec: SpectralSpec | None = None, seed: int = 0) -> SpectralDetector:
        """Both heads with random weights on the spec's features (`SpectralSpec.tiny()` for tests that need the
        code path, not the skill)."""
        spec = spec or SpectralSpec()
        rng = np.random.default_rng(seed)

        def head(classes: tuple[str, ...]) -> LinearHead:
            rows = 1 if len(classes) == 2 else len(classes)
            return LinearHead(np.zeros(spec.dim, np.float32), np.ones(spec.dim, np.float32),
                              rng.normal(0, 0.1, (rows, spec.dim)).astype(np.float32),
                              np.zeros(rows, np.float32), classes)

        return cls(spec, head(("fake", REAL)), head(KNOWN_GANS))

    @property
    def classes_(self) -> tuple[str, ...]:
        return (REAL, *self.attribution_classes) if self.attribution_head is not None else (REAL, "fake")

    @property
    def detector(self) -> HeadEstimator:
        """Real vs fake: classes_ ("real", "fake"), P(fake) re-centred on the held-out threshold (0.5 is its own
        decision point)."""
        return HeadEstimator((REAL, "fake"), lambda images: shared_out(self._fake(self.features(images)), None))

    @property
    def attributor(self) -> HeadEstimator | None:
        """Which architecture, given fake: classes_ attribution_classes, P(architecture | fake); None without an
        attribution head."""
        if self.attribution_head is None:
            return None
        return HeadEstimator(self.attribution_classes, lambda images: self.attribution_head.proba(self.features(images)))

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, spec.dim) features of RGB uint8 images: what both heads and the out-of-distribution signal read."""
        return image_features(images, self.spec)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, len(classes_)) float64: P(real), then the detector's P(fake) shared out by the attributor's
        P(architecture | fake)."""
        return self.predict_proba_features(self.features(images))

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        """`predict_proba` from precomputed `features`, for callers that also read the out-of-distribution signal."""
        fake, architectures = self.head_probabilities(features)
        return shared_out(recentred(fake, self.threshold), architectures)

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """The most probable member of `classes_` per image."""
        return most_probable(self.classes_, self.predict_proba(images))

    def head_probabilities(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The two heads as fitted, before the held-out threshold: (N,) P(fake) and (N, 3) P(architecture) (None
        without an attribution head), from precomputed features (what held-out evaluation scores)."""
        binary = self.binary.proba(features)
        fake = binary[:, self.binary.classes.index("fake")]
        return fake, (self.attribution_head.proba(features) if self.attribution_head is not None else None)

    def _fake(self, features: np.ndarray) -> np.ndarray:
        return recentred(self.head_probabilities(features)[0], self.threshold)

    def out_of_distribution(self, images: Sequence[np.ndarray]) -> list[str | None]:
        """Per image, why its spectrum lies outside the training data (a sentence), or None when it does not or
        the artifact carries no `ood` record."""
        return self.out_of_distribution_features(self.features(images))

    def out_of_distribution_features(self, features: np.ndarray) -> list[str | None]:
        """`out_of_distribution` from precomputed features, for callers that also predict from them."""
        if self.ood is None:
            return [None] * len(features)
        threshold, quantile = float(self.ood["threshold"]), float(self.ood["quantile"])
        return [f"its DCT spectrum is farther from the training images than {quantile:.0%} of them "
                f"(RMS z {value:.1f} > {threshold:.1f})" if value > threshold else None
                for value in standardised_rms(features, self.binary.mean, self.binary.scale)]

    @property
    def attribution_classes(self) -> tuple[str, ...]:
        return self.attribution_head.classes if self.attribution_head is not None else ()

    def save(self, path: Path, skill: dict | None = None, metadata: dict | None = None) -> None:
        """Write the arrays to <path>.npz and the spec, classes, threshold, skill and metadata to <path>.json."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = self.binary.arrays("binary")
        if self.attribution_head is not None:
            arrays.update(self.attribution_head.arrays("attribution"))
        np.savez_compressed(path, **arrays)
        document = {"format": FILE_FORMAT, "version": FILE_VERSION, "spec": asdict(self.spec),
                    "binary_classes": list(self.binary.classes), "attribution_classes": list(self.attribution_classes),
                    "threshold": self.threshold, "skill": skill, "metadata": metadata or {}}
        if self.ood is not None:
            document["ood"] = self.ood
        path.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, download: bool = False) -> SpectralDetector:
        """<path>.npz + <path>.json written by `save`, by registry name (verified) or path (no pickle: np.load
        with allow_pickle=False)."""
        path = resolve_name_or_path(name_or_path, download)
        path, document = read_artifact_pair(path, ".npz", FILE_FORMAT, FILE_VERSION, "a spectral artifact")
        spec = SpectralSpec(**{**document["spec"], "crop": int(document["spec"]["crop"])})
        with np.load(path, allow_pickle=False) as stored:
            arrays = dict(stored)
        binary = LinearHead.from_arrays(arrays, "binary", document["binary_classes"])
        attribution = (LinearHead.from_arrays(arrays, "attribution", document["attribution_classes"])
                       if document["attribution_classes"] else None)
        if binary.mean.shape != (spec.dim,):
            raise ValueError(f"{path}: weights have {binary.mean.shape[0]} features, the spec needs {spec.dim}")
        detector = cls(spec, binary, attribution, float(document["threshold"]), document.get("metadata"))
        detector.skill = document.get("skill")
        detector.ood = document.get("ood")
        return detector


def holdout_predictions(views: np.ndarray, tests: dict[str, np.ndarray], labels: Sequence[str],
                        sources: Sequence[str], spec: SpectralSpec, C: float,
                        folds=None) -> HeldOutPredictions:
    """Leave-one-source-out predictions of the spectral detector from cached training and test features."""

    def fit(train: np.ndarray) -> SpectralDetector:
        return SpectralDetector.fit_features(views[train], np.asarray(labels)[train], spec, C)

    def score(model: SpectralDetector, test: np.ndarray, condition: str) -> Scores:
        return Scores(*model.head_probabilities(tests[condition][test]))

    return leave_one_source_out(labels, sources, fit, score, conditions=tuple(tests), folds=folds)


def holdout_ood(views: np.ndarray, tests: dict[str, np.ndarray], labels: Sequence[str], sources: Sequence[str],
                quantile: float = OOD_QUANTILE, folds=None) -> dict:
    """How often the out-of-distribution signal fires on each held-out source, per test condition.

    Per fold the scaler and the threshold come from the other sources' training views only (as the shipped
    artifact's come from every source), then the held-out source's test features are flagged or not. A source
    holding several kinds of image (real, known GAN, other generator) gives one row per kind; a group's rate is
    the mean over its rows, so each source weighs the same.
    """
    labels, sources = np.asarray(labels), np.asarray(sources)
    groups = np.where(labels == REAL, "real", np.where(np.isin(labels, KNOWN_GANS), "known_gan", "other_gan_diffusion"))
    rows = []
    for source, train, test in folds if folds is not None else source_folds(sources):
        scaler = StandardScaler().fit(views[train].reshape(-1, views.shape[-1]))
        threshold = ood_threshold(views[train], scaler.mean_, scaler.scale_, quantile)
        for group in OOD_GROUPS:
            members = test[groups[test] == group]
            if len(members):
                rows.append({"source": source, "group": group, "n": int(len(members)), "threshold": threshold,
                             "rate": {name: float(np.mean(standardised_rms(features[members], scaler.mean_,
                                                                           scaler.scale_) > threshold))
                                      for name, features in tests.items()}})
    summary = {name: {group: float(np.mean([r["rate"][name] for r in rows if r["group"] == group]))
                      for group in OOD_GROUPS if any(r["group"] == group for r in rows)} for name in tests}
    return {"quantile": quantile, "rows": rows, "summary": summary,
            "sources": {group: sum(r["group"] == group for r in rows) for group in OOD_GROUPS}}


def ood_record(views: np.ndarray, head: LinearHead, holdout: dict, quantile: float = OOD_QUANTILE) -> dict:
    """The artifact's `ood` block: the threshold from every training view under the shipped scaler, and how often
    the same rule fired on held-out sources (`holdout_ood`), per group and test condition."""
    return {"statistic": OOD_STATISTIC, "quantile": quantile,
            "threshold": ood_threshold(views, head.mean, head.scale, quantile),
            "fitted_on": f"{views.shape[0] * views.shape[1]} training views under the real-vs-fake head's scaler",
            "holdout": {"protocol": "leave-one-source-out", "sources": holdout["sources"],
                        **{"firing_rate" + ("" if name == "clean" else f"_{name}"): rates
                           for name, rates in holdout["summary"].items()}}}


def dataset_features(paths: Sequence[Path], spec: SpectralSpec, augmentation: AugmentSettings, seed: int = 0,
                     cache: Path | None = None, progress: Callable = iter) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Training views (N, views, dim) and test features per TEST_CONDITIONS entry, each image decoded once.

    With `cache` (an .npz path), a finished extraction with the same spec, augmentation, seed and file list
    (class folder + name) is reused; the key lives inside the file, so a changed setting recomputes instead of
    reading stale features.
    """
    key = json.dumps({"spec": asdict(spec), "augmentation": asdict(augmentation), "seed": seed,
                      "files": [f"{Path(p).parent.name}/{Path(p).name}" for p in paths]}, sort_keys=True)
    if cache is not None and Path(cache).is_file():
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) == key:
                return stored["views"], {name: stored[f"test_{name}"] for name in TEST_CONDITIONS}
    views = np.zeros((len(paths), augmentation.views, spec.dim), np.float32)
    tests = {name: np.zeros((len(paths), spec.dim), np.float32) for name in TEST_CONDITIONS}
    for index in progress(range(len(paths))):
        pixels = load_image(paths[index]).pixels
        views[index] = training_views(pixels, spec, augmentation, np.random.default_rng([seed, index]))
        for name, perturb in TEST_CONDITIONS.items():
            tests[name][index] = image_features([perturb(pixels)], spec)[0]
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        partial = Path(cache).with_suffix(".partial")
        with open(partial, "wb") as handle:
            np.savez(handle, key=np.array(key), views=views, **{f"test_{n}": value for n, value in tests.items()})
        partial.replace(cache)
    return views, tests


def _short_side_at_most(image: np.ndarray, side: int) -> np.ndarray:
    """Shrink once to a short side of `side`: JPEG traces made above twice the final scale mostly vanish in the
    final resize anyway, and re-encoding a 1024-pixel image for every view costs 10× more."""
    shortest = min(image.shape[:2])
    return image if shortest <= side else downscale(image, side / shortest, Image.Resampling.LANCZOS)


def _to_scale(image: np.ndarray, spec: SpectralSpec) -> np.ndarray:
    """The image with its short side at spec.resize (anti-aliased), or at least spec.crop when resize is None."""
    if spec.resize is None:
        return _at_least(image, spec.crop)
    height, width = image.shape[:2]
    factor = spec.resize / min(height, width)
    size = (max(spec.resize, round(width * factor)), max(spec.resize, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _at_least(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    if min(height, width) >= side:
        return image
    factor = side / min(height, width)
    size = (max(side, round(width * factor)), max(side, round(height * factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))
