"""Extract resolution-augmented e4e W+ latents from labelled face images into resumable shards.

INPUT is a folder with one subfolder per class (images directly inside each; files without an image suffix are
ignored), or a CSV with columns path,label[,group] (a header row is optional; relative paths are relative to the
CSV; group defaults to the path and should name the source, e.g. the repository, when you have it).

Every image is decoded by core.images, its largest face is FFHQ-aligned (dlib), and K augmented copies are made
(resized to a size drawn from --resolutions, JPEG re-encoded at a quality drawn from --jpeg-quality, resized back
to 256; each draw seeded by (--seed, image, copy)), then encoded by e4e in batches. Shards go to --out with a
manifest.json; a re-run resumes (finished shards are skipped, and shards are byte-identical to an uninterrupted
run); a re-run with different settings into the same --out is refused. With --ray the shards are built by Ray
actors and written here, byte-identical to a local run's (README "Scale out on Ray").

Exit status and messages:
  0  done; images that cannot be used are skipped and listed in OUT/failures.json with the reason
     (unreadable or non-image file, truncated, too small or too large, no face found)
  1  some class yielded no face at all (the shards are written, but training would fail)
  2  bad input: an empty class folder, fewer than two classes, no input images, a malformed CSV,
     an --out folder holding latents made with other settings, or the e4e weights unavailable

Example (plumbing test with a random-weight encoder; its latents mean nothing):
  python scripts/extract_latents.py ../shared/data/faces --out /tmp/latents --encoder tiny-random --copies 2
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from attribution.latent_shards import FAILURES_NAME, MANIFEST_NAME, ShardSettingsError, inputs_digest, \
    open_shard_folder, read_manifest, remove_partial_files, shard_name, write_json_atomic, write_shard
from attribution.resolution import ResolutionAugmentConfig, augment_face
from core.device import select_precision
from core.images import ImageError, list_images, load_image
from core.weights import WeightUnavailableError
from encoder.align import AlignConfig, FaceAligner, NoFaceError
from encoder.e4e import CheckpointError, E4EConfig, Encoder4Editing
from ray_backend import RayOptions, RayWorkerError, add_ray_arguments, map_ordered, ray_options

TINY_WARNING = ("tiny-random encoder: RANDOM weights, the latents carry no information about the faces; "
                "use them for plumbing tests only, never to train a model you will use")


class InputError(ValueError):
    """Bad command-line input; main() prints it as one line and exits with status 2."""


@dataclass(frozen=True)
class InputImage:
    name: str
    path: str
    label: str
    group: str


@dataclass
class ImageResult:
    """What one image contributes to a shard: K augmented faces, or the reason it gave none."""

    faces: np.ndarray | None = None
    resolutions: list[int] | None = None
    jpeg_qualities: list[int] | None = None
    sha256: str = ""
    face_quality: float = 0.0
    failure_kind: str = ""
    failure_reason: str = ""


_WORKER: dict[str, Any] = {}


def _init_worker(align_config: AlignConfig, augment: ResolutionAugmentConfig, seed: int, copies: int) -> None:
    """Per-process state: dlib holds the GIL while detecting, so parallel alignment needs processes, not threads."""
    _WORKER.update(aligner=FaceAligner(align_config), augment=augment, seed=seed, copies=copies)


def _prepare_image(index: int, item: InputImage) -> ImageResult:
    """Decode, align and augment one image; a pure function of (index, file, settings), whichever process runs it."""
    try:
        loaded = load_image(item.path, name=item.name)
        face = _WORKER["aligner"].align(loaded.pixels, item.name)[0]
    except (ImageError, NoFaceError) as err:
        return ImageResult(failure_kind=type(err).__name__, failure_reason=str(err))
    copies, drawn = augment_face(face.image, _WORKER["augment"], _WORKER["seed"], index, _WORKER["copies"])
    return ImageResult(faces=np.stack(copies), resolutions=[a.resolution for a in drawn],
                       jpeg_qualities=[a.jpeg_quality or 0 for a in drawn], sha256=loaded.sha256,
                       face_quality=face.quality)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (InputError, ShardSettingsError, WeightUnavailableError, CheckpointError, RayWorkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    for flag in ("copies", "batch_size", "workers", "shard_size"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    try:
        ray = ray_options(args)
    except ValueError as err:
        raise InputError(str(err)) from None
    items, source = _read_inputs(Path(args.input))
    classes = sorted({item.label for item in items})
    augment = _augment_config(args)
    try:
        precision = select_precision(args.device, args.dtype)
    except ValueError as err:
        raise InputError(str(err)) from None
    encoder, encoder_info = _load_encoder(args, precision)
    if encoder_info["kind"] == "tiny-random":
        print(f"WARNING: {TINY_WARNING}", file=sys.stderr)
    num_shards = -(-len(items) // args.shard_size)
    settings = {
        "classes": classes,
        "inputs": {"count": len(items), "sha256": inputs_digest([(i.name, i.label, i.group) for i in items]),
                   "kind": source},
        "encoder": encoder_info,
        "preprocessing": {"decode": "core.images.load_image", "align": asdict(AlignConfig()),
                          "face": "largest detected face of each image", "encoder_input": augment.output_size},
        "augmentation": asdict(augment),
        "copies": args.copies,
        "seed": args.seed,
        "latent_dtype": "float32" if args.float32 else "float16",
        "precision": {"device": precision.device.type, "dtype": precision.dtype_name},
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
        "num_shards": num_shards,
    }
    out = Path(args.out)
    open_shard_folder(out, settings)
    remove_partial_files(out)

    written = _write_shards_on_ray(out, items, augment, settings, args, ray) if ray is not None else \
        _write_missing_shards(out, items, augment, encoder, args)
    if not written:
        print(f"stopped after {args.stop_after_shards} shard(s) as asked; re-run to resume", file=sys.stderr)
        return 3
    return _finish(out, items, classes, num_shards, encoder_info, str(Path(args.input).resolve()))


def _write_missing_shards(out: Path, items: list[InputImage], augment: ResolutionAugmentConfig,
                          encoder: Encoder4Editing, args: argparse.Namespace) -> bool:
    """Write every shard not yet on disk, in order; False when --stop-after-shards ended the run early.

    With --workers > 1 the next shard's images are aligned in the pool while this shard is being encoded.
    """
    slices = _shard_rows(len(items), args.shard_size)
    todo = [i for i in range(len(slices)) if not (out / shard_name(i)).is_file()]
    worker_args = (AlignConfig(), augment, args.seed, args.copies)
    pool = ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=worker_args) \
        if args.workers > 1 else None
    if pool is None:
        _init_worker(*worker_args)
    pending: dict[int, list[Future]] = {}
    done = len(items) - sum(len(slices[i]) for i in todo)
    with tqdm(total=len(items), unit="img", desc="extract", initial=done) as bar:
        try:
            for position, index in enumerate(todo):
                if args.stop_after_shards is not None and position >= args.stop_after_shards:
                    return False
                if pool is not None:
                    for ahead in todo[position:position + 2]:
                        if ahead not in pending:
                            pending[ahead] = [pool.submit(_prepare_image, i, items[i]) for i in slices[ahead]]
                    results = (future.result() for future in pending.pop(index))
                else:
                    results = (_prepare_image(i, items[i]) for i in slices[index])
                write_shard(out / shard_name(index), _build_shard(slices[index], items, results, encoder, args, bar))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return True


def _shard_rows(count: int, shard_size: int) -> list[range]:
    """The input rows of each shard: consecutive slices of the sorted input list."""
    return [range(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]


def _write_shards_on_ray(out: Path, items: list[InputImage], augment: ResolutionAugmentConfig, settings: dict,
                         args: argparse.Namespace, ray: RayOptions) -> bool:
    """Like _write_missing_shards, with whole shards built on Ray actors and written here, in order."""
    slices = _shard_rows(len(items), args.shard_size)
    todo = [i for i in range(len(slices)) if not (out / shard_name(i)).is_file()]
    limit = len(todo) if args.stop_after_shards is None else min(args.stop_after_shards, len(todo))
    written = 0
    with tqdm(total=len(items), unit="img", desc="extract", initial=len(items) - sum(len(slices[i]) for i in todo)) \
            as bar:
        shards = map_ordered(partial(_ShardWorker, items, augment, settings, args), todo[:limit], ray)
        for index, arrays in zip(todo, shards):
            write_shard(out / shard_name(index), arrays)
            bar.update(len(slices[index]))
            written += 1
    return written == len(todo)


class _ShardWorker:
    """Builds whole shards on a Ray actor exactly as the local run does; the encoder and aligner load once.

    The node must compute what the manifest (written by the driver) says: the same encoder weights, device type
    and dtype; otherwise the actor fails with both sides named.
    """

    def __init__(self, items: list[InputImage], augment: ResolutionAugmentConfig, settings: dict,
                 args: argparse.Namespace):
        precision = select_precision(args.device, args.dtype)
        here = {"device": precision.device.type, "dtype": precision.dtype_name}
        if here != settings["precision"]:
            raise InputError(f"this node computes on {here}, the driver recorded {settings['precision']}; pass "
                             "--device/--dtype that resolve the same on the driver and on every worker")
        self.encoder, info = _load_encoder(args, precision)
        wanted = settings["encoder"]
        if info != wanted:
            raise InputError(f"this node's encoder ({info['kind']}, weights {info['weights_sha256']}) is not the "
                             f"driver's ({wanted['kind']}, weights {wanted['weights_sha256']})")
        _init_worker(AlignConfig(), augment, args.seed, args.copies)
        self.items, self.args = items, args
        self.slices = _shard_rows(len(items), args.shard_size)

    def __call__(self, index: int) -> dict[str, np.ndarray]:
        rows = self.slices[index]
        results = (_prepare_image(i, self.items[i]) for i in rows)
        return _build_shard(rows, self.items, results, self.encoder, self.args, tqdm(disable=True))


def _build_shard(rows: range, items: list[InputImage], results, encoder: Encoder4Editing,
                 args: argparse.Namespace, bar: tqdm) -> dict[str, np.ndarray]:
    """Collect one shard's rows in input order, encoding faces in fixed-size batches as they arrive."""
    meta: dict[str, list] = {key: [] for key in ("labels", "groups", "paths", "sha256", "resolutions",
                                                 "jpeg_qualities", "face_quality")}
    failed: dict[str, list] = {key: [] for key in ("failed_paths", "failed_labels", "failed_kinds",
                                                   "failed_reasons")}
    queue: list[np.ndarray] = []
    latents = [np.zeros((0, encoder.config.n_styles, encoder.config.style_dim), dtype=np.float32)]
    add_avg = not args.no_latent_avg
    for index, result in zip(rows, results):
        item = items[index]
        bar.update(1)
        if result.faces is None:
            for key, value in zip(failed, (item.name, item.label, result.failure_kind, result.failure_reason)):
                failed[key].append(value)
            continue
        count = len(result.faces)
        meta["labels"] += [item.label] * count
        meta["groups"] += [item.group] * count
        meta["paths"] += [item.name] * count
        meta["sha256"] += [result.sha256] * count
        meta["resolutions"] += result.resolutions
        meta["jpeg_qualities"] += result.jpeg_qualities
        meta["face_quality"] += [result.face_quality] * count
        queue.extend(result.faces)
        while len(queue) >= args.batch_size:
            latents.append(encoder.encode(queue[:args.batch_size], args.batch_size, add_latent_avg=add_avg))
            del queue[:args.batch_size]
    if queue:
        latents.append(encoder.encode(queue, args.batch_size, add_latent_avg=add_avg))
    dtype = np.float32 if args.float32 else np.float16
    return {
        "latents": np.concatenate(latents).astype(dtype),
        "labels": np.array(meta["labels"], dtype=str),
        "groups": np.array(meta["groups"], dtype=str),
        "paths": np.array(meta["paths"], dtype=str),
        "sha256": np.array(meta["sha256"], dtype=str),
        "resolutions": np.array(meta["resolutions"], dtype=np.int32),
        "jpeg_qualities": np.array(meta["jpeg_qualities"], dtype=np.int16),
        "face_quality": np.array(meta["face_quality"], dtype=np.float32),
        **{key: np.array(values, dtype=str) for key, values in failed.items()},
    }


