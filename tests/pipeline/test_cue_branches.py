"""The cue branches: they read what the pipeline hands them (aligned faces' landmarks, whole images), re-centre
their fake score on the artifact's threshold, and load only weights made for their feature version."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.device import select_precision
from detector import colour_stats, face_geometry
from detector.feature_model import FeatureModel
from pipeline.branch import BranchContext
from pipeline.branches import ColourBranch, GeometryBranch

GANS = ("progan", "stylegan2", "stylegan3")


def _model(kind: str, version: str, names: tuple[str, ...], threshold: float) -> FeatureModel:
    rng = np.random.default_rng(0)
    labels = np.array(["real", *GANS] * 10)
    model = FeatureModel.fit(kind, version, names, rng.normal(size=(len(labels), len(names))), labels)
    model.detector.threshold = threshold
    return model


def _face(rng: np.random.Generator) -> SimpleNamespace:
    return SimpleNamespace(landmarks=rng.uniform(20, 200, size=(68, 2)).astype(np.float32), frame_size=(256, 240))


def test_geometry_branch_reads_the_aligned_faces_landmarks_and_recentres_on_the_threshold():
    model = _model("face-geometry", face_geometry.FEATURE_VERSION, face_geometry.FEATURE_NAMES, 0.3)
    faces = [_face(np.random.default_rng(seed)) for seed in range(3)]
    evidence = GeometryBranch(model).run(faces)
    features = np.stack([face_geometry.geometry_features(f.landmarks, f.frame_size) for f in faces])
    head = model.detector.head
    raw = head.proba(features.astype(np.float32))[:, head.classes.index("fake")]
    for item, p in zip(evidence, raw):
        assert sum(item.probabilities.values()) == pytest.approx(1.0)
        # re-centred: above the artifact's threshold means above 0.5
        assert (1.0 - item.probabilities["real"] > 0.5) == (p > 0.3)
        assert set(item.probabilities) == {"real", *GANS}


def test_colour_branch_scores_whole_images():
    model = _model("colour-stats", colour_stats.FEATURE_VERSION, colour_stats.FEATURE_NAMES, 0.5)
    images = [np.random.default_rng(seed).integers(0, 255, (40, 30, 3), dtype=np.uint8) for seed in range(2)]
    evidence = ColourBranch(model).run(images)
    raw = model.detector.predict_proba(np.stack([colour_stats.colour_features(i) for i in images]))[:, 1]
    np.testing.assert_allclose([1.0 - e.probabilities["real"] for e in evidence], raw, atol=1e-9)


def test_weights_for_another_cue_are_refused(tmp_path):
    path = tmp_path / "colour"
    _model("colour-stats", colour_stats.FEATURE_VERSION, colour_stats.FEATURE_NAMES, 0.5).save(path)
    with pytest.raises(ValueError, match="face-geometry"):
        GeometryBranch().load(BranchContext(select_precision("cpu", "fp32"),
                                            options={"weights": str(path.with_suffix(".npz"))}))
