"""Adapter for GANOrigin's published classifier trio, behind the same predict_proba/predict as LatentAttributor.

GANOrigin (HamiYasir, on the Hugging Face Hub) published three joblib pickles: an SVM with
`predict_proba`, a StandardScaler expecting 9,216 features and a LabelEncoder over progan/stylegan2/stylegan3.
Their features are the e4e encoder's raw output, i.e. W+ offsets WITHOUT latent_avg (encode with
`add_latent_avg=False`), flattened row-major (style row 0's 512 values first). Whether the SVM was really trained
on that convention cannot be checked from the repository: verify on known generated images first.

Loading is opt-in (`trust_foreign=True`): these are pickles from a third-party Hub repo, and unpickling runs any
code the file contains. The adapter is closed-set like the original unless `min_probability` is set,
because GANOrigin ships no validation data from which an open-set threshold could be chosen.

`convert_ganorigin` unpickles the trio once, with that consent, and writes it as a GANTrace `.skops` attributor
(`LatentAttributor.load` reads it safely from then on), recording where the files came from and their sha256.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.pipeline import Pipeline

from attribution.latent_svm import UNKNOWN, ForeignArtifactError, LatentAttributor
from core.weights import sha256_file

GANORIGIN_FEATURES = 9216
GANORIGIN_LATENT_SHAPE = (18, 512)


class GANOriginAttributor:
    """GANOrigin's scaler -> SVM -> label encoder on raw e4e offsets (N, 18, 512) or (N, 9216)."""

    def __init__(self, model: Any, scaler: Any, label_encoder: Any, min_probability: float | None = None,
                 sources: dict[str, str] | None = None):
        for name, part, method in (("model", model, "predict_proba"), ("scaler", scaler, "transform"),
                                   ("label encoder", label_encoder, "inverse_transform")):
            if not hasattr(part, method):
                raise TypeError(f"GANOrigin {name} ({type(part).__name__}) has no {method}(); wrong file?")
        for name, part in (("scaler", scaler), ("model", model)):
            expected = getattr(part, "n_features_in_", None)
            if expected is not None and expected != GANORIGIN_FEATURES:
                raise ValueError(f"GANOrigin {name} expects {expected} features, not {GANORIGIN_FEATURES} "
                                 "(18 x 512 flattened W+ offsets): this is not GANOrigin's classifier")
        self.model = model
        self.scaler = scaler
        self.label_encoder = label_encoder
        self.min_probability = min_probability
        self.classes_ = _class_names(model.classes_, label_encoder)
        self.metadata = {
            "source": "GANOrigin (HamiYasir), published pickles",
            "classes": self.classes_.tolist(),
            "feature_spec": {"latent_shape": list(GANORIGIN_LATENT_SHAPE), "latent_avg_added": False,
                             "flatten": "row-major (style row 0's values first)"},
            "open_set": {"rule": f"'{UNKNOWN}' when the top probability < {min_probability}"
                         if min_probability is not None else "none (closed set, as published)"},
            "files": sources or {},
        }

    @classmethod
    def load(cls, model_path: Path, scaler_path: Path, label_encoder_path: Path, trust_foreign: bool = False,
             min_probability: float | None = None) -> GANOriginAttributor:
        """Unpickle the three files; refused unless `trust_foreign=True`, since loading runs the files' code."""
        paths = {"model": Path(model_path), "scaler": Path(scaler_path), "label_encoder": Path(label_encoder_path)}
        if not trust_foreign:
            raise ForeignArtifactError(
                f"GANOrigin's pickles ({', '.join(str(p) for p in paths.values())}) were not written by GANTrace; "
                "unpickling runs any code they contain: pass trust_foreign=True only if you trust their source")
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            parts = {name: joblib.load(path) for name, path in paths.items()}
        sources = {name: f"{path} (sha256 {sha256_file(path)})" for name, path in paths.items()}
        adapter = cls(parts["model"], parts["scaler"], parts["label_encoder"], min_probability, sources)
        pickled_with = {str(w.message.original_sklearn_version) for w in caught
                        if issubclass(w.category, InconsistentVersionWarning)}
        adapter.metadata["pickled_with_sklearn"] = sorted(pickled_with) or "this scikit-learn version"
        return adapter

    latent_avg_added = False
    """GANOrigin's features are e4e's raw offsets, without latent_avg."""

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) over `classes_` (the label encoder's names of the model's classes)."""
        return self.model.predict_proba(self.scaler.transform(_flatten(latents)))

    def predict(self, latents: np.ndarray) -> list[str]:
        """The most probable class, or "unknown" under `min_probability` when one is set."""
        return self.predict_with_proba(latents)[1]

    def predict_with_proba(self, latents: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Probabilities and labels from one pass, for callers that report both."""
        probabilities = self.predict_proba(latents)
        best = self.classes_[probabilities.argmax(axis=1)]
        if self.min_probability is None:
            return probabilities, [str(name) for name in best]
        top = probabilities.max(axis=1)
        return probabilities, [UNKNOWN if p < self.min_probability else str(name) for name, p in zip(best, top)]