def _finish(out: Path, items: list[InputImage], classes: list[str], num_shards: int, encoder_info: dict,
            input_path: str) -> int:
    """Gather failures and per-class counts from every shard (this run's or an earlier one's) and report them."""
    faces: dict[str, set[str]] = {name: set() for name in classes}
    rows: Counter = Counter()
    failures = []
    for index in range(num_shards):
        with np.load(out / shard_name(index), allow_pickle=False) as shard:
            for label, path in zip(shard["labels"], shard["paths"]):
                faces[str(label)].add(str(path))
                rows[str(label)] += 1
            failures += [{"path": str(p), "label": str(lab), "kind": str(k), "reason": str(r)} for p, lab, k, r in
                         zip(shard["failed_paths"], shard["failed_labels"], shard["failed_kinds"],
                             shard["failed_reasons"])]
    write_json_atomic(out / FAILURES_NAME, failures)
    images = Counter(item.label for item in items)
    summary = {}
    for name in classes:
        kinds = Counter(f["kind"] for f in failures if f["label"] == name)
        summary[name] = {"images": images[name], "faces": len(faces[name]), "latents": rows[name],
                         "failures": sum(kinds.values()), "failure_kinds": dict(sorted(kinds.items()))}
    manifest = read_manifest(out)
    manifest.update(complete=True, input=input_path, summary=summary)
    write_json_atomic(out / MANIFEST_NAME, manifest)

    print(f"{'class':<14}{'images':>8}{'faces':>8}{'latents':>9}{'failed':>8}  reasons")
    for name, row in summary.items():
        reasons = ", ".join(f"{kind} {n}" for kind, n in row["failure_kinds"].items()) or "-"
        print(f"{name:<14}{row['images']:>8}{row['faces']:>8}{row['latents']:>9}{row['failures']:>8}  {reasons}")
    print(f"shards: {out} ({num_shards} shard(s)); failures listed in {out / FAILURES_NAME}")
    if encoder_info["kind"] == "tiny-random":
        print(f"WARNING: {TINY_WARNING}")
    empty = [name for name, row in summary.items() if row["faces"] == 0]
    if empty:
        print(f"error: class(es) {', '.join(empty)} gave no face at all; see {out / FAILURES_NAME}", file=sys.stderr)
        return 1
    return 0


