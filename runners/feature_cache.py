"""Features computed once and kept on disk, so the feature candidates of the source-grouped CV fit in seconds.

Per image and per *view* the cache holds the colour statistics and the spectral DCT features, and for the test
conditions (as stored, JPEG q75, 0.5× downscale) also the face's 68 dlib landmarks and the frame size (largest
face; when dlib's detector finds none, the predictor is run on the whole frame and `detected` says so), from
which the geometry features are computed at load time. Landmark detection is the slow part (~0.5 s per picture
on one loaded core), so the job is resumable: images are processed in chunks, each chunk written atomically, and
a restart computes only the missing chunks.

Training views of the codec-blind recipe (detector.codec_blind) are whole-image views: the recipe's draw (its
history-erasing downscale, its codec draw from the real photos' JPEG qualities, its flip) applied to the whole
picture, without the recipe's crop window, because these cues read the whole image (colour) or the whole frame
(geometry). No landmarks are detected on them: geometry is codec-blind by construction (tests/detector:
unchanged by JPEG q75, scale-free), so a recipe view's geometry is its image's as-stored geometry, mirrored when
the draw flips — the CV candidates take it from the condition cache. Made-from-real fakes
(detector.made_from_real, seeded by file name) get the same draw as their real twin's view; their geometry is
their twin's.

Where a cache lives says what it holds: OUT/<view set>-<key>/, the key a hash of the view set's fingerprint
(the recipe's, for training views), the feature versions and the file list. A changed recipe, feature or face
set therefore reads from a new folder instead of stale features.

    nohup nice env OMP_NUM_THREADS=1 python -m runners.feature_cache ../shared/data/faces \
        --out /work/runs/cv/features > /work/runs/logs/features.log 2>&1 &
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_path, write_json_atomic
from core.datasets import LabelledImage
from core.errors import InputError
from core.images import load_image
from core.source_holdout import REAL
from detector import colour_stats, face_geometry
from detector.codec_blind import ERASE_KERNELS, CodecBlindRecipe, Draw, draw_processing, recipe_fingerprint
from detector.fingerprint_data import downscale, jpeg_reencode
from detector.made_from_real import made_from_real_set
from detector.spectral import MIN_TEST_SIDE, TEST_CONDITIONS, SpectralSpec, image_features

CHUNK = 32
# The HOG detector scans at most 512 px (the pipeline's default is 1024): ~4× less work on the 1024-px faces, whose
# faces are far above the 160 px this still finds; the landmarks are predicted at full resolution either way.
DETECT_MAX_SIDE = 512
RECIPE_VIEWS = 2
CACHES = ("conditions", "recipe", "made_from_real")
MIN_VIEW_SIDE = MIN_TEST_SIDE
SPECTRAL_SPEC = SpectralSpec()
FEATURE_VERSION = (f"{face_geometry.FEATURE_VERSION}+{colour_stats.FEATURE_VERSION}"
                   f"+spectral-{json.dumps(asdict(SPECTRAL_SPEC), sort_keys=True)}+dlib68-largest-face-scan{DETECT_MAX_SIDE}")
KINDS = ("geometry", "colour", "spectral")

LandmarkFinder = Callable[[np.ndarray], tuple[np.ndarray, bool]]
ViewFn = Callable[[int, np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class ViewSet:
    """Which pictures of each image the cache holds: `count` views made by `make(index, pixels)`; `fingerprint`
    names everything that decides them (a recipe's fingerprint and seed), so it is part of the cache key."""

    name: str
    fingerprint: str
    count: int
    make: ViewFn


def condition_views() -> ViewSet:
    """The three test conditions of the CV protocol, in TEST_CONDITIONS order."""
    return ViewSet("conditions", "test-conditions:" + ",".join(TEST_CONDITIONS), len(TEST_CONDITIONS),
                   lambda _, pixels: [perturb(pixels) for perturb in TEST_CONDITIONS.values()])


def dlib_landmarks(aligner) -> LandmarkFinder:
    """The largest face's landmarks from an encoder.align.FaceAligner (the pipeline's FaceFinder's detector);
    without a detected face, the predictor's landmarks in the whole frame, flagged as not detected."""
    import dlib

    from encoder.align import NoFaceError

    def find(pixels: np.ndarray) -> tuple[np.ndarray, bool]:
        try:
            return aligner.align(pixels)[0].landmarks, True
        except NoFaceError:
            height, width = pixels.shape[:2]
            shape = aligner.predictor(pixels, dlib.rectangle(0, 0, width - 1, height - 1))
            return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32), False

    return find


