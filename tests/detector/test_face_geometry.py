"""Face geometry features: what a JPEG re-encode and a horizontal flip do to them, on a real face found by dlib."""

from __future__ import annotations

import numpy as np
import pytest

from core.images import load_image
from detector.face_geometry import FEATURE_NAMES, LANDMARKS, geometry_features, mirrored
from detector.fingerprint_data import jpeg_reencode

# Tolerances, each in the feature's own unit: frame fractions for positions and template offsets (0.005 = 1.5 px
# of the 300-px test face: dlib moves a landmark by at most one pixel after JPEG q75), radians for the eye-line
# angle, eye distances for the ratios and asymmetries (a one-pixel move of a mouth corner is ~0.02 of them).
FRAME_TOLERANCE = 0.005
OTHER_TOLERANCE = 0.03
# dlib is not exactly flip-equivariant: on a flipped image its landmarks move by up to two pixels.
FLIP_FRAME_TOLERANCE = 0.01
FRAME_FEATURES = np.array([name.startswith(("landmark", "template", "face_centre", "eye_distance", "face_scale"))
                           for name in FEATURE_NAMES])


@pytest.fixture(scope="module")
def face(data_dir) -> np.ndarray:
    return load_image(data_dir / "astronaut_face.jpg").pixels


@pytest.fixture(scope="module")
def aligner():
    from encoder.align import FaceAligner

    return FaceAligner()


def _features(aligner, pixels: np.ndarray) -> np.ndarray:
    return geometry_features(aligner.align(pixels)[0].landmarks, (pixels.shape[1], pixels.shape[0]))


def _within(a: np.ndarray, b: np.ndarray, frame_tolerance: float) -> None:
    gap = np.abs(a - b)
    worst_frame, worst_other = gap[FRAME_FEATURES].max(), gap[~FRAME_FEATURES].max()
    assert worst_frame <= frame_tolerance, FEATURE_NAMES[int(np.argmax(np.where(FRAME_FEATURES, gap, -1)))]
    assert worst_other <= OTHER_TOLERANCE, FEATURE_NAMES[int(np.argmax(np.where(~FRAME_FEATURES, gap, -1)))]


def test_geometry_of_a_real_face_is_unchanged_by_jpeg_q75(aligner, face):
    _within(_features(aligner, face), _features(aligner, jpeg_reencode(face, 75)), FRAME_TOLERANCE)


def test_geometry_mirrors_when_dlib_reads_the_flipped_face(aligner, face):
    plain = _features(aligner, face)
    flipped = _features(aligner, np.ascontiguousarray(face[:, ::-1]))
    _within(mirrored(plain), flipped, FLIP_FRAME_TOLERANCE)
    # the features are not flip-invariant: without the mirror map the same comparison fails
    assert np.abs(plain - flipped)[FRAME_FEATURES].max() > 5 * FLIP_FRAME_TOLERANCE


def test_mirror_map_is_exact_on_mirrored_landmarks_and_an_involution():
    rng = np.random.default_rng(0)
    width, height = 300, 240
    points = rng.uniform([40, 30], [260, 210], size=(LANDMARKS, 2))
    partner = np.r_[16:-1:-1, 26:16:-1, 27:31, 35:30:-1, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
                    54:47:-1, 59:54:-1, 64:59:-1, 67:64:-1]
    flipped = points[partner].copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    plain = geometry_features(points, (width, height))
    np.testing.assert_allclose(geometry_features(flipped, (width, height)), mirrored(plain), atol=1e-5)
    np.testing.assert_allclose(mirrored(mirrored(plain)), plain, atol=0)
    symmetric = [FEATURE_NAMES.index(name) for name in ("asymmetry_all", "eye_mouth_ratio", "face_scale")]
    np.testing.assert_allclose(mirrored(plain)[symmetric], plain[symmetric])


def test_positions_are_fractions_of_the_frame_so_a_downscale_keeps_them():
    rng = np.random.default_rng(1)
    points = rng.uniform(20, 200, size=(LANDMARKS, 2))
    # pixel centres: a point at x in a 256-px frame is at (x + 0.5) / 2 - 0.5 in the 128-px copy
    half = (points + 0.5) / 2 - 0.5
    np.testing.assert_allclose(geometry_features(points, (256, 256)), geometry_features(half, (128, 128)),
                               atol=1e-5)


def test_bad_landmarks_are_refused_with_their_shape():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        geometry_features(np.zeros((5, 2)), (100, 100))