def _read_inputs(source: Path) -> tuple[list[InputImage], str]:
    """The sorted input list (its order fixes shard slices and augmentation seeds) and its kind."""
    if source.is_dir():
        items, kind = _read_folder(source), "folder"
    elif source.is_file() and source.suffix.lower() == ".csv":
        items, kind = _read_csv(source), "csv"
    else:
        raise InputError(f"{source}: not a folder of class subfolders nor a .csv file")
    if not items:
        raise InputError(f"{source}: no input images")
    labels = sorted({item.label for item in items})
    if len(labels) < 2:
        raise InputError(f"{source}: only one class ({labels[0]}); attribution needs at least two")
    names = Counter(item.name for item in items)
    duplicates = [name for name, n in names.items() if n > 1]
    if duplicates:
        raise InputError(f"{source}: {duplicates[0]} is listed {names[duplicates[0]]} times")
    return sorted(items, key=lambda item: item.name), kind


def _read_folder(root: Path) -> list[InputImage]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items = []
    for folder in folders:
        files = list_images(folder)
        if not files:
            raise InputError(f"class folder {folder} has no images (looked for .jpg .jpeg .png .webp .bmp .gif "
                             ".tif .tiff files directly inside it); remove it or add images")
        for file in files:
            name = f"{folder.name}/{file.name}"
            items.append(InputImage(name=name, path=str(file), label=folder.name, group=name))
    return items