def recipe_views(recipe: CodecBlindRecipe, count: int, seed: int = 0, made_from_real: bool = False) -> ViewSet:
    """`count` whole-image views per image under the recipe; with `made_from_real`, the views of each image's
    made-from-real twin under the very same draws (view v of image i is drawn from rng [seed, i, v])."""
    def make(index: int, pixels: np.ndarray) -> list[np.ndarray]:
        if made_from_real:
            pixels = made_from_real_set([pixels], [f"feature-cache-{index}"])[0]
        return [whole_image_view(pixels, draw_processing(recipe, np.random.default_rng([seed, index, view])))
                for view in range(count)]

    name = "made-from-real" if made_from_real else "recipe"
    return ViewSet(name, f"{name}:{recipe_fingerprint(recipe)}:seed{seed}", count, make)


def whole_image_view(pixels: np.ndarray, draw: Draw) -> np.ndarray:
    """The recipe's draw on the whole picture: erase (downscale by its factor with its kernel, while the short
    side stays ≥ MIN_VIEW_SIDE), codec (JPEG at its quality, or lossless), flip."""
    if draw.erase_factor is not None and min(pixels.shape[:2]) / draw.erase_factor >= MIN_VIEW_SIDE:
        pixels = downscale(pixels, 1.0 / draw.erase_factor, ERASE_KERNELS[draw.kernel])
    if draw.quality is not None:
        pixels = jpeg_reencode(pixels, draw.quality)
    return np.ascontiguousarray(pixels[:, ::-1]) if draw.flip else pixels


