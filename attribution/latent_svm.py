"""Which GAN made a face, from its e4e W+ latent: a calibrated linear SVM with an open-set "unknown" answer.

The method is GANOrigin's (a linear SVM on flattened W+), with the defects of its published code fixed:
- probabilities come from `CalibratedClassifierCV(LinearSVC, method="sigmoid")` inside a scikit-learn Pipeline
  after a StandardScaler, not from `SVC(probability=True)` (slow on 9,216-d data, and its internal Platt CV
  ignores groups);
- every split respects groups: a face and its resolution-augmented copies are never on both sides of the
  train/validation split nor of a calibration fold, which would leak and make probabilities overconfident;
- open set: `attribution.open_set.open_set_labels` answers "unknown" (never `predict`, whose answers are members of
  `classes_`) when the calibrated top probability is under a threshold chosen on the
  validation split, or when the latent is farther from every known class than almost all validation latents
  (details in `LatentAttributor`);
- inference is deterministic: no augmentation at predict time (GANOrigin resizes at random when predicting);
- the artifact records what features it expects (latent shape, whether latent_avg was added, encoder sha256) and
  cannot run code when loaded: it is a `skops.io` file read with an explicit list of trusted types, so it can
  be shared; older joblib artifacts still load under their checksum rule (see `LatentAttributor.from_pretrained`).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import warnings
import zipfile
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from core.atomic import atomic_path, write_text_atomic
from core.metrics import classification_metrics
from core.probability import most_probable
from core.weights import (HUB_URI_PREFIX, WeightSpec, parse_hub_uri, registry_default, resolve, resolve_hub_uri,
                          resolve_name_or_path, sha256_file)

DEFAULT_ATTRIBUTOR = "ganorigin-svm"
HUB_FILENAME = "latent_svm.skops"
ARTIFACT_FORMAT = "gantrace-latent-svm"
ARTIFACT_VERSION = 1
SKOPS_VERSION = 2
UNKNOWN = "unknown"

# Every type a GANTrace .skops attributor may hold, and nothing else: the payload's containers, numpy arrays and
# scalars, and the estimators of our two pipelines (StandardScaler -> CalibratedClassifierCV(LinearSVC) trained
# here; StandardScaler -> SVC converted from GANOrigin). A file holding any other type is refused before skops
# builds a single object, even a type skops itself would trust.
TRUSTED_TYPES = frozenset({
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
    "builtins.bool", "builtins.NoneType",
    "numpy.ndarray", "numpy.dtype", "numpy.float16", "numpy.float32", "numpy.float64", "numpy.int32",
    "numpy.int64", "numpy.str_", "numpy.bool_",
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.svm._classes.LinearSVC", "sklearn.svm._classes.SVC",
})


class ForeignArtifactError(RuntimeError):
    """A pickle/joblib file that GANTrace did not write (or that changed since): loading it would run its code."""


def default_attributor_name() -> str:
    """The registry name of the attributor used when none is given: the registry's `defaults.attributor` (a
    published Space's registry names the .skops file staged with it), else GANOrigin's converted classifier."""
    return registry_default("attributor") or DEFAULT_ATTRIBUTOR


def default_attributor_path(registry: dict[str, WeightSpec] | None = None) -> Path:
    """The attributor used when none is given (`default_attributor_name`), e.g. GANOrigin's classifier once
    converted with the user's consent.

    Never downloads or converts (that needs `download_weights.py --name ganorigin-svm --trust-foreign-pickle`);
    until then it raises WeightUnavailableError whose message carries that command."""
    return resolve(default_attributor_name(), download=False, registry=registry)


def resolve_attributor(source: str | Path | None, download: bool = True) -> Path:
    """The attributor file an --attribution value names: a path, hf://OWNER/NAME[/FILE][@REVISION] (downloaded
    through huggingface_hub, .skops only: a pickle from the Hub would run code), or None for the default."""
    if source is None:
        return default_attributor_path()
    if not str(source).startswith(HUB_URI_PREFIX):
        return Path(source)
    _, filename, _ = parse_hub_uri(str(source), HUB_FILENAME)
    if not filename.endswith(".skops"):
        raise ForeignArtifactError(f"{source}: only .skops attributors are loaded from the Hub, not {filename}")
    return resolve_hub_uri(str(source), HUB_FILENAME, download=download)


def group_validation_split(labels: np.ndarray, groups: np.ndarray, validation_fraction: float,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation), stratified by label, with every group wholly on one side."""
    n_splits = max(2, round(1.0 / validation_fraction))
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"only {len(np.unique(groups))} groups (source images): need at least {n_splits} for a "
                         f"validation fraction of {validation_fraction}")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        train, validation = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return train, validation


