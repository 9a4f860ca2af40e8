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
(`LatentAttributor.from_pretrained` reads it safely from then on), recording where the files came from and
their sha256.

The pickles were made by whatever scikit-learn GANOrigin's author had (its requirements are unpinned), and they are
read by the user's. Every scikit-learn estimator pickles the release that made it (`_sklearn_version` in its
state); `pickled_sklearn_versions` reads it from the file's bytes without unpickling anything, so when this
scikit-learn cannot unpickle or run the files, the refusal is one line naming the release they need
(`IncompatiblePickleError`). tests/data/sklearn_pickles holds the trio as made by each release of 2024-2026.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import mmap
import re
import warnings
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.pipeline import Pipeline

from attribution.latent_svm import UNKNOWN, ForeignArtifactError, LatentAttributor
from core.probability import most_probable
from core.weights import sha256_file

GANORIGIN_FEATURES = 9216
GANORIGIN_LATENT_SHAPE = (18, 512)
SKLEARN_VERSION_KEY = b"_sklearn_version"

# How joblib's compressed files start (joblib.dump(..., compress=...)), and the standard library's reader of each;
# an uncompressed joblib file is a plain pickle, starting with the PROTO opcode.
_DECOMPRESSORS = {b"\x78": zlib.decompress, b"\x1f\x8b": gzip.decompress, b"BZ": bz2.decompress,
                  b"\xfd7zXZ": lzma.decompress, b"\x5d\x00": lzma.decompress}


class IncompatiblePickleError(ValueError):
    """A GANOrigin pickle that this scikit-learn cannot unpickle or run: it needs the release that made it."""


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
        self.classes_ = tuple(str(name) for name in _class_names(model.classes_, label_encoder))
        self.metadata = {
            "source": "GANOrigin (HamiYasir), published pickles",
            "classes": list(self.classes_),
            "feature_spec": {"latent_shape": list(GANORIGIN_LATENT_SHAPE), "latent_avg_added": False,
                             "flatten": "row-major (style row 0's values first)"},
            "open_set": {"rule": f"'{UNKNOWN}' when the top probability < {min_probability}"
                         if min_probability is not None else "none (closed set, as published)"},
            "files": sources or {},
        }

    @classmethod
    def load(cls, model_path: Path, scaler_path: Path, label_encoder_path: Path, trust_foreign: bool = False,
             min_probability: float | None = None) -> GANOriginAttributor:
        """Unpickle the three files; refused unless `trust_foreign=True`, since loading runs the files' code. A file
        this scikit-learn cannot unpickle raises IncompatiblePickleError, naming the release that pickled it."""
        paths = {"model": Path(model_path), "scaler": Path(scaler_path), "label_encoder": Path(label_encoder_path)}
        if not trust_foreign:
            raise ForeignArtifactError(
                f"GANOrigin's pickles ({', '.join(str(p) for p in paths.values())}) were not written by GANTrace; "
                "unpickling runs any code they contain: pass trust_foreign=True only if you trust their source")
        for path in paths.values():
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
        pickled_with = {name: pickled_sklearn_versions(path) for name, path in paths.items()}
        parts = {name: _unpickle(path, pickled_with[name]) for name, path in paths.items()}
        sources = {name: f"{path} (sha256 {sha256_file(path)})" for name, path in paths.items()}
        adapter = cls(parts["model"], parts["scaler"], parts["label_encoder"], min_probability, sources)
        adapter.metadata["pickled_with_sklearn"] = pickled_with
        return adapter

    latent_avg_added = False
    """GANOrigin's features are e4e's raw offsets, without latent_avg."""

    def predict_proba(self, latents: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) over `classes_` (the label encoder's names of the model's classes)."""
        return self.model.predict_proba(self.scaler.transform(_flatten(latents)))

    def predict(self, latents: np.ndarray) -> list[str]:
        """The most probable member of `classes_` per latent (never "unknown": see `open_set_scores`)."""
        return most_probable(self.classes_, self.predict_proba(latents))

    def open_set_scores(self, latents: np.ndarray) -> dict[str, np.ndarray]:
        """What `attribution.open_set.open_set_labels` reads: the probabilities, and where the optional floor
        (`min_probability`; none as published) rejects the top class."""
        probabilities = self.predict_proba(latents)
        floor = -np.inf if self.min_probability is None else self.min_probability
        return {"probabilities": probabilities, "unknown": probabilities.max(axis=1) < floor}


def pickled_sklearn_versions(path: Path) -> list[str]:
    """The scikit-learn releases that pickled the estimators in a joblib file, read from its bytes (nothing is
    unpickled): each estimator's state holds the key `_sklearn_version` followed by the release as a pickled str.
    Empty when there is none (pickled before scikit-learn 0.18, not by scikit-learn, or an unknown compression)."""
    with open(path, "rb") as handle:
        if not handle.read(1):
            return []
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as raw:
            decompress = next((read for prefix, read in _DECOMPRESSORS.items() if raw[:len(prefix)] == prefix), None)
            data = decompress(raw[:]) if decompress is not None else raw
            found = {_pickled_str(data, key.end()) for key in re.finditer(re.escape(SKLEARN_VERSION_KEY), data)}
    return sorted(found - {None})


def _pickled_str(data: bytes | mmap.mmap, at: int) -> str | None:
    """The str pickled at `at` (after an optional memo opcode), or None when no str opcode is there."""
    memo_sizes = {0x94: 1, ord("q"): 2, ord("r"): 5}  # MEMOIZE (protocol 4+), BINPUT, LONG_BINPUT
    at += memo_sizes.get(data[at], 0) if at < len(data) else 0
    opcode = data[at:at + 1]
    if opcode == b"\x8c":  # SHORT_BINUNICODE: 1-byte length
        size, at = data[at + 1], at + 2
    elif opcode == b"X":  # BINUNICODE: 4-byte little-endian length
        size, at = int.from_bytes(data[at + 1:at + 5], "little"), at + 5
    else:
        return None
    return bytes(data[at:at + size]).decode("utf-8", errors="replace")


def _unpickle(path: Path, pickled_with: list[str]) -> Any:
    """joblib.load, with whatever goes wrong inside a foreign pickle turned into the one-line refusal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InconsistentVersionWarning)  # the release is recorded in the metadata
        try:
            return joblib.load(path)
        except Exception as err:  # unpickling runs the file's own reduce calls: any error type can come out
            raise _incompatible(path, pickled_with, err) from err


