"""Features computed once and kept on disk, so the feature candidates of the source-grouped CV fit in seconds.

Per image and per *view* the cache holds the colour statistics and the spectral DCT features, and for the test
conditions (as stored, JPEG q75, 0.5× downscale) also the face's 68 dlib landmarks and the frame size, from which
the geometry features are computed at load time. The face is the largest one dlib's HOG detector finds in the
image as stored (when it finds none, the predictor runs on the whole frame and `detected` says so); under JPEG
q75 and the downscale the landmarks are predicted again on the changed pixels inside the same box (scaled), so
the condition figures measure what the codec does to the landmarks, not the detector's box jitter. Landmark
detection is the slow part, so the job is resumable: every image is one small file, written atomically; a
restart computes only the missing ones, several single-thread workers can share a cache, and images are
computed in a priority order (a few per source first) so that a partial cache already serves a
`--per-source` run.

Training views of the codec-blind recipe (detector.codec_blind) are whole-image views: the recipe's draw (its
history-erasing downscale, its codec draw from the real photos' JPEG qualities, its flip) applied to the whole
picture, without the recipe's crop window, because these cues read the whole image (colour) or the whole frame
(geometry). No landmarks are detected on them: geometry is codec-blind by construction (tests/detector:
unchanged by JPEG q75, scale-free), so a recipe view's geometry is its image's as-stored geometry, mirrored when
the draw flips — the CV candidates take it from the condition cache. Made-from-real fakes
(detector.made_from_real, seeded by file name) get the same draws as their real twin's views; their geometry is
their twin's.

Where a cache lives says what it holds: OUT/<view set>-<key>/<image>.npz, the key a hash of the view set's
fingerprint (the recipe's, for training views) and the feature versions, the image's name a hash of its class
folder and file name. A changed recipe or feature version therefore reads from a new folder instead of stale
features.

    nohup nice env OMP_NUM_THREADS=1 python -m runners.feature_cache ../shared/data/faces \
        --out /work/runs/cv/features > /work/runs/logs/features.log 2>&1 &
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.atomic import atomic_path, write_json_atomic
from core.datasets import LabelledImage
from core.errors import InputError
from core.images import load_image
from core.source_holdout import REAL
from detector import colour_stats, face_cues, face_geometry
from detector.codec_blind import ERASE_KERNELS, CodecBlindRecipe, Draw, draw_processing, recipe_fingerprint
from detector.fingerprint_data import downscale, jpeg_reencode
from detector.made_from_real import made_from_real_set
from detector.spectral import MIN_TEST_SIDE, TEST_CONDITIONS, image_features

# The HOG detector scans at most 512 px (the pipeline's default is 1024): ~4× less work on the 1024-px faces, whose
# faces are far above the 160 px this still finds; the landmarks are predicted at full resolution either way.
DETECT_MAX_SIDE = 512
RECIPE_VIEWS = 2
CACHES = ("conditions", "recipe", "made_from_real")
MIN_VIEW_SIDE = MIN_TEST_SIDE
FEATURE_VERSION = f"{face_cues.FEATURE_VERSION}+dlib68-largest-face-scan{DETECT_MAX_SIDE}"

@dataclass(frozen=True)
class ViewSet:
    """Which pictures of each image the cache holds: `count` views made by `make(name, pixels)` (name: the
    image's class folder and file name, which seeds any random draw); `fingerprint` names everything that decides
    them (a recipe's fingerprint and seed), so it is part of the cache key; `landmarks` says whether dlib runs."""

    name: str
    fingerprint: str
    count: int
    make: Callable[[str, np.ndarray], list[np.ndarray]]
    landmarks: bool = False


def condition_views() -> ViewSet:
    """The three test conditions of the CV protocol, in TEST_CONDITIONS order; the first is the image as stored."""
    return ViewSet("conditions", "test-conditions:" + ",".join(TEST_CONDITIONS), len(TEST_CONDITIONS),
                   lambda _, pixels: [perturb(pixels) for perturb in TEST_CONDITIONS.values()], landmarks=True)


def recipe_views(recipe: CodecBlindRecipe, count: int, seed: int = 0, made_from_real: bool = False) -> ViewSet:
    """`count` whole-image views per image under the recipe; with `made_from_real`, the views of each image's
    made-from-real twin under the very same draws (view v of image `name` is drawn from rng [seed, crc32(name),
    v], so a real photo and its twin share them)."""
    def make(name: str, pixels: np.ndarray) -> list[np.ndarray]:
        if made_from_real:
            pixels = made_from_real_set([pixels], [name])[0]
        stream = zlib.crc32(name.encode())
        return [whole_image_view(pixels, draw_processing(recipe, np.random.default_rng([seed, stream, view])))
                for view in range(count)]

    kind = "made-from-real" if made_from_real else "recipe"
    return ViewSet(kind, f"{kind}:{recipe_fingerprint(recipe)}:seed{seed}", count, make)


def whole_image_view(pixels: np.ndarray, draw: Draw) -> np.ndarray:
    """The recipe's draw on the whole picture: erase (downscale by its factor with its kernel, while the short
    side stays ≥ MIN_VIEW_SIDE), codec (JPEG at its quality, or lossless), flip."""
    if draw.erase_factor is not None and min(pixels.shape[:2]) / draw.erase_factor >= MIN_VIEW_SIDE:
        pixels = downscale(pixels, 1.0 / draw.erase_factor, ERASE_KERNELS[draw.kernel])
    if draw.quality is not None:
        pixels = jpeg_reencode(pixels, draw.quality)
    return np.ascontiguousarray(pixels[:, ::-1]) if draw.flip else pixels


class DlibLandmarks:
    """The largest face's 68 landmarks, found with encoder.align's dlib models (the pipeline's face finder).

    `find` detects (HOG) in the picture and predicts in the box found, or, without a face, in the whole frame;
    `predict` re-predicts in a known box, for the same picture re-encoded or resized.
    """

    def __init__(self, aligner):
        self.aligner = aligner

    def find(self, pixels: np.ndarray) -> tuple[np.ndarray, bool, tuple[float, float, float, float]]:
        from encoder.align import NoFaceError

        height, width = pixels.shape[:2]
        try:
            box = self.aligner.detect(pixels)[0][0]
            detected = True
        except NoFaceError:
            box, detected = (0.0, 0.0, float(width), float(height)), False
        return self.predict(pixels, box), detected, box

    def predict(self, pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        import dlib

        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.aligner.predictor(pixels, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def image_key(path: Path) -> str:
    """The file name of an image's entry: a hash of its class folder and file name."""
    return hashlib.sha256(f"{path.parent.name}/{path.name}".encode()).hexdigest()[:20]


class FeatureCache:
    """The on-disk features of one view set over a list of images (see the module docstring)."""

    def __init__(self, root: Path, files: Sequence[Path], views: ViewSet):
        self.files = [Path(f) for f in files]
        self.views = views
        self._identity = {"views": views.fingerprint, "count": views.count, "landmarks": views.landmarks,
                          "features": FEATURE_VERSION}
        self.key = hashlib.sha256(json.dumps(self._identity, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / f"{views.name}-{self.key}"

    def entry(self, path: Path) -> Path:
        return self.folder / f"{image_key(path)}.npz"

    def missing(self) -> list[Path]:
        return [path for path in self.files if not self.entry(path).is_file()]

    def compute(self, landmarks: DlibLandmarks | None = None, progress: Callable = iter, worker: int = 0,
                workers: int = 1) -> None:
        """Compute every missing image in list order (a restart resumes where the last run stopped). Worker w of
        n takes the images numbered w mod n in the whole list and computes those still missing: numbering the
        missing ones instead would let two workers started a moment apart take the same images."""
        if self.views.landmarks and landmarks is None:
            raise ValueError(f"view set {self.views.name} needs a landmark finder")
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / "key.json", self._identity)
        mine = set(self.files[worker::workers])
        for path in progress([path for path in self.missing() if path in mine]):
            arrays = self._entry(path, landmarks)
            with atomic_path(self.entry(path)) as temp, open(temp, "wb") as handle:
                np.savez(handle, **arrays)

    def _entry(self, path: Path, landmarks: DlibLandmarks | None) -> dict[str, np.ndarray]:
        pixels = load_image(path).pixels
        pictures = self.views.make(f"{path.parent.name}/{path.name}", pixels)
        if len(pictures) != self.views.count:
            raise ValueError(f"view set {self.views.name} made {len(pictures)} views, expected {self.views.count}")
        arrays = {"colour": np.stack([colour_stats.colour_features(p) for p in pictures]),
                  "spectral": np.concatenate([image_features([p], face_cues.SPECTRAL_SPEC) for p in pictures])}
        if self.views.landmarks:
            points, detected, box = landmarks.find(pictures[0])
            found = [points]
            for picture in pictures[1:]:
                scale = np.array([picture.shape[1] / pictures[0].shape[1], picture.shape[0] / pictures[0].shape[0]])
                found.append(landmarks.predict(picture, tuple((np.reshape(box, (2, 2)) * scale).ravel())))
            arrays.update({"landmarks": np.stack(found), "detected": np.array(detected),
                           "frame": np.array([(p.shape[1], p.shape[0]) for p in pictures])})
        return arrays

    def load(self) -> dict[str, np.ndarray]:
        """(N, views, ...) arrays in file order: colour and spectral features, and with landmarks the landmarks,
        frame, detected and the geometry features (computed from the stored landmarks here, so a new geometry
        version needs no new landmark pass)."""
        missing = self.missing()
        if missing:
            raise InputError(f"{self.folder}: {len(missing)} of {len(self.files)} images not computed yet "
                             f"(run python -m runners.feature_cache)")
        parts: dict[str, list[np.ndarray]] = {}
        for path in self.files:
            with np.load(self.entry(path), allow_pickle=False) as stored:
                for name in stored.files:
                    parts.setdefault(name, []).append(stored[name])
        arrays = {name: np.stack(values) for name, values in parts.items()}
        if "landmarks" in arrays:
            arrays["geometry"] = np.array([[face_geometry.geometry_features(points, tuple(frame))
                                            for points, frame in zip(image_points, frames)]
                                           for image_points, frames in zip(arrays["landmarks"], arrays["frame"])],
                                          dtype=np.float32)
        return arrays


def priority(samples: Sequence[LabelledImage]) -> list[LabelledImage]:
    """The samples with a few per source and class first (`cap_per_source` at 20, then 60), then the rest: a
    cache stopped early still serves a `--per-source` run of every source."""
    from runners.evaluate_sources import cap_per_source

    order: list[LabelledImage] = []
    for cap in (20, 60, None):
        seen = {s.path for s in order}
        order += [s for s in cap_per_source(list(samples), cap) if s.path not in seen]
    return order


def cv_caches(root: Path, samples: Sequence[LabelledImage], names: Sequence[str] = CACHES
              ) -> dict[str, FeatureCache]:
    """The caches the cue candidates read (those in `names`): the test conditions of every image, RECIPE_VIEWS
    recipe views of every image, and as many of each real photo's made-from-real twin. The recipe is fitted on
    every real photo of the face set (its JPEG quality distribution only: one cache serves all folds, and no
    label of a held-out image reaches a model through it, since every class gets the same draws)."""
    paths = [s.path for s in samples]
    reals = [s.path for s in samples if s.label == REAL]
    caches = {}
    if "conditions" in names:
        caches["conditions"] = FeatureCache(root, paths, condition_views())
    if {"recipe", "made_from_real"} & set(names):
        recipe = CodecBlindRecipe.fit(reals)
        caches["recipe"] = FeatureCache(root, paths, recipe_views(recipe, RECIPE_VIEWS))
        caches["made_from_real"] = FeatureCache(root, reals, recipe_views(recipe, RECIPE_VIEWS, made_from_real=True))
    return {name: caches[name] for name in names}


def cv_features(root: Path, samples: Sequence[LabelledImage], recipe: bool, made_from_real: bool,
                views_needed: bool = True) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None,
                                                    tuple[np.ndarray, dict[str, np.ndarray]] | None]:
    """What a cue candidate reads: the condition arrays, the recipe views (or None) and (twin index, arrays) of
    the made-from-real fakes (or None); an InputError names a cache that is not computed yet. Geometry, which
    takes its recipe and made-from-real rows from the condition cache, passes `views_needed=False` and gets
    empty view arrays."""
    names = ("conditions", *(("recipe",) if recipe and views_needed else ()),
             *(("made_from_real",) if made_from_real and views_needed else ()))
    caches = cv_caches(root, samples, names)
    twins = np.flatnonzero([s.label == REAL for s in samples])
    views = (caches["recipe"].load() if views_needed else {}) if recipe else None
    made = None
    if made_from_real:
        made = (twins, {}) if not views_needed else present_made_from_real(root, caches["made_from_real"], twins)
    return caches["conditions"].load(), views, made


def present_made_from_real(root: Path, cache: FeatureCache, twins: np.ndarray
                           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The made-from-real fakes computed so far (the decoders are slow on 1024-px photos; the priority order
    makes a partial cache a few twins per real source): their twins' indices and their view arrays."""
    done = [i for i, path in enumerate(cache.files) if cache.entry(path).is_file()]
    if not done:
        raise InputError(f"{cache.folder}: no made-from-real fake computed yet (run python -m runners.feature_cache)")
    print(f"made-from-real fakes of {len(done)} of {len(cache.files)} real photos", file=sys.stderr)
    return twins[done], FeatureCache(root, [cache.files[i] for i in done], cache.views).load()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--out", type=Path, required=True, help="cache root (outside the repository)")
    parser.add_argument("--caches", nargs="+", choices=CACHES, default=list(CACHES),
                        help="which caches to compute (default all)")
    parser.add_argument("--worker", default="0/1", help="w/n: this job computes the images numbered w mod n")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from encoder.align import AlignConfig, FaceAligner
    from runners.evaluate_sources import list_face_set

    args = parse_args(argv)
    worker, workers = (int(part) for part in args.worker.split("/"))
    try:
        samples = priority(list_face_set(args.data))
        caches = cv_caches(args.out, samples, args.caches)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finder = DlibLandmarks(FaceAligner(AlignConfig(detect_max_side=DETECT_MAX_SIDE)))
    for name, cache in caches.items():
        print(f"{name}: {len(cache.missing())} of {len(cache.files)} images to compute in {cache.folder}",
              flush=True)
        cache.compute(finder, lambda items: tqdm(items, desc=f"{name} {args.worker}", unit="img", mininterval=30),
                      worker, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
