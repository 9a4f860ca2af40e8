"""A linear model over precomputed cue features (face geometry, colour statistics): fitted in seconds, saved as
plain arrays, exposed in the project's sklearn vocabulary.

Why one class for several cues: each cue is only a feature function (detector.face_geometry,
detector.colour_stats); what is learned on top — StandardScaler + class-balanced LogisticRegression for real vs
fake and for progan / stylegan2 / stylegan3 — is the same, and so are saving, loading and the skill record.
`kind` and `feature_version` in the artifact say which feature function the weights expect, and loading refuses
weights made for another version.

Vocabulary (docs/design.md): the model is an estimator over ("real", *architectures) — P(real), then P(fake)
shared out by P(architecture | fake) — with its held-out threshold applied inside; `model.detector` (classes_
("real", "fake")) and `model.attributor` (classes_ = the known GANs, P(architecture | fake)) are its heads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.probability import HeadEstimator, most_probable, recentred, shared_out
from core.source_holdout import KNOWN_GANS, REAL
from detector.artifact_pair import read_artifact_pair
from detector.spectral import LinearHead

FILE_FORMAT = "gantrace-feature-model"
FILE_VERSION = 1
DETECTOR_CLASSES = (REAL, "fake")


class FeatureDetector:
    """Real vs fake over feature rows: classes_ ("real", "fake"), P(fake) re-centred on the held-out `threshold`
    so that 0.5 is its decision point (the identity at 0.5, the threshold of a model still being cross-validated)."""

    classes_ = DETECTOR_CLASSES

    def __init__(self, head: LinearHead, threshold: float = 0.5):
        self.head = head
        self.threshold = threshold

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        fake = self.head.proba(np.asarray(features, dtype=np.float32))[:, self.head.classes.index("fake")]
        fake = recentred(fake, self.threshold)
        return np.stack([1.0 - fake, fake], axis=1)

    def predict(self, features: np.ndarray) -> list[str]:
        return most_probable(self.classes_, self.predict_proba(features))


def feature_attributor(head: LinearHead) -> HeadEstimator:
    """P(architecture | fake) over feature rows: classes_ = the known GANs the head was fitted on."""
    return HeadEstimator(head.classes, lambda features: head.proba(np.asarray(features, dtype=np.float32)))


class FeatureModel:
    """A cue's two linear heads plus what they expect (`kind`, `feature_version`, `feature_names`)."""

    def __init__(self, kind: str, feature_version: str, feature_names: Sequence[str], detector: FeatureDetector,
                 attribution_head: LinearHead | None, skill: dict | None = None, metadata: dict | None = None):
        self.kind = kind
        self.feature_version = feature_version
        self.feature_names = tuple(feature_names)
        self.detector = detector
        self.attribution_head = attribution_head
        self.attributor = feature_attributor(attribution_head) if attribution_head is not None else None
        self.classes_ = (REAL, *(self.attributor.classes_ if self.attributor is not None else ("fake",)))
        self.skill = skill
        self.metadata = metadata or {}

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, len(classes_)): P(real), then the detector's P(fake) shared out by P(architecture | fake)."""
        fake = self.detector.predict_proba(features)[:, 1]
        return shared_out(fake, None if self.attributor is None else self.attributor.predict_proba(features))

    def predict(self, features: np.ndarray) -> list[str]:
        return most_probable(self.classes_, self.predict_proba(features))

    @classmethod
    def fit(cls, kind: str, feature_version: str, feature_names: Sequence[str], features: np.ndarray,
            labels: Sequence[str], C: float = 0.1, attribution_classes: Sequence[str] = KNOWN_GANS) -> FeatureModel:
        """Fit both heads on (N, D) feature rows; every non-real label is "fake" for the detector, and the
        attributor is fitted only when every known GAN is present."""
        features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels)
        if features.shape != (len(labels), len(feature_names)):
            raise ValueError(f"{kind}: features of shape {features.shape} for {len(labels)} labels and "
                             f"{len(feature_names)} feature names")
        detector = FeatureDetector(LinearHead.fit(features, np.where(labels == REAL, REAL, "fake"), C))
        known = np.isin(labels, attribution_classes)
        attributor = None
        if set(labels[known].tolist()) == set(attribution_classes):
            attributor = LinearHead.fit(features[known], labels[known], C)
        return cls(kind, feature_version, feature_names, detector, attributor)

    def save(self, path: Path, metadata: dict | None = None) -> None:
        """Arrays to <path>.npz (no pickle), kind, version, feature names, classes, threshold, skill to <path>.json."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = self.detector.head.arrays("detector")
        if self.attributor is not None:
            arrays.update(self.attribution_head.arrays("attributor"))
        np.savez_compressed(path, **arrays)
        document = {"format": FILE_FORMAT, "version": FILE_VERSION, "kind": self.kind,
                    "feature_version": self.feature_version, "feature_names": list(self.feature_names),
                    "detector_classes": list(self.detector.head.classes),
                    "attributor_classes": list(self.attributor.classes_) if self.attributor else [],
                    "threshold": self.detector.threshold, "skill": self.skill,
                    "metadata": {**self.metadata, **(metadata or {})}}
        path.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: Path, kind: str, feature_version: str) -> FeatureModel:
        """Load <path>.npz + .json written by `save`; weights of another kind or feature version are an error."""
        path, document = read_artifact_pair(path, ".npz", FILE_FORMAT, FILE_VERSION, "a feature model")
        if document["kind"] != kind or document["feature_version"] != feature_version:
            raise ValueError(f"{path}: weights for {document['kind']} {document['feature_version']}, this code "
                             f"computes {kind} {feature_version}")
        with np.load(path, allow_pickle=False) as stored:
            arrays = dict(stored)
        detector = FeatureDetector(LinearHead.from_arrays(arrays, "detector", document["detector_classes"]),
                                   float(document["threshold"]))
        attributor = (LinearHead.from_arrays(arrays, "attributor", document["attributor_classes"])
                      if document["attributor_classes"] else None)
        if detector.head.mean.shape != (len(document["feature_names"]),):
            raise ValueError(f"{path}: weights have {detector.head.mean.shape[0]} features, the JSON names "
                             f"{len(document['feature_names'])}")
        return cls(kind, feature_version, document["feature_names"], detector, attributor, document.get("skill"),
                   document.get("metadata"))