class FeatureCache:
    """The on-disk features of one view set over one file list (see the module docstring)."""

    def __init__(self, root: Path, files: Sequence[Path], views: ViewSet):
        self.files = [Path(f) for f in files]
        self.views = views
        identity = {"views": views.fingerprint, "count": views.count, "features": FEATURE_VERSION,
                    "files": [f"{f.parent.name}/{f.name}" for f in self.files]}
        self.key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / f"{views.name}-{self.key}"
        self._identity = identity

    def chunks(self) -> list[range]:
        return [range(start, min(start + CHUNK, len(self.files))) for start in range(0, len(self.files), CHUNK)]

    def _chunk_path(self, rows: range) -> Path:
        return self.folder / f"chunk-{rows.start:06d}.npz"

    def missing(self) -> list[range]:
        return [rows for rows in self.chunks() if not self._chunk_path(rows).is_file()]

    def compute(self, landmarks: LandmarkFinder | None, progress: Callable = iter, worker: int = 0,
                workers: int = 1) -> None:
        """Compute every missing chunk (a restart resumes where the last run stopped); without a landmark finder
        the chunks hold colour and spectral features only. Worker w of n takes the chunks numbered w mod n, so
        n single-thread jobs can share one cache."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / "key.json", {**self._identity, "files": len(self.files)})
        mine = [rows for rows in self.missing() if (rows.start // CHUNK) % workers == worker]
        for rows in progress(mine):
            arrays = self._chunk(rows, landmarks)
            with atomic_path(self._chunk_path(rows)) as temp, open(temp, "wb") as handle:
                np.savez(handle, **arrays)

    def _chunk(self, rows: range, landmarks: LandmarkFinder | None) -> dict[str, np.ndarray]:
        found = {"colour": [], "spectral": []}
        if landmarks is not None:
            found.update({"landmarks": [], "frame": [], "detected": []})
        for index in rows:
            pixels = load_image(self.files[index]).pixels
            pictures = self.views.make(index, pixels)
            if len(pictures) != self.views.count:
                raise ValueError(f"view set {self.views.name} made {len(pictures)} views, expected {self.views.count}")
            for picture in pictures:
                if landmarks is not None:
                    points, detected = landmarks(picture)
                    found["landmarks"].append(points)
                    found["frame"].append((picture.shape[1], picture.shape[0]))
                    found["detected"].append(detected)
                found["colour"].append(colour_stats.colour_features(picture))
                found["spectral"].append(image_features([picture], SPECTRAL_SPEC)[0])
        shape = (len(rows), self.views.count)
        return {name: np.asarray(values).reshape(*shape, *np.asarray(values[0]).shape)
                for name, values in found.items()}

    def load(self) -> dict[str, np.ndarray]:
        """(N, views, ...) arrays: colour and spectral features, and where landmarks were found, the landmarks,
        frame, detected and the geometry features (computed from the stored landmarks here, so a new geometry
        version needs no new landmark pass)."""
        missing = self.missing()
        if missing:
            raise InputError(f"{self.folder}: {len(missing)} of {len(self.chunks())} chunks not computed yet "
                             f"(run python -m runners.feature_cache)")
        parts: dict[str, list[np.ndarray]] = {}
        for rows in self.chunks():
            with np.load(self._chunk_path(rows), allow_pickle=False) as stored:
                for name in stored.files:
                    parts.setdefault(name, []).append(stored[name])
        arrays = {name: np.concatenate(values) for name, values in parts.items()}
        if "landmarks" not in arrays:
            return arrays
        arrays["geometry"] = np.array([[face_geometry.geometry_features(points, tuple(frame))
                                        for points, frame in zip(image_points, image_frames)]
                                       for image_points, image_frames in zip(arrays["landmarks"], arrays["frame"])],
                                      dtype=np.float32).reshape(*arrays["landmarks"].shape[:2], -1)
        return arrays


def cv_caches(root: Path, samples: Sequence[LabelledImage]) -> dict[str, FeatureCache]:
    """The caches the cue candidates read: the test conditions of every image, RECIPE_VIEWS recipe views of every
    image, and as many of each real photo's made-from-real twin. The recipe is fitted on every real photo of the
    face set (its JPEG quality distribution only: one cache serves all folds; no label of a held-out image
    reaches a model through it, since every class gets the same draws)."""
    paths = [s.path for s in samples]
    reals = [s.path for s in samples if s.label == REAL]
    recipe = CodecBlindRecipe.fit(reals)
    return {"conditions": FeatureCache(root, paths, condition_views()),
            "recipe": FeatureCache(root, paths, recipe_views(recipe, RECIPE_VIEWS)),
            "made_from_real": FeatureCache(root, reals, recipe_views(recipe, RECIPE_VIEWS, made_from_real=True))}


def cv_features(root: Path, samples: Sequence[LabelledImage], recipe: bool, made_from_real: bool
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None,
                           tuple[np.ndarray, dict[str, np.ndarray]] | None]:
    """What a cue candidate reads: the condition arrays, the recipe views (or None) and (twin index, arrays) of
    the made-from-real fakes (or None); an InputError names a cache that is not computed yet."""
    caches = cv_caches(root, samples)
    twins = np.flatnonzero([s.label == REAL for s in samples])
    return (caches["conditions"].load(), caches["recipe"].load() if recipe else None,
            (twins, caches["made_from_real"].load()) if made_from_real else None)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--out", type=Path, required=True, help="cache root (outside the repository)")
    parser.add_argument("--caches", nargs="+", choices=CACHES, default=list(CACHES),
                        help="which caches to compute (default all)")
    parser.add_argument("--worker", default="0/1", help="w/n: this job computes the chunks numbered w mod n")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from encoder.align import AlignConfig, FaceAligner
    from runners.evaluate_sources import list_face_set

    args = parse_args(argv)
    try:
        samples = list_face_set(args.data)
        caches = cv_caches(args.out, samples)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    worker, workers = (int(part) for part in args.worker.split("/"))
    finder = dlib_landmarks(FaceAligner(AlignConfig(detect_max_side=DETECT_MAX_SIDE)))
    for name in args.caches:
        cache = caches[name]
        print(f"{name}: {len(cache.missing())} of {len(cache.chunks())} chunks to compute in {cache.folder}",
              flush=True)
        cache.compute(finder if name == "conditions" else None,
                      lambda items: tqdm(items, desc=f"{name} {args.worker}", unit="chunk", mininterval=30),
                      worker, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