def _read_csv(path: Path) -> list[InputImage]:
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row]
            if not any(cells) or (number == 1 and cells[0].lower() == "path"):
                continue
            if len(cells) < 2 or not cells[0] or not cells[1]:
                raise InputError(f"{path}, line {number}: expected path,label[,group], got {','.join(row)!r}")
            group = cells[2] if len(cells) > 2 and cells[2] else cells[0]
            items.append(InputImage(name=cells[0], path=str(path.parent / cells[0]), label=cells[1], group=group))
    return items


def _augment_config(args: argparse.Namespace) -> ResolutionAugmentConfig:
    try:
        values = args.resolutions
        if len(values) == 1 and "-" in values[0]:
            low, high = (int(v) for v in values[0].split("-", 1))
            sizes: dict[str, Any] = {"min_resolution": low, "max_resolution": high}
        else:
            sizes = {"resolutions": tuple(sorted({int(v) for v in values}))}
        quality = None
        if args.jpeg_quality.lower() != "none":
            low, _, high = args.jpeg_quality.partition("-")
            quality = (int(low), int(high or low))
        return ResolutionAugmentConfig(**sizes, log_uniform=args.resolution_draw == "log-uniform",
                                       jpeg_quality=quality, jpeg_probability=args.jpeg_probability)
    except ValueError as err:
        raise InputError(f"bad augmentation settings: {err}") from None


