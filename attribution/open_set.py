"""The open-set answer: a known class, or "unknown" when the latent attributor's own rule rejects the face.

Why a function of its own: `predict` of every model answers a member of its `classes_` (scikit-learn's contract),
so "unknown", which is no class the attributor was trained on, is decided here, in one named place the pipeline's
latent branch calls. The rule itself (a probability floor and a distance ceiling set on validation latents) is the
attributor's, measured when it was fitted (`LatentAttributor.open_set_scores`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attribution.latent_svm import UNKNOWN


def open_set_labels(attributor: Any, latents: np.ndarray) -> list[str]:
    """Per latent, the attributor's most probable class, or "unknown" where its open-set rule rejects it."""
    scores = attributor.open_set_scores(latents)
    best = scores["probabilities"].argmax(axis=1)
    return [UNKNOWN if unknown else str(attributor.classes_[index]) for index, unknown in zip(best, scores["unknown"])]
