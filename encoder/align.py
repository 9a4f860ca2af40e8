"""Find faces and cut them out the way FFHQ was cut, because e4e only inverts faces aligned like its training set.

Detection is dlib's HOG frontal-face detector; landmarks are dlib's 68-point predictor (registry weight
`dlib-landmarks-68`). The crop is e4e's `utils/alignment.py` recipe (the FFHQ dataset script's), rewritten:

* quad: centred just below the eyes, side max(2·eye distance, 1.8·eye-to-mouth distance), rotated with the face
  (`quad_from_68`; `quad_from_landmarks` takes eye centres and mouth corners from any landmark source);
* resampling: shrink by an integer factor with LANCZOS, crop with a 10 % border, reflect-pad with blur and a fade
  to the median colour when the quad leaves the image, then one bilinear QUAD warp to `output_size`
  (`warp_quad`). Pillow >= 10 names: LANCZOS, not the removed ANTIALIAS.

Departures from e4e, each on purpose: every face is returned, largest first (e4e keeps the last detection); no face
raises `NoFaceError` (e4e crashes with UnboundLocalError); pixels come from `core.images` (EXIF orientation applied,
any mode converted to RGB) so landmarks and warp see the same decode; large images are *detected* on a downscaled
copy (the HOG scan dominates the cost) while landmarks are predicted on the full-resolution image.

The pad blur is scipy's `gaussian_filter(img, [σ, σ, 0])` (truncate 4σ, mode "reflect") computed exactly without
scipy: separable passes, each a few small single-thread BLAS products of a banded weight matrix (the truncated
kernel with the reflections folded in) with the rows it reaches. PIL's GaussianBlur was rejected: it approximates
the Gaussian with box filters, clamps instead of reflecting at the edges and only takes 8-bit images, so the padded
band would differ from e4e's. Measured on the 820² pad of a 1024² FFHQ face (σ = 10): 30 ms, scipy 130-160 ms.

Canonical positions (`CANONICAL_POINTS`, fractions of the crop side, x right, y down) follow from the quad itself.
Take a face whose eye-to-mouth line is perpendicular to the eye line and whose two size rules agree,
2·‖eye_R − eye_L‖ = 1.8·‖mouth − eyes‖ (eye-to-mouth / eye distance = 10/9). Then the half side is s = 2a
(a = eye distance) and the centre sits 0.1·b below the eye midpoint (b = 10a/9), so in the crop
  eyes at x = 1/2 ∓ (a/2)/(2s) = 0.375 and 0.625, y = 1/2 − 0.1b/(2s) = 17/36 ≈ 0.4722;
  mouth centre at x = 0.5, y = 1/2 + 0.9b/(2s) = 0.75.
The quad fixes only the mouth *centre* (the corners' spread is the person's mouth width, not alignment), so the
alignment error compares the two eye centres and the midpoint of the mouth corners. A face with a different
eye/mouth ratio lands slightly off these points by construction (ratio 1.0: mouth at y = 0.725): the error
measures how FFHQ-like the crop is, not only whether the maths ran.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image
from threadpoolctl import ThreadpoolController

from core.arrays import check_rgb
from core.weights import resolve

LANDMARKS_WEIGHTS = "dlib-landmarks-68"

# dlib 68-point index groups (iBUG 300-W): eye contours and the outer mouth corners; "left" is image-left.
EYE_LEFT = slice(36, 42)
EYE_RIGHT = slice(42, 48)
MOUTH_LEFT = 48
MOUTH_RIGHT = 54

# Where a balanced face's eye centres and mouth centre land in the crop, as fractions of its side (see above).
CANONICAL_POINTS = np.array([[0.375, 17 / 36], [0.625, 17 / 36], [0.5, 0.75]])

# dlib's HOG detector scans an 80x80 window: faces smaller than this, in the scanned picture, are not found.
DLIB_MIN_FACE = 80

_BLAS = ThreadpoolController()


class NoFaceError(ValueError):
    """No face was found; `str()` is one line naming the image and what to try."""

    def __init__(self, name: str, problem: str):
        self.name = name
        super().__init__(f"{name}: {problem}")


@dataclass(frozen=True)
class AlignConfig:
    """How faces are found and cropped.

    `detect_max_side` is the long side of the picture the HOG detector scans: larger images are downscaled to it
    (the scan costs ~0.1 s at 1024 px and 4x more per doubling), smaller ones are upsampled by doubling, at most
    `upsample` times, while they stay within it. The smallest face found is therefore about
    80 px x (image long side / scanned long side). Landmarks always use the full-resolution image.
    """

    output_size: int = 256
    detect_max_side: int = 1024
    upsample: int = 2

    def __post_init__(self) -> None:
        if self.output_size < 16:
            raise ValueError(f"output_size {self.output_size} is too small for a face crop; use 256 for e4e")
        if self.detect_max_side < DLIB_MIN_FACE:
            raise ValueError(f"detect_max_side {self.detect_max_side} is under dlib's {DLIB_MIN_FACE}-px window")
        if self.upsample < 0:
            raise ValueError(f"upsample {self.upsample} must be 0 or more")


@dataclass
class AlignedFace:
    """One face: the FFHQ-aligned crop and where it came from in the original image.

    `box` is (x0, y0, x1, y1), half-open, clipped to the image; `landmarks` are dlib's 68 points (x, y) in original
    pixel coordinates; `quad` is the crop's corners TL, BL, BR, TR in the same coordinates; `alignment_error` is the
    mean distance of the crop's eye centres and mouth centre to `CANONICAL_POINTS`, as a fraction of the crop side
    (0.01 = 2.6 px at 256; lower is better); `score` is dlib's detection score (higher is more face-like);
    `frame_size` is the original image's (width, height), which the landmarks are positions in.
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    quad: np.ndarray
    alignment_error: float
    score: float
    frame_size: tuple[int, int] = (0, 0)


