"""The three codec-robust cues side by side: face geometry, colour statistics and the spectral DCT features.

Why one vector: each cue alone is weak under source-grouped CV, but they fail on different sources (geometry
reads the framing, colour the tone curve, the spectrum the up-sampling and resampling history), so one linear
model over all three ranks the architecture better than any of them (artifacts/face-cues.md). The features are
the cues' own functions, concatenated in a fixed order; the version names all three, so weights fitted on
another version of any cue are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from detector import colour_stats, face_geometry
from detector.spectral import SpectralSpec, image_features

SPECTRAL_SPEC = SpectralSpec()
FEATURE_VERSION = (f"{face_geometry.FEATURE_VERSION}+{colour_stats.FEATURE_VERSION}"
                   f"+spectral-{json.dumps(asdict(SPECTRAL_SPEC), sort_keys=True)}")
FEATURE_NAMES = (*face_geometry.FEATURE_NAMES, *colour_stats.FEATURE_NAMES,
                 *(f"dct{i}" for i in range(SPECTRAL_SPEC.dim)))


def cue_features(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(len(FEATURE_NAMES),) float32: geometry of the face's (68, 2) landmarks in this image's frame, then the
    image's colour statistics, then its spectral DCT features."""
    height, width = image.shape[:2]
    return np.concatenate([face_geometry.geometry_features(landmarks, (width, height)),
                           colour_stats.colour_features(image),
                           image_features([image], SPECTRAL_SPEC)[0]]).astype(np.float32)