def _load_encoder(args: argparse.Namespace, precision) -> tuple[Encoder4Editing, dict[str, Any]]:
    """The encoder and what identifies its latents: weights sha256 (or 'tiny-random'), config, latent_avg use."""
    if args.encoder == "tiny-random":
        if args.checkpoint:
            raise InputError("--checkpoint cannot be combined with --encoder tiny-random")
        encoder = Encoder4Editing.random_init(E4EConfig.tiny(), precision, seed=0)
        info = {"kind": "tiny-random", "weights_sha256": "tiny-random", "warning": TINY_WARNING}
    elif args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise InputError(f"--checkpoint {args.checkpoint}: no such file")
        encoder = Encoder4Editing.from_checkpoint(args.checkpoint, precision)
        info = {"kind": "checkpoint", "weights_sha256": encoder.weights_sha256}
    else:
        encoder = Encoder4Editing.from_registry(precision)
        info = {"kind": "registry:e4e-ffhq", "weights_sha256": encoder.weights_sha256}
    info.update(config=asdict(encoder.config), latent_avg_added=not args.no_latent_avg)
    return encoder, info


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="folder of class subfolders, or a CSV path,label[,group]")
    parser.add_argument("--out", required=True, help="shard folder (created; a re-run resumes it)")
    parser.add_argument("--copies", type=int, default=4, help="augmented copies per face (default 4)")
    parser.add_argument("--resolutions", nargs="+", default=["64-1024"],
                        help="a range LOW-HIGH (default 64-1024) or a list of sizes, e.g. 64 128 256 512 1024")
    parser.add_argument("--resolution-draw", choices=["log-uniform", "uniform"], default="log-uniform",
                        help="how sizes are drawn from a range (default log-uniform: each octave equally likely)")
    parser.add_argument("--jpeg-quality", default="60-100", help="JPEG quality range LOW-HIGH, one value, or none")
    parser.add_argument("--jpeg-probability", type=float, default=1.0, help="share of copies re-encoded (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", choices=["real", "tiny-random"], default="real",
                        help="real: the e4e FFHQ encoder from the weight registry (or --checkpoint); tiny-random: "
                             "a tiny random-weight encoder for plumbing tests only")
    parser.add_argument("--checkpoint", help="an e4e checkpoint file to use instead of the registry's")
    parser.add_argument("--no-latent-avg", action="store_true",
                        help="store raw encoder offsets (GANOrigin's convention) instead of W+ = offsets + latent_avg")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--dtype", default="auto",
                        help="auto, fp32, bf16 or fp16 (encoder weights); like --device and --batch-size it is "
                             "recorded as a setting, since it changes the latents' last bits")
    parser.add_argument("--batch-size", type=int, default=8, help="faces per encoder batch")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes decoding and aligning images; processes, not threads, because dlib holds "
                             "the GIL (results do not depend on it)")
    parser.add_argument("--shard-size", type=int, default=128, help="source images per shard (default 128)")
    parser.add_argument("--float32", action="store_true", help="store latents as float32 (default float16)")
    add_ray_arguments(parser)
    # Test hook, hidden from --help: end the run after N new shards, as a kill between two shards would.
    parser.add_argument("--stop-after-shards", type=int, default=None, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