def _class_names(model_classes: np.ndarray, label_encoder: Any) -> np.ndarray:
    """GANOrigin's SVM predicts encoded integers; the label encoder names them (strings pass through)."""
    model_classes = np.asarray(model_classes)
    if np.issubdtype(model_classes.dtype, np.integer):
        return np.asarray(label_encoder.inverse_transform(model_classes)).astype(str)
    return model_classes.astype(str)


def _flatten(latents: np.ndarray) -> np.ndarray:
    latents = np.asarray(latents)
    if latents.ndim < 2 or int(np.prod(latents.shape[1:])) != GANORIGIN_FEATURES:
        raise ValueError(f"GANOrigin's classifier takes raw e4e offsets of shape (N, 18, 512) or (N, "
                         f"{GANORIGIN_FEATURES}), got {latents.shape}")
    return latents.reshape(len(latents), GANORIGIN_FEATURES).astype(np.float64)


def convert_ganorigin(model_path: Path, scaler_path: Path, label_encoder_path: Path, out: Path, origin: str,
                      trust_foreign: bool = False) -> LatentAttributor:
    """Unpickle GANOrigin's trio (only with `trust_foreign=True`) and save it as a closed-set `.skops` attributor.

    The saved file is read back through the safe loader and must give exactly the pickles' probabilities on probe
    latents, so a trio holding a type the loader does not trust (or any mismatch) is refused here, once, instead
    of at every start. `origin` says where the files came from (e.g. "hf://owner/repo@revision")."""
    adapter = GANOriginAttributor.load(model_path, scaler_path, label_encoder_path, trust_foreign=trust_foreign)
    paths = {"model": Path(model_path), "scaler": Path(scaler_path), "label_encoder": Path(label_encoder_path)}
    metadata = {
        "source": {
            "name": "GANOrigin (HamiYasir): its published attribution classifier, converted from joblib pickles",
            "origin": origin,
            "files": {role: {"file": path.name, "sha256": sha256_file(path)} for role, path in paths.items()},
            "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "pickled_with_sklearn": adapter.metadata["pickled_with_sklearn"],
        },
        "feature_spec": {"latent_shape": list(GANORIGIN_LATENT_SHAPE), "latent_dtype": "float64",
                         "latent_avg_added": False, "encoder": "e4e FFHQ encoder, raw offsets (add_latent_avg=False)",
                         "flatten": "row-major (style row 0's values first)"},
        "open_set": {"rule": "none (closed set, as published): every latent gets one of the classes"},
        "skill": {"attribution": {
            "accuracy": None,
            "protocol": "not measured by GANTrace; GANOrigin reports 99% on 3 x 1,000 of its own test latents, "
                        "unverifiable (which latent_avg convention its features used cannot be checked)"}},
    }
    pipeline = Pipeline([("scale", adapter.scaler), ("svm", adapter.model)])
    attributor = LatentAttributor.from_fitted(pipeline, adapter.classes_.tolist(), GANORIGIN_LATENT_SHAPE, "float64",
                                              metadata)
    out = Path(out)
    attributor.save(out)
    probe = np.random.default_rng(0).normal(0, 1, size=(8, GANORIGIN_FEATURES))
    try:
        same = np.array_equal(LatentAttributor.from_pretrained(out).predict_proba(probe), adapter.predict_proba(probe))
    except ForeignArtifactError:
        out.unlink()
        raise
    if not same:
        out.unlink()
        raise ValueError(f"{out}: the converted attributor does not reproduce GANOrigin's probabilities; not kept")
    return attributor
