"""The three codec-robust cues as one versioned set: face geometry, colour statistics and the spectral DCT features.

Why one version for three cues: the feature cache (runners.feature_cache) computes all three per image once, and
the spectral cue's artifact is written in the spectral branch's own format; naming every cue's version and the
spectral spec in one string means a change to any of them reads from a new cache folder and refuses weights fitted
on the old features. Under source-grouped CV each cue alone stays below the voting bars, and neither one linear
model over all three nor a properly nested stacker over their heads clears them (artifacts/cv-comparison-issue27.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict

from detector import colour_stats, face_geometry
from detector.spectral import SpectralSpec

SPECTRAL_SPEC = SpectralSpec()
FEATURE_VERSION = (f"{face_geometry.FEATURE_VERSION}+{colour_stats.FEATURE_VERSION}"
                   f"+spectral-{json.dumps(asdict(SPECTRAL_SPEC), sort_keys=True)}")
