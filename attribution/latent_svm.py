"""Which GAN made a face, from its e4e W+ latent: a calibrated linear SVM with an open-set "unknown" answer.

The method is GANOrigin's (a linear SVM on flattened W+), with its defects fixed (../shared/specs/ganorigin_review.md):
- probabilities come from `CalibratedClassifierCV(LinearSVC, method="sigmoid")` inside a scikit-learn Pipeline
  after a StandardScaler, not from `SVC(probability=True)` (slow on 9,216-d data, and its internal Platt CV
  ignores groups);
- every split respects groups: a face and its resolution-augmented copies are never on both sides of the
  train/validation split nor of a calibration fold, which would leak and make probabilities overconfident;
- open set (D8): the answer is "unknown" when the calibrated top probability is under a threshold chosen on the
  validation split, or when the latent is farther from every known class than almost all validation latents
  (details in `LatentAttributor`);
- inference is deterministic: no augmentation at predict time (D3);
- the artifact is a joblib file that records what features it expects (latent shape, whether latent_avg was
  added, encoder sha256) and refuses to load files GANTrace did not write (S4; see `LatentAttributor.load`).
"""

from __future__ import annotations

import os
import platform
import tempfile
import warnings
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

from attribution.report import classification_metrics
from core.weights import sha256_file

ARTIFACT_FORMAT = "gantrace-latent-svm"
ARTIFACT_VERSION = 1
UNKNOWN = "unknown"


class ForeignArtifactError(RuntimeError):
    """A pickle/joblib file that GANTrace did not write (or that changed since): loading it would run its code."""


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
        self.classes_ = self.pipeline_.classes_
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
        self.metadata = {
            "classes": self.classes_.tolist(),
            "feature_spec": {"latent_shape": list(self.latent_shape_), "latent_dtype": self.latent_dtype_,
                             "flatten": "row-major (style row 0's values first)", **(feature_spec or {})},
            "settings": self.get_params(),
            "data": _data_summary(labels, groups, train, validation),
            "validation": classification_metrics(labels[validation], probabilities, self.classes_),
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
            "calibration": {"method": "sigmoid", "folds": self.calibration_folds,
                            "splitter": "StratifiedGroupKFold on the training split", "ensemble": True},
            "versions": _versions(),
        }
        return self

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K), columns in `classes_` order; closed-set (they sum to 1)."""
        return self.pipeline_.predict_proba(self._features(latents))

    def open_set_scores(self, latents: np.ndarray) -> dict[str, np.ndarray]:
        """The evidence behind each open-set decision: probabilities, top probability, distance, unknown flag."""
        features = self._features(latents)
        probabilities = self.pipeline_.predict_proba(features)
        top = probabilities.max(axis=1)
        distance = self._distance(features)
        unknown = (top < self.probability_threshold_) | (distance > self.distance_threshold_)
        return {"probabilities": probabilities, "top_probability": top, "distance": distance, "unknown": unknown}

    def predict(self, latents: np.ndarray) -> list[str]:
        """The most probable class, or "unknown" by the open-set rule."""
        return self.predict_with_proba(latents)[1]

    def predict_with_proba(self, latents: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Probabilities and open-set labels from one pass, for callers that report both."""
        scores = self.open_set_scores(latents)
        best = self.classes_[scores["probabilities"].argmax(axis=1)]
        labels = [UNKNOWN if unknown else str(name) for name, unknown in zip(best, scores["unknown"])]
        return scores["probabilities"], labels

    def save(self, path: Path) -> str:
        """Write one joblib file (pipeline + open-set rule + metadata) and `<path>.sha256`; return the sha256."""
        path = Path(path)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".partial-{path.name}.")
        os.close(handle)
        try:
            joblib.dump(payload, temp_name)
            os.chmod(temp_name, 0o644)
            digest = sha256_file(Path(temp_name))
            os.replace(temp_name, path)
        finally:
            Path(temp_name).unlink(missing_ok=True)
        _sidecar(path).write_text(f"{digest}  {path.name}\n", encoding="utf-8")
        return digest

    @classmethod
    def load(cls, path: Path, trust_foreign: bool = False, expected_sha256: str | None = None) -> LatentAttributor:
        """Load an artifact written by `save`, refusing files GANTrace did not write unless told to trust them.

        joblib files are pickles: loading one executes whatever code its author put in it, and the check that the
        file is ours can only happen before unpickling. So, before anything is unpickled, the file's sha256 must
        equal `expected_sha256` (e.g. a pin from artifacts/weights.json) or, when none is given, the sha256 in the
        `<path>.sha256` sidecar that `save` writes. A file with neither (GANOrigin's pickles, a download, a file
        edited since it was saved) is refused unless `trust_foreign=True`. The sidecar catches mistakes and
        tampering with the file alone; it is not a signature (whoever can replace both files can forge it), so
        only load artifacts this project wrote or the registry pins. After loading, the payload must carry the
        GANTrace format marker. A scikit-learn version different from the one that trained the model gives a
        warning: probabilities may change, retrain with scripts/train_svm.py.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such latent-SVM artifact")
        _check_provenance(path, trust_foreign, expected_sha256)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InconsistentVersionWarning)
            payload = joblib.load(path)
        if not isinstance(payload, dict) or payload.get("format") != ARTIFACT_FORMAT:
            raise ForeignArtifactError(f"{path}: not a GANTrace latent-SVM artifact (no '{ARTIFACT_FORMAT}' marker)")
        if payload.get("format_version") != ARTIFACT_VERSION:
            raise ValueError(f"{path}: artifact format version {payload.get('format_version')}, this code reads "
                             f"{ARTIFACT_VERSION}; retrain with scripts/train_svm.py")
        trained_with = payload["metadata"]["versions"]["sklearn"]
        if trained_with != sklearn.__version__:
            warnings.warn(f"{path}: trained with scikit-learn {trained_with}, running {sklearn.__version__}; "
                          "probabilities may differ, retrain with scripts/train_svm.py", UserWarning, stacklevel=2)
        model = cls(**payload["params"])
        model.pipeline_ = payload["pipeline"]
        model.classes_ = model.pipeline_.classes_
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
        return flat.astype(self.latent_dtype_).astype(np.float32)

    def _distance(self, features: np.ndarray) -> np.ndarray:
        scaled = self.pipeline_.named_steps["scale"].transform(features)
        squared = np.stack([((scaled - mean) ** 2).mean(axis=1) for mean in self.class_means_], axis=1)
        return np.sqrt(squared.min(axis=1))


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
            "with LatentAttributor.load(path, trust_foreign=True).save(new_path)")
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
            "python": platform.python_version()}