def group_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group k-fold splits as a list, usable as `cv=` by any sklearn estimator or scorer."""
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(f"only {n_groups} groups (source images) for {n_splits} folds; use fewer folds")
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(splitter.split(np.zeros(len(labels)), labels, groups))


def build_svm_pipeline(C: float, calibration_cv: Any, max_iter: int, seed: int,
                       class_weight: str | None = "balanced") -> Pipeline:
    """StandardScaler -> LinearSVC wrapped in sigmoid (Platt) calibration over the given (group-aware) folds."""
    svm = LinearSVC(C=C, class_weight=class_weight, max_iter=max_iter, random_state=seed)
    return Pipeline([
        ("scale", StandardScaler()),
        ("svm", CalibratedClassifierCV(svm, method="sigmoid", cv=calibration_cv, ensemble=True)),
    ])


class LatentAttributor(BaseEstimator):
    """Calibrated linear SVM over flattened W+ latents, answering a known class or "unknown".

    `fit(latents, labels, groups)` holds out `validation_fraction` of the groups (stratified by class), fits the
    pipeline on the rest with `calibration_folds` group-aware calibration folds, then sets the open-set rule on
    the held-out validation latents (all of them from known classes):

    - probability floor: the `1 - coverage` quantile of the top calibrated probability, so `coverage` (95%) of
      known-class validation latents clear it;
    - distance ceiling: the distance of a latent to its nearest class mean, measured in the scaler's standardised
      space as the root-mean-square over features (a Mahalanobis distance with the diagonal covariance of the
      training set; a full covariance cannot be estimated from a few thousand 9,216-d samples); the ceiling is the
      `distance_quantile` (99%) quantile over validation latents. It catches what the SVM alone cannot: a latent
      far from every class still lands confidently on one side of a linear boundary.

    A latent is "unknown" when it is under the floor or over the ceiling. The rates at which each rule and both
    together reject known-class validation latents are in `metadata["open_set"]`. The model is not refitted on the
    validation part, so the thresholds and the validation metrics describe exactly the saved model; after `fit`,
    `validation_index_` holds the held-out rows (for reports; not saved).

    `class_weight="balanced"` (the default) weighs classes inversely to their size, so a class with fewer source
    images is not sacrificed to the largest one (None: every latent counts the same).

    Inputs are (N, styles, dim) or (N, styles*dim) arrays, flattened row-major. At predict time they are rounded
    to the dtype the training latents were stored in (float16 by default), so training and serving see equally
    quantised features.
    """

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced", calibration_folds: int = 5,
                 validation_fraction: float = 0.2, coverage: float = 0.95, distance_quantile: float = 0.99,
                 max_iter: int = 10000, random_state: int = 0):
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds
        self.validation_fraction = validation_fraction
        self.coverage = coverage
        self.distance_quantile = distance_quantile
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, latents: np.ndarray, labels: np.ndarray, groups: np.ndarray,
            feature_spec: dict[str, Any] | None = None) -> LatentAttributor:
        """Fit on latents with class labels and group ids; `feature_spec` (latent_avg convention, encoder sha256,
        ...) is stored in the metadata so that whoever loads the model encodes faces the same way."""
        latents = np.asarray(latents)
        labels = np.asarray(labels).astype(str)
        groups = np.asarray(groups)
        if not len(latents) == len(labels) == len(groups):
            raise ValueError(f"latents ({len(latents)}), labels ({len(labels)}) and groups ({len(groups)}) "
                             "must have the same length")
        classes = np.unique(labels)
        if len(classes) < 2:
            raise ValueError(f"need at least two classes to attribute, got {classes.tolist()}")
        if UNKNOWN in classes:
            raise ValueError(f"'{UNKNOWN}' is the open-set answer and cannot be a training class")
        self.latent_shape_ = tuple(int(n) for n in latents.shape[1:])
        self.latent_dtype_ = np.dtype(latents.dtype).name
        self.n_features_in_ = int(np.prod(self.latent_shape_))
        features = self._features(latents)

        train, validation = group_validation_split(labels, groups, self.validation_fraction, self.random_state)
        missing = sorted(set(classes) - set(labels[train]))
        if missing:
            raise ValueError(f"classes {missing} have too few groups to appear in the training split")
        calibration_cv = group_folds(labels[train], groups[train], self.calibration_folds, self.random_state)
        self.pipeline_ = build_svm_pipeline(self.C, calibration_cv, self.max_iter, self.random_state,
                                            self.class_weight)
        self.pipeline_.fit(features[train], labels[train])
        self.classes_ = tuple(str(name) for name in self.pipeline_.classes_)
        scaled = self.pipeline_.named_steps["scale"].transform(features[train])
        self.class_means_ = np.stack([scaled[labels[train] == name].mean(axis=0) for name in self.classes_])

        probabilities = self.pipeline_.predict_proba(features[validation])
        top = probabilities.max(axis=1)
        distance = self._distance(features[validation])
        self.probability_threshold_ = float(np.quantile(top, 1.0 - self.coverage, method="lower"))
        self.distance_threshold_ = float(np.quantile(distance, self.distance_quantile, method="higher"))
        self.validation_index_ = validation

        under = top < self.probability_threshold_
        over = distance > self.distance_threshold_
        validation_metrics = classification_metrics(labels[validation], probabilities, self.classes_)
        self.metadata = {
            "classes": list(self.classes_),
            "feature_spec": {"latent_shape": list(self.latent_shape_), "latent_dtype": self.latent_dtype_,
                             "flatten": "row-major (style row 0's values first)", **(feature_spec or {})},
            "settings": self.get_params(),
            "data": _data_summary(labels, groups, train, validation),
            "validation": validation_metrics,
            "open_set": {
                "rule": (f"'{UNKNOWN}' when the top calibrated probability < {self.probability_threshold_:.4f} "
                         f"(the {1 - self.coverage:.0%} quantile of known-class validation latents) or the RMS "
                         f"standardised distance to the nearest class mean > {self.distance_threshold_:.4f} (the "
                         f"{self.distance_quantile:.0%} quantile)"),
                "probability_threshold": self.probability_threshold_,
                "distance_threshold": self.distance_threshold_,
                "validation_rejected_by_probability": float(under.mean()),
                "validation_rejected_by_distance": float(over.mean()),
                "validation_rejected": float((under | over).mean()),
            },
            "skill": {"attribution": {
                "accuracy": validation_metrics["accuracy"],
                "balanced_accuracy": validation_metrics["balanced_accuracy"], "n": validation_metrics["n"],
                "protocol": "held-out groups (source images) of the training sources, closed set; not "
                            "leave-one-source-out, so an upper bound for unseen sources"}},
            "calibration": {"method": "sigmoid", "folds": self.calibration_folds,
                            "splitter": "StratifiedGroupKFold on the training split", "ensemble": True},
            "versions": _versions(),
        }
        return self

    @property
    def latent_avg_added(self) -> bool:
        """Whether the features are e4e's final W+ (offsets + latent_avg) or the raw offsets: encode to match."""
        return bool(self.metadata["feature_spec"].get("latent_avg_added", True))

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K), columns in `classes_` order; closed-set (they sum to 1)."""
        return self.pipeline_.predict_proba(self._features(latents))

    def open_set_scores(self, latents: np.ndarray) -> dict[str, np.ndarray]:
        """The evidence behind each open-set decision (`open_set.open_set_labels`): probabilities, top probability,
        distance, unknown flag."""
        features = self._features(latents)
        probabilities = self.pipeline_.predict_proba(features)
        top = probabilities.max(axis=1)
        distance = self._distance(features)
        unknown = (top < self.probability_threshold_) | (distance > self.distance_threshold_)
        return {"probabilities": probabilities, "top_probability": top, "distance": distance, "unknown": unknown}

    @property
    def origin(self) -> str:
        """Where this attributor's model came from, in one line, for verdicts and the app's status panel."""
        source = self.metadata.get("source")
        if source:
            return f"{source['name']}; from {source['origin']}; {self.metadata['open_set']['rule']}"
        data = self.metadata.get("data", {})
        return (f"trained by GANTrace (scripts/train_svm.py) on {data.get('rows')} latents of "
                f"{', '.join(self.metadata['classes'])}; open set")

    def predict(self, latents: np.ndarray) -> list[str]:
        """The most probable member of `classes_` per latent (closed set: `open_set.open_set_labels` says
        "unknown")."""
        return most_probable(self.classes_, self.predict_proba(latents))

    @classmethod
    def random_init(cls, latent_shape: tuple[int, ...] = (18, 512), seed: int = 0,
                    classes: tuple[str, ...] = ("progan", "stylegan2", "stylegan3")) -> LatentAttributor:
        """An attributor fitted on random normal latents of `latent_shape` (20 per class, drawn from `seed`): the
        real attribution code on meaningless data, for tests and benchmarks (an SVM has no untrained state to
        predict from)."""
        labels = np.repeat(list(classes), 20)
        latents = np.random.default_rng(seed).normal(size=(len(labels), *latent_shape)).astype(np.float32)
        return cls(calibration_folds=2).fit(latents, labels, np.arange(len(labels)))

    @classmethod
    def from_fitted(cls, pipeline: Pipeline, classes: list[str], latent_shape: tuple[int, ...], latent_dtype: str,
                    metadata: dict[str, Any]) -> LatentAttributor:
        """A closed-set attributor around a pipeline fitted elsewhere (GANOrigin's), so it is saved, loaded and
        run exactly like one trained here; with no validation latents there is no open-set rule to set."""
        model = cls()
        model.pipeline_ = pipeline
        model.classes_ = tuple(str(name) for name in classes)
        model.latent_shape_ = tuple(int(n) for n in latent_shape)
        model.latent_dtype_ = np.dtype(latent_dtype).name
        model.n_features_in_ = int(np.prod(model.latent_shape_))
        model.class_means_ = None
        model.probability_threshold_ = 0.0
        model.distance_threshold_ = math.inf
        model.metadata = {"classes": list(classes), "open_set": {"rule": "none (closed set)"}, "versions": _versions(),
                          **metadata}
        return model

    def save(self, path: Path) -> str:
        """Write the artifact and return its sha256: a `.skops` file (pipeline, open-set rule and metadata in one
        file that runs no code when loaded: the format to share), or, for a `.joblib` path, the legacy pickle plus
        its `<path>.sha256` sidecar, for GANTrace versions that read only that."""
        path = Path(path)
        if path.suffix not in (".skops", ".joblib"):
            raise ValueError(f"{path}: an attributor is saved as .skops (or legacy .joblib), not {path.suffix!r}")
        payload = {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_VERSION,
            "params": self.get_params(),
            "pipeline": self.pipeline_,
            "latent_shape": self.latent_shape_,
            "latent_dtype": self.latent_dtype_,
            "class_means": self.class_means_,
            "probability_threshold": self.probability_threshold_,
            "distance_threshold": self.distance_threshold_,
            "metadata": self.metadata,
        }
        if path.suffix == ".skops":
            import skops.io  # here, not at the top: importing skops imports every scikit-learn estimator (seconds)

            payload.update(format_version=SKOPS_VERSION, classes=[str(name) for name in self.classes_])
            with atomic_path(path) as temp:
                skops.io.dump(payload, temp)
                return sha256_file(temp)
        with atomic_path(path) as temp:
            joblib.dump(payload, temp)
            digest = sha256_file(temp)
        write_text_atomic(_sidecar(path), f"{digest}  {path.name}\n")
        return digest

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, trust_foreign: bool = False,
                        expected_sha256: str | None = None, download: bool = False) -> LatentAttributor:
        """An artifact written by `save`, by registry name (verified) or path: `.skops` safely by construction,
        legacy `.joblib` under its checksum.

        A `.skops` file is refused, before any object is built, when it holds a type outside `TRUSTED_TYPES`
        (the error names the file and the types); skops then loads it without running code, so a shared or
        downloaded `.skops` attributor is safe to open. `expected_sha256` (a registry pin) is checked when given.

        joblib files are pickles: loading one executes whatever code its author put in it, and the check that the
        file is ours can only happen before unpickling. So, before anything is unpickled, the file's sha256 must
        equal `expected_sha256` (e.g. a pin from artifacts/weights.json) or, when none is given, the sha256 in the
        `<path>.sha256` sidecar that `save` writes. A file with neither (GANOrigin's pickles, a download, a file
        edited since it was saved) is refused unless `trust_foreign=True`. The sidecar catches mistakes and
        tampering with the file alone; it is not a signature (whoever can replace both files can forge it), so
        only load artifacts this project wrote or the registry pins.

        Either way the payload must carry the GANTrace format marker. A scikit-learn version different from the
        one that trained the model gives a warning: probabilities may change, retrain with scripts/train_svm.py.
        """
        path = resolve_name_or_path(name_or_path, download)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such latent-SVM artifact")
        if path.suffix == ".skops":
            payload = _load_skops(path, expected_sha256)
            versions = (SKOPS_VERSION,)
        else:
            _check_provenance(path, trust_foreign, expected_sha256)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", InconsistentVersionWarning)
                payload = joblib.load(path)
            versions = (ARTIFACT_VERSION,)
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            raise ForeignArtifactError(f"{path}: not a GANTrace latent-SVM artifact (no '{ARTIFACT_FORMAT}' marker)")
        if payload.get("format_version") not in versions:
            raise ValueError(f"{path}: artifact format version {payload.get('format_version')}, this code reads "
                             f"{versions[0]} in a {path.suffix} file; retrain with scripts/train_svm.py")
        trained_with = payload["metadata"]["versions"]["sklearn"]
        if trained_with != sklearn.__version__:
            warnings.warn(f"{path}: trained with scikit-learn {trained_with}, running {sklearn.__version__}; "
                          "probabilities may differ, retrain with scripts/train_svm.py", UserWarning, stacklevel=2)
        model = cls(**payload["params"])
        model.pipeline_ = payload["pipeline"]
        model.classes_ = tuple(str(name) for name in payload.get("classes", model.pipeline_.classes_))
        model.latent_shape_ = tuple(payload["latent_shape"])
        model.latent_dtype_ = payload["latent_dtype"]
        model.n_features_in_ = int(np.prod(model.latent_shape_))
        model.class_means_ = payload["class_means"]
        model.probability_threshold_ = payload["probability_threshold"]
        model.distance_threshold_ = payload["distance_threshold"]
        model.metadata = payload["metadata"]
        return model

    def _features(self, latents: np.ndarray) -> np.ndarray:
        latents = np.asarray(latents)
        if latents.ndim < 2 or int(np.prod(latents.shape[1:])) != self.n_features_in_:
            raise ValueError(f"expected latents of shape (N, {', '.join(map(str, self.latent_shape_))}) or "
                             f"(N, {self.n_features_in_}), got {latents.shape}; encode with the encoder the model "
                             "was trained on (see metadata['feature_spec'])")
        flat = latents.reshape(len(latents), self.n_features_in_)
        return flat.astype(self.latent_dtype_).astype(np.result_type(self.latent_dtype_, np.float32))

    def _distance(self, features: np.ndarray) -> np.ndarray:
        if self.class_means_ is None:
            return np.zeros(len(features))
        scaled = self.pipeline_.named_steps["scale"].transform(features)
        squared = np.stack([((scaled - mean) ** 2).mean(axis=1) for mean in self.class_means_], axis=1)
        return np.sqrt(squared.min(axis=1))


def skops_types(path: Path) -> set[str]:
    """Every type named in a skops file's schema ("module.Class"), read as JSON without building any object."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ForeignArtifactError(f"{path}: not a skops file ({err})") from None
    found: set[str] = set()
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _load_skops(path: Path, expected_sha256: str | None) -> Any:
    import skops.io

    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ForeignArtifactError(f"{path}: sha256 {actual} is not the expected {expected_sha256}")
    untrusted = sorted(skops_types(path) - TRUSTED_TYPES)
    if untrusted:
        raise ForeignArtifactError(f"{path}: refusing to load: it holds types GANTrace does not trust: "
                                   f"{', '.join(untrusted)}")
    return skops.io.load(path, trusted=sorted(TRUSTED_TYPES))


def _check_provenance(path: Path, trust_foreign: bool, expected_sha256: str | None) -> None:
    actual = sha256_file(path)
    if expected_sha256 is not None:
        if actual != expected_sha256:
            raise ForeignArtifactError(f"{path}: sha256 {actual} is not the expected {expected_sha256}; refusing to "
                                       "unpickle it (joblib files run code when loaded)")
        return
    if trust_foreign:
        return
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        raise ForeignArtifactError(
            f"{path}: no {sidecar.name} beside it, so GANTrace's scripts/train_svm.py did not write it (or its "
            "checksum sidecar was lost); joblib files are pickles that run code when loaded, so it is refused: "
            "retrain with scripts/train_svm.py, or, only for a file whose source you trust, convert it once in Python "
            "with LatentAttributor.from_pretrained(path, trust_foreign=True).save(new_path)")
    recorded = (sidecar.read_text(encoding="utf-8").split() or [""])[0]
    if recorded != actual:
        raise ForeignArtifactError(f"{path}: sha256 {actual} differs from {recorded or 'nothing'} recorded in "
                                   f"{sidecar.name}: the file changed after GANTrace wrote it; refusing to unpickle "
                                   "it: restore the original file or retrain with scripts/train_svm.py")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _data_summary(labels: np.ndarray, groups: np.ndarray, train: np.ndarray, validation: np.ndarray
                  ) -> dict[str, Any]:
    summary: dict[str, Any] = {"rows": int(len(labels)), "groups": int(len(np.unique(groups))), "per_class": {}}
    for name in np.unique(labels):
        rows = labels == name
        summary["per_class"][str(name)] = {
            "train_rows": int(rows[train].sum()), "validation_rows": int(rows[validation].sum()),
            "train_groups": int(len(np.unique(groups[train][rows[train]]))),
            "validation_groups": int(len(np.unique(groups[validation][rows[validation]]))),
        }
    return summary


def _versions() -> dict[str, str]:
    return {"sklearn": sklearn.__version__, "numpy": np.__version__, "joblib": joblib.__version__,
            "skops": importlib.metadata.version("skops"), "python": platform.python_version()}
