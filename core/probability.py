"""Probabilities as every stage model and fusion speak them: threshold re-centring and one estimator per head.

Why in core: the two-headed detectors (spectral, residual) apply their held-out threshold inside the model, and
fusion applies the configured one to its weighted mean; both must use the very same float operations, so the
step lives once, below both.

The estimator vocabulary is scikit-learn's: `classes_` (a tuple of str), `predict_proba(X)` an (N, len(classes_))
array whose rows sum to 1 in the order of `classes_`, `predict(X)` the most probable member of `classes_`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_EPS = 1e-6


def recentre(probability: float, threshold: float) -> float:
    """Shift the logit so that `threshold` becomes 0.5; the identity when the threshold is 0.5."""
    if threshold == 0.5:
        return float(probability)
    p = min(max(probability, _EPS), 1 - _EPS)
    return 1.0 / (1.0 + math.exp(-(_logit(p) - _logit(threshold))))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def most_probable(classes: Sequence[str], probabilities: np.ndarray) -> list[str]:
    """`predict` from `predict_proba`: the class of each row's largest probability (the first one on a tie)."""
    return [classes[index] for index in np.asarray(probabilities).argmax(axis=1)]


class HeadEstimator:
    """One head of a model with two (real/fake, architecture) as an estimator of its own.

    The model computes the probabilities (`predict_proba` is the model's function for this head); this object
    gives them the estimator's names, so `model.detector` and `model.attributor` read like any other classifier.
    """

    def __init__(self, classes: Sequence[str], predict_proba: Callable[[Any], np.ndarray]):
        self.classes_ = tuple(classes)
        self._predict_proba = predict_proba

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """(N, len(classes_)) probabilities, columns in the order of `classes_`."""
        return self._predict_proba(inputs)

    def predict(self, inputs: Any) -> list[str]:
        """The most probable member of `classes_` per input."""
        return most_probable(self.classes_, self.predict_proba(inputs))


def recentred(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """`recentre` over an array of P(fake), element by element (the same float operations as the scalar form)."""
    return np.array([recentre(float(p), threshold) for p in probabilities], dtype=np.float64)


def shared_out(fake: np.ndarray, architectures: np.ndarray | None) -> np.ndarray:
    """(N, 1 + K) [P(real), P(fake) · P(architecture | fake) per architecture] from (N,) P(fake) and (N, K)
    P(architecture | fake), or (N, 2) [P(real), P(fake)] without an architecture head: rows sum to 1."""
    fake = np.asarray(fake, dtype=np.float64)
    if architectures is None:
        return np.stack([1.0 - fake, fake], axis=1)
    return np.concatenate([(1.0 - fake)[:, None], fake[:, None] * np.asarray(architectures, dtype=np.float64)],
                          axis=1)
