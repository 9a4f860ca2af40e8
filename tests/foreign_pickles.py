"""Pickles GANTrace did not write, built in tests: GANOrigin's classifier trio as published, and a canary.

Shared by the adapter tests (tests/test_latent_svm.py) and the consent/conversion tests of download_weights.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import SVC

GANORIGIN_FILES = ("gan_attribution_model.pkl", "gan_scaler.pkl", "gan_label_encoder.pkl")


class WritesFileWhenUnpickled:
    """A stand-in for a malicious pickle: unpickling it creates a file (any code could run instead)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return Path.touch, (self.target,)


def build_ganorigin_trio(folder: Path, n_features: int = 9216, per_class: int = 10,
                         dtype: type = np.float64) -> tuple[Path, Path, Path, np.ndarray]:
    """GANOrigin's three pickles as published: StandardScaler, SVC(kernel='linear', probability=True) on encoded
    labels, LabelEncoder over progan/stylegan2/stylegan3; returns their paths and the training features.

    Needs only numpy, scikit-learn and joblib, so tests/data/sklearn_pickles/make_fixtures.py runs it inside a
    throwaway venv of another scikit-learn release (few float32 rows there keep the committed files small)."""
    rng = np.random.default_rng(0)
    rows = np.arange(3 * per_class) % 3
    names = np.array(["progan", "stylegan2", "stylegan3"])[rows]
    centres = rng.normal(0, 1, size=(3, n_features))
    features = (centres[rows] + rng.normal(0, 0.5, size=(len(rows), n_features))).astype(dtype)
    encoder = LabelEncoder().fit(names)
    scaler = StandardScaler().fit(features)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The `probability` parameter was deprecated", category=FutureWarning)
        svm = SVC(kernel="linear", probability=True, random_state=0).fit(scaler.transform(features),
                                                                          encoder.transform(names))
    paths = tuple(folder / name for name in GANORIGIN_FILES)
    for part, path in zip((svm, scaler, encoder), paths):
        joblib.dump(part, path)
    return (*paths, features)