def quad_from_landmarks(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray,
                        mouth_right: np.ndarray) -> np.ndarray:
    """FFHQ's crop square from eye centres and mouth corners, (..., 2) each -> (..., 4, 2) corners TL, BL, BR, TR.

    Any landmark source can feed this; the square's orientation mixes the eye line with the normal of the
    eye-to-mouth line, so a single badly placed eye tilts the crop less.
    """
    eye_left, eye_right, mouth_left, mouth_right = (
        np.asarray(p, dtype=np.float64) for p in (eye_left, eye_right, mouth_left, mouth_right))
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (mouth_left + mouth_right) * 0.5 - eye_avg
    x = eye_to_eye - _rot90(eye_to_mouth)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    half_side = np.maximum(np.linalg.norm(eye_to_eye, axis=-1) * 2.0, np.linalg.norm(eye_to_mouth, axis=-1) * 1.8)
    x = x * half_side[..., None]
    y = _rot90(x)
    centre = eye_avg + eye_to_mouth * 0.1
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y], axis=-2)


def quad_from_68(landmarks: np.ndarray) -> np.ndarray:
    """The crop square from dlib 68-point landmarks, (68, 2) or (N, 68, 2) -> (4, 2) or (N, 4, 2)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape[-2:] != (68, 2):
        raise ValueError(f"68-point landmarks must have shape (68, 2) or (N, 68, 2), not {landmarks.shape}")
    return quad_from_landmarks(landmarks[..., EYE_LEFT, :].mean(axis=-2), landmarks[..., EYE_RIGHT, :].mean(axis=-2),
                               landmarks[..., MOUTH_LEFT, :], landmarks[..., MOUTH_RIGHT, :])


def warp_quad(image: np.ndarray, quad: np.ndarray, output_size: int = 256) -> np.ndarray:
    """Resample the square `quad` (TL, BL, BR, TR in pixel coordinates) of `image` to output_size² as e4e does.

    Shrink (LANCZOS, integer factor), crop with a border, pad with reflection + blur + median fade where the quad
    leaves the image, then a bilinear QUAD warp; pixel centres are at integer coordinates, hence `quad + 0.5` for
    Pillow, whose pixel centres are at half-integers. The side length is read off the top edge.
    """
    image = check_rgb(image)
    quad = np.array(quad, dtype=np.float64).reshape(4, 2)
    height, width = image.shape[:2]
    qsize = float(np.hypot(*(quad[3] - quad[0])))

    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        width, height = int(np.rint(width / shrink)), int(np.rint(height / shrink))
        quad /= shrink
        qsize /= shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (max(int(np.floor(quad[:, 0].min())) - border, 0), max(int(np.floor(quad[:, 1].min())) - border, 0),
            min(int(np.ceil(quad[:, 0].max())) + border, width), min(int(np.ceil(quad[:, 1].max())) + border, height))
    if crop[2] - crop[0] >= width and crop[3] - crop[1] >= height:
        crop = (0, 0, width, height)
    picture = _shrunk_crop(Image.fromarray(image), shrink, (width, height), crop)
    quad -= crop[:2]

    pad = _pad_widths(quad, picture.size, border)
    if max(pad) > border - 4:
        pad = tuple(max(p, int(np.rint(qsize * 0.3))) for p in pad)
        picture = Image.fromarray(_pad_and_fade(np.asarray(picture), pad, qsize))
        quad += pad[:2]

    warped = picture.transform((output_size, output_size), Image.Transform.QUAD, tuple((quad + 0.5).flatten()),
                               Image.Resampling.BILINEAR)
    return np.asarray(warped, dtype=np.uint8)


def alignment_error(landmarks: np.ndarray, quad: np.ndarray) -> float:
    """Mean distance of the crop's eye centres and mouth centre to `CANONICAL_POINTS`, in crop sides."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    found = np.stack([landmarks[EYE_LEFT].mean(axis=0), landmarks[EYE_RIGHT].mean(axis=0),
                      (landmarks[MOUTH_LEFT] + landmarks[MOUTH_RIGHT]) * 0.5])
    return float(np.linalg.norm(_crop_fractions(found, quad) - CANONICAL_POINTS, axis=1).mean())


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur an H×W×C float image over its two spatial axes exactly as scipy.ndimage.gaussian_filter(mode="reflect").

    Separable: a 1-D pass down the rows, then one along the columns of the transposed image. BLAS runs on one
    thread here: the products are small, and on a busy 2-core machine threaded OpenBLAS made them 4-8x slower.
    """
    image = np.asarray(image, dtype=np.float32)
    height, width, channels = image.shape
    with _BLAS.limit(limits=1, user_api="blas"):
        rows = _blur_axis0(image.reshape(height, width * channels), sigma).reshape(height, width, channels)
        columns = _blur_axis0(rows.transpose(1, 0, 2).reshape(width, height * channels), sigma)
    return columns.reshape(width, height, channels).transpose(1, 0, 2)


class FaceAligner:
    """Detects faces with dlib, predicts 68 landmarks and returns FFHQ-aligned crops; loads both models once."""

    def __init__(self, config: AlignConfig | None = None, predictor_path: Path | None = None):
        self.config = config or AlignConfig()
        self.detector = dlib.get_frontal_face_detector()
        # dlib's HOG detector keeps its scan buffers in the object and releases the GIL while it scans, so two
        # threads must not scan at once; the shape predictor is read-only and needs no lock.
        self._detect_lock = threading.Lock()
        self.predictor = dlib.shape_predictor(str(predictor_path or resolve(LANDMARKS_WEIGHTS, download=False)))

    def align(self, image: np.ndarray, name: str = "image") -> list[AlignedFace]:
        """Every face in one RGB uint8 image, largest box first; NoFaceError when there is none."""
        image = check_rgb(image, name)
        height, width = image.shape[:2]
        faces = []
        for (x0, y0, x1, y1), score in self.detect(image, name):
            shape = self.predictor(image, dlib.rectangle(int(round(x0)), int(round(y0)),
                                                         int(round(x1)) - 1, int(round(y1)) - 1))
            landmarks = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            quad = quad_from_68(landmarks)
            box = (max(int(round(x0)), 0), max(int(round(y0)), 0),
                   min(int(round(x1)), width), min(int(round(y1)), height))
            faces.append(AlignedFace(image=warp_quad(image, quad, self.config.output_size), box=box,
                                     landmarks=landmarks, quad=quad, alignment_error=alignment_error(landmarks, quad),
                                     score=score, frame_size=(width, height)))
        return faces

    def align_batch(self, images: Sequence[np.ndarray],
                    names: Sequence[str] | None = None) -> list[list[AlignedFace] | NoFaceError]:
        """Align many images; an image without a face yields its NoFaceError in place so a batch never aborts."""
        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        if len(names) != len(images):
            raise ValueError(f"align_batch got {len(images)} images but {len(names)} names")
        results: list[list[AlignedFace] | NoFaceError] = []
        for image, name in zip(images, names):
            try:
                results.append(self.align(image, name))
            except NoFaceError as err:
                results.append(err)
        return results

    def detect(self, image: np.ndarray, name: str = "image") -> list[tuple[tuple[float, float, float, float], float]]:
        """Face boxes (x0, y0, x1, y1, half-open, original pixels) with scores, largest first; NoFaceError when
        there is none."""
        height, width = image.shape[:2]
        long_side = max(height, width)
        max_side = self.config.detect_max_side
        scanned = image
        if long_side > max_side:
            factor = max_side / long_side
            size = (max(int(round(width * factor)), 1), max(int(round(height * factor)), 1))
            scanned = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        passes = 0
        while passes < self.config.upsample and max(scanned.shape[:2]) * 2 ** (passes + 1) <= max_side:
            passes += 1
        with self._detect_lock:
            rects, scores, _ = self.detector.run(scanned, passes, 0.0)
        if not rects:
            smallest = DLIB_MIN_FACE * long_side / (max(scanned.shape[:2]) * 2 ** passes)
            raise NoFaceError(name, f"no face found (dlib frontal-face detector, faces from ~{smallest:.0f} px); "
                                    "use a frontal photo with a larger face or raise detect_max_side")
        scale_x, scale_y = width / scanned.shape[1], height / scanned.shape[0]
        boxes = [((r.left() * scale_x, r.top() * scale_y, (r.right() + 1) * scale_x, (r.bottom() + 1) * scale_y),
                  float(s)) for r, s in zip(rects, scores)]
        return sorted(boxes, key=lambda b: -(b[0][2] - b[0][0]) * (b[0][3] - b[0][1]))


def _rot90(v: np.ndarray) -> np.ndarray:
    """(x, y) -> (−y, x): a quarter turn that maps 'right' to 'down' in image coordinates."""
    return np.stack([-v[..., 1], v[..., 0]], axis=-1)


def _shrunk_crop(picture: Image.Image, shrink: int, size: tuple[int, int], crop: tuple[int, int, int, int]
                 ) -> Image.Image:
    """The crop of the image shrunk to `size`, resampling only the cropped region.

    Pillow's `box` argument keeps the LANCZOS weights of the full-image resize, so this equals resizing everything
    and then cropping (e4e's order; floating-point rounding moves rare pixels by one grey level) while costing
    only the crop: a 12-megapixel photo is not shrunk whole.
    """
    if shrink <= 1:
        return picture if crop == (0, 0, *picture.size) else picture.crop(crop)
    scale_x, scale_y = picture.width / size[0], picture.height / size[1]
    box = (crop[0] * scale_x, crop[1] * scale_y, crop[2] * scale_x, crop[3] * scale_y)
    return picture.resize((crop[2] - crop[0], crop[3] - crop[1]), Image.Resampling.LANCZOS, box=box)


def _pad_widths(quad: np.ndarray, size: tuple[int, int], border: int) -> tuple[int, int, int, int]:
    """How far (left, top, right, bottom) the quad plus its border reaches outside the picture."""
    return (max(border - int(np.floor(quad[:, 0].min())), 0), max(border - int(np.floor(quad[:, 1].min())), 0),
            max(int(np.ceil(quad[:, 0].max())) - size[0] + border, 0),
            max(int(np.ceil(quad[:, 1].max())) - size[1] + border, 0))


def _pad_and_fade(pixels: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Reflect-pad, blur the padded band and fade it to the median colour, so the warp sees no hard edges."""
    left, top, right, bottom = pad
    img = np.pad(pixels.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    height, width = img.shape[:2]
    y = np.arange(height, dtype=np.float32)[:, None, None]
    x = np.arange(width, dtype=np.float32)[None, :, None]
    mask = np.maximum(1.0 - np.minimum(x / left, (width - 1 - x) / right),
                      1.0 - np.minimum(y / top, (height - 1 - y) / bottom))
    img += (gaussian_blur(img, qsize * 0.02) - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _blur_axis0(values: np.ndarray, sigma: float) -> np.ndarray:
    """scipy's 1-D Gaussian (radius int(4σ + 0.5), 'reflect' = d c b a | a b c d) down the rows of a 2-D array.

    Each block of output rows is one BLAS product of a small weight matrix (kernel taps, reflections folded in)
    with the input rows it reaches; blocks of 2·radius rows keep the wasted zero products to about half.
    """
    size = values.shape[0]
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    block = max(2 * radius, 32)
    out = np.empty_like(values)
    for start in range(0, size, block):
        stop = min(start + block, size)
        source = (np.arange(start, stop)[:, None] + offsets[None, :]) % (2 * size)
        source = np.where(source >= size, 2 * size - 1 - source, source)
        low, high = int(source.min()), int(source.max()) + 1
        flat = (np.arange(stop - start)[:, None] * (high - low) + source - low).ravel()
        weights = np.bincount(flat, weights=np.tile(kernel, stop - start), minlength=(stop - start) * (high - low))
        out[start:stop] = weights.reshape(stop - start, high - low).astype(np.float32) @ values[low:high]
    return out


def _crop_fractions(points: np.ndarray, quad: np.ndarray, newton_steps: int = 4) -> np.ndarray:
    """Solve TL + u·e1 + v·e2 + uv·e3 = p for (u, v), the point's position in the crop as fractions of its side."""
    points = np.asarray(points, dtype=np.float64)
    top_left, bottom_left, bottom_right, top_right = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    e1, e2 = top_right - top_left, bottom_left - top_left
    e3 = bottom_right - bottom_left - top_right + top_left
    offset = points.reshape(-1, 2) - top_left
    uv = np.linalg.solve(np.stack([e1, e2], axis=1), offset.T).T
    for _ in range(newton_steps):
        u, v = uv[:, :1], uv[:, 1:]
        residual = u * e1 + v * e2 + u * v * e3 - offset
        jacobian = np.stack([e1 + v * e3, e2 + u * e3], axis=-1)
        uv = uv - np.linalg.solve(jacobian, residual[..., None])[..., 0]
    return uv.reshape(points.shape)