def _incompatible(path: Path, pickled_with: list[str], err: Exception) -> IncompatiblePickleError:
    detail = (str(err).splitlines() or [""])[0][:160]
    if not pickled_with:
        return IncompatiblePickleError(
            f"{path}: scikit-learn {sklearn.__version__} cannot use it ({type(err).__name__}: {detail}) and it "
            "names no scikit-learn release (pickled before scikit-learn 0.18, or not by scikit-learn)")
    needed = " or ".join(pickled_with)
    return IncompatiblePickleError(
        f"{path}: pickled by scikit-learn {needed}, which scikit-learn {sklearn.__version__} cannot use "
        f"({type(err).__name__}: {detail}); it needs scikit-learn {needed} "
        f"(pip install scikit-learn=={pickled_with[-1]})")


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

    The pickles must first compute probabilities on probe latents with this scikit-learn (a release that stores
    other fitted attributes fails here: IncompatiblePickleError, naming the release the files need). The saved file
    is read back through the safe loader and must give exactly those probabilities, so a trio holding a type the
    loader does not trust (or any mismatch) is refused here, once, instead of at every start. `origin` says where
    the files came from (e.g. "hf://owner/repo@revision")."""
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
    probe = np.random.default_rng(0).normal(0, 1, size=(8, GANORIGIN_FEATURES))
    try:
        expected = adapter.predict_proba(probe)
    except Exception as err:  # fitted attributes another release named differently fail here, in its own code
        pickled_with = sorted({*adapter.metadata["pickled_with_sklearn"]["model"],
                               *adapter.metadata["pickled_with_sklearn"]["scaler"]})
        raise _incompatible(paths["model"], pickled_with, err) from err
    pipeline = Pipeline([("scale", adapter.scaler), ("svm", adapter.model)])
    attributor = LatentAttributor.from_fitted(pipeline, list(adapter.classes_), GANORIGIN_LATENT_SHAPE, "float64",
                                              metadata)
    out = Path(out)
    attributor.save(out)
    try:
        same = np.array_equal(LatentAttributor.from_pretrained(out).predict_proba(probe), expected)
    except ForeignArtifactError:
        out.unlink()
        raise
    if not same:
        out.unlink()
        raise ValueError(f"{out}: the converted attributor does not reproduce GANOrigin's probabilities; not kept")
    return attributor
