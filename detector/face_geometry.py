"""Face geometry from dlib's 68 landmarks: a cue that lives in where the face sits, not in the pixels' codec.

StyleGAN and ProGAN faces inherit their training set's alignment: every FFHQ/CelebA-HQ-style crop puts the eyes
at fixed fractions of the frame (Yang et al. 2019 read fakes from landmark locations; Mundra et al. 2023 from a
compact landmark embedding). A JPEG re-encode moves a landmark by a pixel at most, so these features survive
the codec; a re-crop does not, and real FFHQ/CelebA-HQ photos are aligned the same way, which is why only the
source-grouped cross-validation says what the cue is worth.

The features (`geometry_features`, one row per face) are all measured in the frame's own fractions, so a
downscale leaves them in place:
- the 68 landmark positions, centred on the frame and divided by its width / height;
- the eye centres' and mouth centre's displacement from the FFHQ alignment template (`FFHQ_TEMPLATE`, where a
  balanced FFHQ crop puts them) and their distances from it;
- the eye line: angle, eye distance over the frame width and height, eye-to-mouth distance over eye distance,
  the face centre and scale in the frame;
- left/right asymmetry per region (jaw, brows, eyes, nose, mouth) and overall: how far each landmark lies from
  its partner reflected about the face's own midline, in eye distances.

Under a horizontal flip the features mirror: `MIRROR_ORDER` / `MIRROR_SIGN` map the features of an image to those
of its mirror image (left/right partners swap, horizontal offsets and the eye-line angle change sign, symmetric
features stay), which the tests check on a real face.

Landmarks come from the caller (encoder.align finds them; a stage does not import another stage).
"""

from __future__ import annotations

import numpy as np

LANDMARKS = 68
FEATURE_VERSION = "face-geometry-1"

# dlib 68-point (iBUG 300-W) partner of each landmark under a left/right mirror of the face.
_PARTNER = np.array([
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,   # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,                      # brows
    27, 28, 29, 30, 35, 34, 33, 32, 31,                          # nose bridge, nostrils
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,              # eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,              # outer lip
    64, 63, 62, 61, 60, 67, 66, 65,                              # inner lip
])
_REGIONS = {"jaw": slice(0, 17), "brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48),
            "mouth": slice(48, 68)}
_EYE_LEFT, _EYE_RIGHT = slice(36, 42), slice(42, 48)
_MOUTH_LEFT, _MOUTH_RIGHT = 48, 54
_NOSE_BRIDGE = slice(27, 31)

# Where a balanced FFHQ crop puts the image-left eye, the image-right eye and the mouth centre, as fractions of
# the frame (x right, y down): the FFHQ alignment recipe's quad maps them there (derived in encoder/align.py).
FFHQ_TEMPLATE = np.array([[0.375, 17 / 36], [0.625, 17 / 36], [0.5, 0.75]])


def _names() -> list[str]:
    names = [f"landmark{i}_{axis}" for i in range(LANDMARKS) for axis in ("x", "y")]
    for point in ("eye_left", "eye_right", "mouth"):
        names += [f"template_{point}_dx", f"template_{point}_dy", f"template_{point}_distance"]
    names += ["eye_angle", "eye_distance_w", "eye_distance_h", "eye_mouth_ratio", "face_centre_x",
              "face_centre_y", "face_scale"]
    names += [f"asymmetry_{region}" for region in _REGIONS] + ["asymmetry_all"]
    return names


FEATURE_NAMES = tuple(_names())


def _mirror_map() -> tuple[np.ndarray, np.ndarray]:
    """Feature permutation and signs such that features(flipped image) == features(image)[order] * sign."""
    index = {name: i for i, name in enumerate(FEATURE_NAMES)}
    order, sign = np.arange(len(FEATURE_NAMES)), np.ones(len(FEATURE_NAMES))
    for i in range(LANDMARKS):
        for axis in ("x", "y"):
            order[index[f"landmark{i}_{axis}"]] = index[f"landmark{_PARTNER[i]}_{axis}"]
        sign[index[f"landmark{i}_x"]] = -1.0
    for a, b in (("eye_left", "eye_right"), ("eye_right", "eye_left")):
        for part in ("dx", "dy", "distance"):
            order[index[f"template_{a}_{part}"]] = index[f"template_{b}_{part}"]
    for name in ("template_eye_left_dx", "template_eye_right_dx", "template_mouth_dx", "eye_angle", "face_centre_x"):
        sign[index[name]] = -1.0
    return order, sign


MIRROR_ORDER, MIRROR_SIGN = _mirror_map()


def geometry_features(landmarks: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(len(FEATURE_NAMES),) float32 features of one face's (68, 2) landmarks (x, y pixel centres) in a frame of
    (width, height) pixels."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (LANDMARKS, 2):
        raise ValueError(f"face geometry needs (68, 2) landmarks, got shape {points.shape}")
    width, height = frame_size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {frame_size}")
    # pixel centres at integers: (x + 0.5) / width is the point's fraction of the frame, mirror-exact
    fractions = (points + 0.5) / np.array([width, height])
    centred = fractions - 0.5
    eye_left, eye_right = fractions[_EYE_LEFT].mean(axis=0), fractions[_EYE_RIGHT].mean(axis=0)
    mouth = (fractions[_MOUTH_LEFT] + fractions[_MOUTH_RIGHT]) / 2
    offsets = np.stack([eye_left, eye_right, mouth]) - FFHQ_TEMPLATE
    template = np.column_stack([offsets, np.linalg.norm(offsets, axis=1)]).ravel()

    pixels = points + 0.5
    eye_l_px, eye_r_px = pixels[_EYE_LEFT].mean(axis=0), pixels[_EYE_RIGHT].mean(axis=0)
    eye_vector = eye_r_px - eye_l_px
    eye_distance = max(float(np.linalg.norm(eye_vector)), 1e-6)
    mouth_px = (pixels[_MOUTH_LEFT] + pixels[_MOUTH_RIGHT]) / 2
    eye_mid_px = (eye_l_px + eye_r_px) / 2
    face_centre = (eye_mid_px + mouth_px) / 2 / np.array([width, height]) - 0.5
    eye_line = [np.arctan2(eye_vector[1], eye_vector[0]), eye_distance / width, eye_distance / height,
                np.linalg.norm(mouth_px - eye_mid_px) / eye_distance, face_centre[0], face_centre[1],
                eye_distance / np.sqrt(width * height)]
    return np.concatenate([centred.ravel(), template, eye_line, _asymmetry(pixels, eye_vector, eye_distance)]
                          ).astype(np.float32)


def _asymmetry(pixels: np.ndarray, eye_vector: np.ndarray, eye_distance: float) -> np.ndarray:
    """Per region and overall: mean distance between each landmark and its partner reflected about the face's
    midline (the line through the nose bridge perpendicular to the eye line), in eye distances."""
    axis = eye_vector / eye_distance
    anchor = pixels[_NOSE_BRIDGE].mean(axis=0)
    along = (pixels - anchor) @ axis
    reflected = pixels - 2.0 * along[:, None] * axis[None, :]
    gaps = np.linalg.norm(pixels - reflected[_PARTNER], axis=1) / eye_distance
    return np.array([gaps[region].mean() for region in _REGIONS.values()] + [gaps.mean()])


def mirrored(features: np.ndarray) -> np.ndarray:
    """The features the horizontally flipped image would give, from the features of the image itself."""
    features = np.asarray(features)
    return features[..., MIRROR_ORDER] * MIRROR_SIGN
