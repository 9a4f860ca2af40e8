"""Extract resolution-augmented e4e W+ latents from labelled face images into resumable shards.

INPUT is a folder with one subfolder per class, a CSV path,label[,group], or a provenance.csv (see core.datasets;
group should name the source, e.g. the repository, when you have it).

Every image is decoded by core.images, its largest face is FFHQ-aligned (dlib), and K augmented copies are made
(resized to a size drawn from --resolutions, JPEG re-encoded at a quality drawn from --jpeg-quality, resized back
to 256; each draw seeded by (--seed, image, copy)), then encoded by e4e in batches (attribution.latent_extraction).
Shards go to --out with a manifest.json; a re-run resumes (finished shards are skipped, and shards are
byte-identical to an uninterrupted run); a re-run with different settings into the same --out is refused.
With --ray the shards are built by Ray actors and written here, byte-identical to a local run's (README "Scale out
on Ray").

Exit status and messages:
  0  done; images that cannot be used are skipped and listed in OUT/failures.json with the reason
     (unreadable or non-image file, truncated, too small or too large, no face found)
  1  some class yielded no face at all (the shards are written, but training would fail)
  2  bad input: an empty class folder, fewer than two classes, no input images, a malformed CSV,
     an --out folder holding latents made with other settings, or the e4e weights unavailable
  3  stopped after --stop-after-shards new shards, as asked; re-run the same command to resume

Example (plumbing test with a random-weight encoder; its latents mean nothing):
  python scripts/extract_latents.py ../shared/data/faces --out /tmp/latents --encoder tiny-random --copies 2
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from attribution.latent_extraction import ExtractionSettings, ShardBuilder, extract_shards, finish_extraction, \
    shard_slices
from attribution.latent_shards import FAILURES_NAME, ShardSettingsError, inputs_digest, open_shard_folder, \
    remove_partial_files
from attribution.resolution import ResolutionAugmentConfig
from runners.cli import EXIT_OK, EXIT_STOPPED, EXIT_UNUSABLE, add_runtime_arguments, apply_runtime, positive_int, run
from core.datasets import read_dataset
from core.device import Precision, select_precision
from core.errors import InputError
from runners.preflight import require_output
from core.weights import WeightUnavailableError
from encoder.align import AlignConfig, FaceAligner, NoFaceError
from encoder.e4e import CheckpointError, E4EConfig, Encoder4Editing
from runners.ray_backend import RayWorkerError, add_ray_arguments, map_ordered, ray_options

TINY_WARNING = ("tiny-random encoder: RANDOM weights, the latents carry no information about the faces; "
                "use them for plumbing tests only, never to train a model you will use")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_output(Path(args.out), folder=True)
    return run(lambda: _run(args), (ShardSettingsError, WeightUnavailableError, CheckpointError, RayWorkerError))


def _run(args: argparse.Namespace) -> int:
    apply_runtime(args)
    try:
        ray = ray_options(args)
    except ValueError as err:
        raise InputError(str(err)) from None
    items, source = read_dataset(Path(args.input))
    classes = sorted({item.label for item in items})
    if len(classes) < 2:
        raise InputError(f"{args.input}: only one class ({classes[0]}); attribution needs at least two")
    settings = ExtractionSettings(augment=_augment_config(args), copies=args.copies, seed=args.seed,
                                  batch_size=args.batch_size, shard_size=args.shard_size,
                                  latent_dtype="float32" if args.float32 else "float16")
    try:
        precision = select_precision(args.device, args.dtype)
    except ValueError as err:
        raise InputError(str(err)) from None
    encoder, encoder_info = _load_encoder(args, precision)
    if encoder_info["kind"] == "tiny-random":
        print(f"WARNING: {TINY_WARNING}", file=sys.stderr)
    num_shards = len(shard_slices(len(items), args.shard_size))
    out = Path(args.out)
    open_shard_folder(out, {
        "classes": classes,
        "inputs": {"count": len(items), "sha256": inputs_digest([(i.name, i.label, i.group) for i in items]),
                   "kind": source},
        "encoder": encoder_info,
        "preprocessing": {"decode": "core.images.load_image", "align": asdict(AlignConfig()),
                          "face": "largest detected face of each image", "encoder_input": settings.augment.output_size},
        "augmentation": asdict(settings.augment),
        "copies": settings.copies,
        "seed": settings.seed,
        "latent_dtype": settings.latent_dtype,
        "precision": {"device": precision.device.type, "dtype": precision.dtype_name},
        "batch_size": settings.batch_size,
        "shard_size": settings.shard_size,
        "num_shards": num_shards,
    })
    remove_partial_files(out)

    encode = partial(encoder.encode, batch_size=args.batch_size, add_latent_avg=not args.no_latent_avg)
    latent_shape = (encoder.config.n_styles, encoder.config.style_dim)
    remote = None
    if ray is not None:
        builder = partial(ShardBuilder, items, settings, partial(FaceAligner, AlignConfig()),
                          partial(_encoder_on_node, args, encoder_info, precision), latent_shape, (NoFaceError,))
        remote = partial(map_ordered, builder, options=ray)
    finished = extract_shards(items, out, settings, partial(FaceAligner, AlignConfig()), encode, latent_shape,
                              skip_errors=(NoFaceError,), workers=args.workers, stop_after=args.stop_after_shards,
                              progress=not args.no_progress, remote=remote)
    if not finished:
        print(f"stopped after {args.stop_after_shards} shard(s) as asked; re-run to resume", file=sys.stderr)
        return EXIT_STOPPED
    summary = finish_extraction(out, items, str(Path(args.input).resolve()))
    _print_summary(summary, out, num_shards, encoder_info)
    empty = [name for name, row in summary.items() if row["faces"] == 0]
    if empty:
        print(f"error: class(es) {', '.join(empty)} gave no face at all; see {out / FAILURES_NAME}", file=sys.stderr)
        return EXIT_UNUSABLE
    return EXIT_OK


def _print_summary(summary: dict[str, dict[str, Any]], out: Path, num_shards: int, encoder_info: dict) -> None:
    print(f"{'class':<14}{'images':>8}{'faces':>8}{'latents':>9}{'failed':>8}  reasons")
    for name, row in summary.items():
        reasons = ", ".join(f"{kind} {n}" for kind, n in row["failure_kinds"].items()) or "-"
        print(f"{name:<14}{row['images']:>8}{row['faces']:>8}{row['latents']:>9}{row['failures']:>8}  {reasons}")
    print(f"shards: {out} ({num_shards} shard(s)); failures listed in {out / FAILURES_NAME}")
    if encoder_info["kind"] == "tiny-random":
        print(f"WARNING: {TINY_WARNING}")


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
        encoder = Encoder4Editing.random_init(E4EConfig.tiny(), seed=0, precision=precision)
        info = {"kind": "tiny-random", "weights_sha256": "tiny-random", "warning": TINY_WARNING}
    elif args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise InputError(f"--checkpoint {args.checkpoint}: no such file")
        encoder = Encoder4Editing.from_pretrained(Path(args.checkpoint), precision)
        info = {"kind": "checkpoint", "weights_sha256": encoder.weights_sha256}
    else:
        encoder = Encoder4Editing.from_pretrained(precision=precision)
        info = {"kind": "registry:e4e-ffhq", "weights_sha256": encoder.weights_sha256}
    info.update(config=asdict(encoder.config), latent_avg_added=not args.no_latent_avg)
    return encoder, info


def _encoder_on_node(args: argparse.Namespace, driver_info: dict[str, Any], driver_precision: Precision):
    """The encode function on a Ray actor; the node must compute what the driver records in the manifest (the same
    encoder weights, device type and dtype), or the actor fails naming both sides."""
    precision = select_precision(args.device, args.dtype)
    if (precision.device.type, precision.dtype) != (driver_precision.device.type, driver_precision.dtype):
        raise InputError(f"this node computes on {precision.device.type}/{precision.dtype_name}, the driver on "
                         f"{driver_precision.device.type}/{driver_precision.dtype_name}; pass --device/--dtype that "
                         "resolve the same on the driver and on every worker")
    encoder, info = _load_encoder(args, precision)
    if info != driver_info:
        raise InputError(f"this node's encoder ({info['kind']}, weights {info['weights_sha256']}) is not the "
                         f"driver's ({driver_info['kind']}, weights {driver_info['weights_sha256']})")
    return partial(encoder.encode, batch_size=args.batch_size, add_latent_avg=not args.no_latent_avg)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="folder of class subfolders, a CSV path,label[,group] or a provenance.csv")
    parser.add_argument("--out", required=True, help="shard folder (created; a re-run resumes it)")
    parser.add_argument("--copies", type=positive_int, default=4, help="augmented copies per face (default 4)")
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
    add_runtime_arguments(parser)
    parser.add_argument("--dtype", default="auto",
                        help="auto, fp32, bf16 or fp16 (encoder weights); like --device and --batch-size it is "
                             "recorded as a setting, since it changes the latents' last bits")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="faces per encoder batch")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="processes decoding and aligning images; processes, not threads, because dlib holds "
                             "the GIL (results do not depend on it)")
    parser.add_argument("--shard-size", type=positive_int, default=128, help="source images per shard (default 128)")
    parser.add_argument("--float32", action="store_true", help="store latents as float32 (default float16)")
    parser.add_argument("--stop-after-shards", type=positive_int, default=None,
                        help="end the run after N new shards (default: all), as a kill between two shards would; "
                             "exit status 3")
    add_ray_arguments(parser)
    return parser
