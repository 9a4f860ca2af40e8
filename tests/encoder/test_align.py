"""Face detection + FFHQ alignment: the quad maths exactly, the resampling against known answers, real faces.

Canonical positions (encoder.align.CANONICAL_POINTS): eyes at (0.375, 17/36) and (0.625, 17/36), mouth centre at
(0.5, 0.75) of the crop side. Tolerances on real faces, as fractions of the crop side (x 256 for pixels):
eyes 0.03 (8 px); mouth centre 0.08 (20 px), because the quad fixes the mouth only for faces whose eye-to-mouth
distance is 10/9 of the eye distance and a typical ratio near 1.0 puts it at y ~ 0.725 instead of 0.75.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from core.images import load_image
from encoder.align import (
    CANONICAL_POINTS,
    AlignConfig,
    FaceAligner,
    NoFaceError,
    _shrunk_crop,
    alignment_error,
    gaussian_blur,
    quad_from_68,
    quad_from_landmarks,
    warp_quad,
)

EYE_TOLERANCE = 0.03
MOUTH_TOLERANCE = 0.08

FACES = {
    "real_ffhq": "real/xrv0__whichfaceisreal__backend_data_images_real_01001.webp",
    "real_studio": "real/debruine__webmorphR.stim__inst_canada_003f.jpg",
    "stylegan2": "stylegan2/kenton0607__stylegan2-ada-pytorch__out_ffhq_trunc_0.3_seed0085.webp",
    "progan": "progan/santaz-sahithi__InterfaceGAN__Fake_Dataset_Test_Fake_Faces_000301.jpg",
}


# ---------------------------------------------------------------- quad maths on hand-made landmarks

# Upright face: eyes 20 px apart at y=50, mouth corners at y=72 (eye-to-mouth 22 px, under 10/9 of 20, so the
# eye rule sets the half side: s = 2*20 = 40). x points right, y down, centre = eye midpoint + 0.1*(0, 22).
UPRIGHT = dict(eye_left=(40.0, 50.0), eye_right=(60.0, 50.0), mouth_left=(42.0, 72.0), mouth_right=(58.0, 72.0))
UPRIGHT_QUAD = np.array([[10.0, 12.2], [10.0, 92.2], [90.0, 92.2], [90.0, 12.2]])


def _rotate(points: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (np.asarray(points, dtype=np.float64) - centre) @ rotation.T + centre


def _sixty_eight(eye_left, eye_right, mouth_left, mouth_right) -> np.ndarray:
    """68 points whose eye contours average to the given centres and whose outer mouth corners are given."""
    landmarks = np.full((68, 2), 1000.0)
    ring = np.array([[-4, 0], [-2, -2], [2, -2], [4, 0], [2, 2], [-2, 2]], dtype=np.float64)
    landmarks[36:42] = np.asarray(eye_left) + ring
    landmarks[42:48] = np.asarray(eye_right) + ring
    landmarks[48] = mouth_left
    landmarks[54] = mouth_right
    return landmarks


def test_quad_of_upright_face_has_the_hand_computed_corners():
    np.testing.assert_allclose(quad_from_landmarks(**UPRIGHT), UPRIGHT_QUAD, atol=1e-12)


def test_quad_size_follows_eye_to_mouth_distance_for_long_faces():
    # Mouth 30 px below the eyes: 1.8*30 = 54 beats 2*20 = 40, so s = 54, centre (50, 53).
    quad = quad_from_landmarks((40, 50), (60, 50), (42, 80), (58, 80))
    np.testing.assert_allclose(quad, [[-4, -1], [-4, 107], [104, 107], [104, -1]], atol=1e-12)


def test_quad_turns_with_a_face_tilted_by_a_known_angle():
    centre = (37.0, 81.0)
    tilted = {key: _rotate(value, 30.0, centre) for key, value in UPRIGHT.items()}
    np.testing.assert_allclose(quad_from_landmarks(**tilted), _rotate(UPRIGHT_QUAD, 30.0, centre), atol=1e-9)


def test_quad_of_face_turned_a_quarter_has_integer_corners():
    # (x, y) -> (100 - y, x) turns the face 90 degrees clockwise on screen; corners follow exactly.
    turned = {key: (100.0 - value[1], value[0]) for key, value in UPRIGHT.items()}
    expected = np.stack([100.0 - UPRIGHT_QUAD[:, 1], UPRIGHT_QUAD[:, 0]], axis=1)
    np.testing.assert_allclose(quad_from_landmarks(**turned), expected, atol=1e-12)


def test_quad_functions_take_batches():
    landmarks = _sixty_eight(**UPRIGHT)
    quads = quad_from_68(np.stack([landmarks, landmarks + 7.0, landmarks]))
    assert quads.shape == (3, 4, 2)
    np.testing.assert_allclose(quads[1], UPRIGHT_QUAD + 7.0, atol=1e-12)


def test_quad_functions_refuse_wrong_landmark_counts():
    with pytest.raises(ValueError, match="68"):
        quad_from_68(np.zeros((5, 2)))


def test_balanced_face_lands_exactly_on_the_canonical_points():
    # Eye-to-mouth distance 10/9 of the eye distance, perpendicular: the geometry CANONICAL_POINTS is derived from.
    landmarks = _sixty_eight((40.0, 50.0), (60.0, 50.0), (45.0, 50.0 + 200 / 9), (55.0, 50.0 + 200 / 9))
    tilted = _rotate(landmarks, 23.0, (10.0, 20.0))
    assert alignment_error(tilted, quad_from_68(tilted)) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- resampling

def test_integer_aligned_square_quad_is_an_exact_crop():
    image = np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    x0, y0, side = 100, 60, 128
    quad = np.array([[x0, y0], [x0, y0 + side], [x0 + side, y0 + side], [x0 + side, y0]], dtype=np.float64) - 0.5
    np.testing.assert_array_equal(warp_quad(image, quad, side), image[y0:y0 + side, x0:x0 + side])


def test_quad_corner_order_is_top_left_bottom_left_bottom_right_top_right():
    image = np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    x0, y0, side = 100, 60, 128
    quad = np.array([[x0, y0], [x0, y0 + side], [x0 + side, y0 + side], [x0 + side, y0]], dtype=np.float64) - 0.5
    # Starting the corners at the image's top-right shows the crop turned a quarter counter-clockwise.
    turned = warp_quad(image, np.roll(quad, 1, axis=0), side)
    np.testing.assert_array_equal(turned, np.rot90(image[y0:y0 + side, x0:x0 + side]))


def test_padding_a_flat_image_invents_no_new_colour():
    image = np.empty((200, 200, 3), dtype=np.uint8)
    image[:] = (90, 140, 200)
    quad = np.array([[-120.0, -80.0], [-120.0, 240.0], [200.0, 240.0], [200.0, -80.0]])
    out = warp_quad(image, quad, 64)
    assert out.shape == (64, 64, 3)
    assert np.all(out == (90, 140, 200))


def test_pad_blur_equals_scipy_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy (via scikit-learn) checks the blur against the "
                                                          "function e4e used")
    rng = np.random.default_rng(4)
    for shape, sigma in (((90, 130, 3), 6.3), ((24, 17, 3), 9.0)):  # the second reflects more than once
        image = rng.uniform(0, 255, shape).astype(np.float32)
        np.testing.assert_allclose(gaussian_blur(image, sigma), ndimage.gaussian_filter(image, [sigma, sigma, 0]),
                                   atol=1e-3)


def test_shrinking_only_the_crop_equals_shrinking_the_whole_image_then_cropping():
    picture = Image.fromarray(np.random.default_rng(5).integers(0, 256, (700, 900, 3), dtype=np.uint8))
    for shrink in (2, 3):
        size = (int(np.rint(900 / shrink)), int(np.rint(700 / shrink)))
        crop = (17, 33, size[0] - 5, size[1] - 20)
        whole = np.asarray(picture.resize(size, Image.Resampling.LANCZOS).crop(crop)).astype(int)
        part = np.asarray(_shrunk_crop(picture, shrink, size, crop)).astype(int)
        assert np.abs(whole - part).max() <= 1
        assert (whole != part).mean() < 0.001


# ---------------------------------------------------------------- real faces

@pytest.fixture(scope="module")
def aligner() -> FaceAligner:
    return FaceAligner()


@pytest.fixture(scope="module")
def astronaut(real_face) -> Image.Image:
    """The committed public-domain photo (300 px, one upright frontal face): runs without the face set."""
    return Image.fromarray(load_image(real_face).pixels)


def _face(faces_dir, key: str) -> np.ndarray:
    path = faces_dir / FACES[key]
    if not path.exists():
        pytest.skip(f"{path} is not in the development face set")
    return load_image(path).pixels


def _found_points(landmarks: np.ndarray) -> np.ndarray:
    """Eye centres and mouth centre of 68 landmarks."""
    return np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0),
                     (landmarks[48] + landmarks[54]) / 2])


def _eye_line_angle(landmarks: np.ndarray) -> float:
    """Angle in degrees of the line from the left to the right eye centre (0 = level, positive = clockwise)."""
    dx, dy = landmarks[42:48].mean(axis=0) - landmarks[36:42].mean(axis=0)
    return math.degrees(math.atan2(dy, dx))


def _assert_near_canonical(aligner: FaceAligner, crop: np.ndarray) -> np.ndarray:
    """Re-detect landmarks on the aligned crop (independent of the quad maths), compare with the canon, return them."""
    landmarks = aligner.align(crop, "aligned crop")[0].landmarks
    error = np.linalg.norm((_found_points(landmarks) + 0.5) / crop.shape[0] - CANONICAL_POINTS, axis=1)
    assert error[:2].max() < EYE_TOLERANCE, f"eyes off canonical by {error[:2]} of the crop side"
    assert error[2] < MOUTH_TOLERANCE, f"mouth off canonical by {error[2]} of the crop side"
    return landmarks


def _assert_aligns_to_canonical(aligner: FaceAligner, image: np.ndarray, name: str) -> None:
    face = aligner.align(image, name)[0]
    assert face.image.shape == (256, 256, 3) and face.image.dtype == np.uint8
    assert face.landmarks.shape == (68, 2)
    assert face.alignment_error < 0.04
    _assert_near_canonical(aligner, face.image)


def test_committed_real_face_lands_on_ffhq_canonical_positions(aligner, astronaut):
    assert len(aligner.align(np.asarray(astronaut), "astronaut")) == 1
    _assert_aligns_to_canonical(aligner, np.asarray(astronaut), "astronaut")


@pytest.mark.parametrize("key", sorted(FACES))
def test_development_faces_land_on_ffhq_canonical_positions(aligner, faces_dir, key):
    _assert_aligns_to_canonical(aligner, _face(faces_dir, key), key)


def test_already_aligned_gan_face_survives_nearly_unchanged(aligner, faces_dir):
    image = _face(faces_dir, "stylegan2")
    face = aligner.align(image, "stylegan2")[0]
    corners = np.array([[0, 0], [0, 1024], [1024, 1024], [1024, 0]], dtype=np.float64)
    assert np.abs(face.quad - corners).max() < 0.015 * 1024
    resized = np.asarray(Image.fromarray(image).resize((256, 256), Image.Resampling.BILINEAR)).astype(np.float64)
    aligned = face.image.astype(np.float64)
    # Measured: mean absolute difference 2.5 grey levels, correlation 0.995.
    assert np.abs(aligned - resized).mean() < 5.0
    assert np.corrcoef(aligned.ravel(), resized.ravel())[0, 1] > 0.99


def test_picture_without_a_face_raises_no_face_error_naming_it(aligner):
    rng = np.random.default_rng(6)
    ramp = np.linspace(0, 200, 512)[None, :, None] + np.linspace(0, 40, 512)[:, None, None]
    picture = np.clip(ramp + rng.normal(0, 12, (512, 512, 3)), 0, 255).astype(np.uint8)
    with pytest.raises(NoFaceError) as caught:
        aligner.align(picture, "sky.png")
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("sky.png: ") and "\n" not in str(caught.value)


def test_batch_returns_no_face_error_in_place_without_aborting(aligner, astronaut):
    small_face = np.asarray(astronaut.resize((256, 256)))
    blank = np.full((256, 256, 3), 128, dtype=np.uint8)
    results = aligner.align_batch([blank, small_face], ["blank.png", "face.png"])
    assert isinstance(results[0], NoFaceError) and "blank.png" in str(results[0])
    assert len(results[1]) == 1


def test_exif_rotated_photo_aligns_upright(aligner, astronaut):
    upright = astronaut.resize((512, 512), Image.Resampling.LANCZOS)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the stored pixels lie on their side
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    loaded = load_image(buffer.getvalue(), name="sideways.jpg")
    face = aligner.align(loaded.pixels, loaded.name)[0]
    assert abs(_eye_line_angle(face.landmarks)) < 5.0
    _assert_near_canonical(aligner, face.image)


def test_alignment_rotates_tilted_face_upright(aligner, astronaut):
    image = astronaut.resize((512, 512), Image.Resampling.LANCZOS)
    tilted = np.asarray(image.rotate(20.0, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128)))
    face = aligner.align(tilted, "tilted")[0]
    straight = aligner.align(np.asarray(image), "straight")[0]
    # Pillow turns counter-clockwise on screen: the eye line climbs to the right by 20 degrees (negative angle).
    assert _eye_line_angle(face.landmarks) - _eye_line_angle(straight.landmarks) == pytest.approx(-20.0, abs=3.0)
    assert abs(_eye_line_angle(aligner.align(face.image)[0].landmarks)) < 3.0


def test_small_image_needs_upsampling_to_find_its_face(astronaut):
    # An 80-px photo: its face (~30 px) is under dlib's 80-px window until the image is upsampled twice.
    thumbnail = np.asarray(astronaut.resize((80, 80), Image.Resampling.LANCZOS))
    with pytest.raises(NoFaceError):
        FaceAligner(AlignConfig(upsample=0)).align(thumbnail, "thumbnail")
    face = FaceAligner(AlignConfig(upsample=2)).align(thumbnail, "thumbnail")[0]
    assert face.alignment_error < 0.04


def test_faces_come_largest_first(aligner, astronaut):
    canvas = Image.new("RGB", (1024, 640), (120, 120, 120))
    canvas.paste(astronaut.resize((260, 260)), (60, 300))
    canvas.paste(astronaut.resize((480, 480)), (500, 60))
    faces = aligner.align(np.asarray(canvas), "two faces")
    assert len(faces) == 2
    areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in (face.box for face in faces)]
    assert areas[0] > areas[1]
    x0, y0, x1, y1 = faces[0].box
    assert 500 <= (x0 + x1) / 2 <= 980 and 60 <= (y0 + y1) / 2 <= 540


def test_non_rgb_array_is_refused_with_its_name(aligner):
    with pytest.raises(ValueError, match="gray.png"):
        aligner.align(np.zeros((100, 100), dtype=np.uint8), "gray.png")
