"""Building latent shards from labelled images: decode, align, augment, encode, write (format: latent_shards).

Every image is decoded by core.images, its largest face aligned, K augmented copies made (attribution.resolution;
each draw seeded by (seed, image, copy)) and encoded in fixed-size batches. Shard i always holds the same slice
of the sorted input list, so a re-run skips the shards on disk and writes byte-identical ones for the rest.

This package may not import the encoder, so the caller passes the face aligner (a picklable factory, since
alignment runs in worker processes: dlib holds the GIL while it detects, so threads would not run in parallel) and
the encoder (a function from aligned faces to latents); scripts/extract_latents.py wires the real ones.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from attribution.latent_shards import FAILURE_FIELDS, FAILURES_NAME, MANIFEST_NAME, read_manifest, shard_name, \
    write_shard
from attribution.resolution import ResolutionAugmentConfig, augment_face
from core.atomic import write_json_atomic
from core.datasets import LabelledImage
from core.images import ImageError, load_image
from attribution.workers import exit_with_parent

ROW_META = ("labels", "groups", "paths", "sha256", "resolutions", "jpeg_qualities", "alignment_error")


class AlignedFaceLike(Protocol):
    image: np.ndarray
    alignment_error: float


class Aligner(Protocol):
    def align(self, image: np.ndarray, name: str) -> Sequence[AlignedFaceLike]:
        """Faces of one image, the largest first; raises one of the caller's skip errors when there is none."""


@dataclass(frozen=True)
class ExtractionSettings:
    """How images become shard rows; every field changes the latents, so all are recorded in the manifest."""

    augment: ResolutionAugmentConfig
    copies: int = 4
    seed: int = 0
    batch_size: int = 8
    shard_size: int = 128
    latent_dtype: str = "float16"


@dataclass
class ImageResult:
    """What one image contributes to a shard: K augmented faces, or the reason it gave none."""

    faces: np.ndarray | None = None
    resolutions: list[int] | None = None
    jpeg_qualities: list[int] | None = None
    sha256: str = ""
    alignment_error: float = 0.0
    failure_kind: str = ""
    failure_reason: str = ""


_WORKER: dict[str, Any] = {}


def _init_worker(aligner_factory: Callable[[], Aligner], settings: ExtractionSettings,
                 skip_errors: tuple[type[Exception], ...], parent_pid: int | None = None) -> None:
    """Per-process state: the aligner is built once in each process that uses it. A pool worker exits when its
    parent dies (kill -9 included), so an interrupted extraction leaves no 450 MB orphans."""
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    _WORKER.update(aligner=aligner_factory(), settings=settings, skip=(ImageError, *skip_errors))


def _prepare_image(index: int, item: LabelledImage) -> ImageResult:
    """Decode, align and augment one image; a pure function of (index, file, settings), whichever process runs it."""
    settings: ExtractionSettings = _WORKER["settings"]
    try:
        loaded = load_image(item.path, name=item.name)
        face = _WORKER["aligner"].align(loaded.pixels, item.name)[0]
    except _WORKER["skip"] as err:
        return ImageResult(failure_kind=type(err).__name__, failure_reason=str(err))
    copies, drawn = augment_face(face.image, settings.augment, settings.seed, index, settings.copies)
    return ImageResult(faces=np.stack(copies), resolutions=[a.resolution for a in drawn],
                       jpeg_qualities=[a.jpeg_quality or 0 for a in drawn], sha256=loaded.sha256,
                       alignment_error=face.alignment_error)


def shard_slices(count: int, shard_size: int) -> list[range]:
    """The rows of the sorted input list that each shard holds."""
    return [range(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]


def extract_shards(items: list[LabelledImage], out: Path, settings: ExtractionSettings,
                   aligner_factory: Callable[[], Aligner], encode: Callable[[list[np.ndarray]], np.ndarray],
                   latent_shape: tuple[int, int], skip_errors: tuple[type[Exception], ...] = (), workers: int = 1,
                   stop_after: int | None = None, progress: bool = True,
                   remote: Callable[[list[int]], Iterable[dict[str, np.ndarray]]] | None = None) -> bool:
    """Write every shard not yet in `out`, in order; False when `stop_after` new shards ended the run early.

    With workers > 1 the next shard's images are aligned in a process pool while this shard is being encoded.
    Images that fail with ImageError or one of `skip_errors` are recorded in the shard as failures.
    `remote`, when given, builds the shards elsewhere (a batch runner's `ShardBuilder`s): it takes the indices of
    the shards to build and yields them in that order; they are written here as the local ones are.
    """
    slices = shard_slices(len(items), settings.shard_size)
    todo = [i for i in range(len(slices)) if not (out / shard_name(i)).is_file()]
    if remote is not None:
        return _write_remote_shards(out, todo, slices, len(items), remote, stop_after, progress)
    worker_args = (aligner_factory, settings, skip_errors)
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(*worker_args, os.getpid())) \
        if workers > 1 else None
    if pool is None:
        _init_worker(*worker_args)
    pending: dict[int, list[Future]] = {}
    done = len(items) - sum(len(slices[i]) for i in todo)
    with tqdm(total=len(items), unit="img", desc="extract", initial=done, disable=not progress) as bar:
        try:
            for position, index in enumerate(todo):
                if stop_after is not None and position >= stop_after:
                    return False
                if pool is not None:
                    for ahead in todo[position:position + 2]:
                        if ahead not in pending:
                            pending[ahead] = [pool.submit(_prepare_image, i, items[i]) for i in slices[ahead]]
                    results = (future.result() for future in pending.pop(index))
                else:
                    results = (_prepare_image(i, items[i]) for i in slices[index])
                rows = [items[i] for i in slices[index]]
                shard = _build_shard(rows, results, encode, latent_shape, settings, bar.update)
                write_shard(out / shard_name(index), shard)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return True


