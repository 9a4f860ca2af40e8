"""Features computed once and kept on disk, so the feature candidates of the source-grouped CV fit in seconds.

Per image and per *view* (a test condition — as stored, JPEG q75, 0.5× downscale — or a training view drawn by
a processing recipe) the cache holds the face's 68 dlib landmarks and the frame size (largest face; when dlib's
detector finds none, the predictor is run on the whole frame and `detected` says so), the geometry features
computed from them, the colour statistics and the spectral DCT features. Landmark detection is the slow part
(~0.3 s per picture on one core), so the job is resumable: images are processed in chunks, each chunk written
atomically, and a restart computes only the missing chunks.

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
from core.errors import InputError
from core.images import load_image
from detector import colour_stats, face_geometry
from detector.spectral import TEST_CONDITIONS, SpectralSpec, image_features

CHUNK = 32
# The HOG detector scans at most 512 px (the pipeline's default is 1024): ~4× less work on the 1024-px faces, whose
# faces are far above the 160 px this still finds; the landmarks are predicted at full resolution either way.
DETECT_MAX_SIDE = 512
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
    labels: tuple[str, ...] = ()


def condition_views() -> ViewSet:
    """The three test conditions of the CV protocol, in TEST_CONDITIONS order."""
    return ViewSet("conditions", "test-conditions:" + ",".join(TEST_CONDITIONS), len(TEST_CONDITIONS),
                   lambda _, pixels: [perturb(pixels) for perturb in TEST_CONDITIONS.values()],
                   tuple(TEST_CONDITIONS))


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

    def compute(self, landmarks: LandmarkFinder, progress: Callable = iter) -> None:
        """Compute every missing chunk (a restart resumes where the last run stopped)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / "key.json", {**self._identity, "files": len(self.files)})
        for rows in progress(self.missing()):
            arrays = self._chunk(rows, landmarks)
            with atomic_path(self._chunk_path(rows)) as temp, open(temp, "wb") as handle:
                np.savez(handle, **arrays)

    def _chunk(self, rows: range, landmarks: LandmarkFinder) -> dict[str, np.ndarray]:
        found = {"landmarks": [], "frame": [], "detected": [], "colour": [], "spectral": []}
        for index in rows:
            pixels = load_image(self.files[index]).pixels
            pictures = self.views.make(index, pixels)
            if len(pictures) != self.views.count:
                raise ValueError(f"view set {self.views.name} made {len(pictures)} views, expected {self.views.count}")
            for picture in pictures:
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
        """(N, views, ...) arrays: landmarks, frame, detected, and the features of every kind (geometry from the
        stored landmarks, so a new geometry version needs no new landmark pass)."""
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
        arrays["geometry"] = np.array([[face_geometry.geometry_features(points, tuple(frame))
                                        for points, frame in zip(image_points, image_frames)]
                                       for image_points, image_frames in zip(arrays["landmarks"], arrays["frame"])],
                                      dtype=np.float32).reshape(*arrays["landmarks"].shape[:2], -1)
        return arrays


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--out", type=Path, required=True, help="cache root (outside the repository)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from encoder.align import AlignConfig, FaceAligner
    from runners.evaluate_sources import list_face_set

    args = parse_args(argv)
    try:
        samples = list_face_set(args.data)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finder = dlib_landmarks(FaceAligner(AlignConfig(detect_max_side=DETECT_MAX_SIDE)))
    for views in view_sets():
        cache = FeatureCache(args.out, [s.path for s in samples], views)
        print(f"{views.name}: {len(cache.missing())} of {len(cache.chunks())} chunks to compute in {cache.folder}",
              flush=True)
        cache.compute(finder, lambda items: tqdm(items, desc=views.name, unit="chunk", mininterval=30))
    return 0


def view_sets() -> list[ViewSet]:
    """Every view set the CV candidates read: the test conditions (and the recipe's training views)."""
    return [condition_views()]


if __name__ == "__main__":
    sys.exit(main())