def _write_remote_shards(out: Path, todo: list[int], slices: list[range], total: int,
                         remote: Callable[[list[int]], Iterable[dict[str, np.ndarray]]], stop_after: int | None,
                         progress: bool) -> bool:
    wanted = todo if stop_after is None else todo[:stop_after]
    done = total - sum(len(slices[i]) for i in todo)
    with tqdm(total=total, unit="img", desc="extract", initial=done, disable=not progress) as bar:
        for index, shard in zip(wanted, remote(wanted)):
            write_shard(out / shard_name(index), shard)
            bar.update(len(slices[index]))
    return len(wanted) == len(todo)


class ShardBuilder:
    """Builds whole shards by index exactly as `extract_shards` does, for a batch runner's workers (Ray actors):
    each worker makes one builder, so the aligner and the encoder (`encoder_factory()`) load once there."""

    def __init__(self, items: list[LabelledImage], settings: ExtractionSettings,
                 aligner_factory: Callable[[], Aligner],
                 encoder_factory: Callable[[], Callable[[list[np.ndarray]], np.ndarray]],
                 latent_shape: tuple[int, int], skip_errors: tuple[type[Exception], ...] = ()):
        _init_worker(aligner_factory, settings, skip_errors)
        self.encode = encoder_factory()
        self.items, self.settings, self.latent_shape = items, settings, latent_shape
        self.slices = shard_slices(len(items), settings.shard_size)

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        rows = self.slices[index]
        results = (_prepare_image(i, self.items[i]) for i in rows)
        return _build_shard([self.items[i] for i in rows], results, self.encode, self.latent_shape, self.settings,
                            lambda _: None)


def _build_shard(rows: list[LabelledImage], results: Iterable[ImageResult],
                 encode: Callable[[list[np.ndarray]], np.ndarray], latent_shape: tuple[int, int],
                 settings: ExtractionSettings, advance: Callable[[int], Any]) -> dict[str, np.ndarray]:
    """Collect one shard's rows in input order, encoding faces in fixed-size batches as they arrive."""
    meta: dict[str, list] = {key: [] for key in ROW_META}
    failed: dict[str, list] = {key: [] for key in FAILURE_FIELDS}
    queue: list[np.ndarray] = []
    latents = [np.zeros((0, *latent_shape), dtype=np.float32)]
    for item, result in zip(rows, results):
        advance(1)
        if result.faces is None:
            for key, value in zip(failed, (item.name, item.label, result.failure_kind, result.failure_reason)):
                failed[key].append(value)
            continue
        count = len(result.faces)
        for key, value in (("labels", item.label), ("groups", item.group), ("paths", item.name),
                           ("sha256", result.sha256), ("alignment_error", result.alignment_error)):
            meta[key] += [value] * count
        meta["resolutions"] += result.resolutions
        meta["jpeg_qualities"] += result.jpeg_qualities
        queue.extend(result.faces)
        while len(queue) >= settings.batch_size:
            latents.append(encode(queue[:settings.batch_size]))
            del queue[:settings.batch_size]
    if queue:
        latents.append(encode(queue))
    return {
        "latents": np.concatenate(latents).astype(settings.latent_dtype),
        **{key: np.array(meta[key], dtype=str) for key in ("labels", "groups", "paths", "sha256")},
        "resolutions": np.array(meta["resolutions"], dtype=np.int32),
        "jpeg_qualities": np.array(meta["jpeg_qualities"], dtype=np.int16),
        "alignment_error": np.array(meta["alignment_error"], dtype=np.float32),
        **{key: np.array(values, dtype=str) for key, values in failed.items()},
    }


def finish_extraction(out: Path, items: list[LabelledImage], input_path: str) -> dict[str, dict[str, Any]]:
    """Gather failures and per-class counts from every shard (this run's or an earlier one's), record them in the
    manifest and failures.json, and return the per-class summary."""
    manifest = read_manifest(out)
    classes = manifest["settings"]["classes"]
    faces: dict[str, set[str]] = {name: set() for name in classes}
    rows: Counter = Counter()
    failures = []
    for index in range(manifest["settings"]["num_shards"]):
        with np.load(out / shard_name(index), allow_pickle=False) as shard:
            for label, path in zip(shard["labels"], shard["paths"]):
                faces[str(label)].add(str(path))
                rows[str(label)] += 1
            failures += [{"path": str(p), "label": str(lab), "kind": str(k), "reason": str(r)}
                         for p, lab, k, r in zip(*(shard[key] for key in FAILURE_FIELDS))]
    write_json_atomic(out / FAILURES_NAME, failures)
    images = Counter(item.label for item in items)
    summary = {}
    for name in classes:
        kinds = Counter(f["kind"] for f in failures if f["label"] == name)
        summary[name] = {"images": images[name], "faces": len(faces[name]), "latents": rows[name],
                         "failures": sum(kinds.values()), "failure_kinds": dict(sorted(kinds.items()))}
    manifest.update(complete=True, input=input_path, summary=summary)
    write_json_atomic(out / MANIFEST_NAME, manifest)
    return summary
