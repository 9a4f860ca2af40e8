"""Scan files, folders or globs and write one CSV row (and one JSON line with the full verdict) per file.

    python scripts/scan.py photos/ --out results.csv
    python scripts/scan.py "cases/**/*.jpg" suspect.png --out case12.csv --device cpu --batch-size 8
    python scripts/scan.py archive/ --recursive --out archive.csv      # re-run the same command to resume
    python scripts/scan.py archive/ --recursive --out archive.csv --ray auto   # the same rows, on a Ray cluster

The CSV has the columns of `pipeline.CSV_COLUMNS` (file, sha256, label, is_fake, fake_probability, p_<label>...,
warnings, error); `results.jsonl` beside it holds every full Verdict. A file that cannot be analysed gets a row
with its error. Rows are appended and flushed one by one, and files already in the CSV are skipped, so an
interrupted scan (Ctrl-C, a crash, a reboot) resumes where it stopped; the first Ctrl-C finishes the current
batch and stops cleanly, a second one stops at once. Files are identified by the path as written on the command
line (after folder and glob expansion), so resume from the same working directory.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

import pipeline as P
from core.images import IMAGE_SUFFIXES, list_images
from ray_backend import RayOptions, RayWorkerError, add_ray_arguments, analyze_on_ray, ray_options


def expand_inputs(inputs: list[str], recursive: bool) -> list[Path]:
    """Files, folders (images inside; recursive on request) and glob patterns → a de-duplicated, ordered list.

    Raises FileNotFoundError naming every argument that matches nothing, before any work is done.
    """
    found: list[Path] = []
    unmatched = []
    for item in inputs:
        path = Path(item)
        if any(char in item for char in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True)) if Path(m).is_file()]
        elif path.is_dir():
            matches = _images_in(path, recursive)
        elif path.is_file():
            matches = [path]
        else:
            matches = []
        if not matches:
            unmatched.append(item)
        found.extend(matches)
    if unmatched:
        raise FileNotFoundError("nothing to scan at " + ", ".join(repr(u) for u in unmatched) +
                                " (no such file, an empty folder, or a pattern that matches no file)")
    return list(dict.fromkeys(found))


def _images_in(folder: Path, recursive: bool) -> list[Path]:
    if not recursive:
        return list_images(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def done_files(csv_path: Path) -> set[str]:
    """Files already in an earlier CSV; a half-written last line (a hard kill mid-write) is cut off first."""
    if not csv_path.is_file() or csv_path.stat().st_size == 0:
        return set()
    data = csv_path.read_bytes()
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(csv_path, "r+b") as handle:
            handle.truncate(cut)
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            return set()
        if tuple(reader.fieldnames) != P.CSV_COLUMNS:
            raise ValueError(f"{csv_path} has columns {reader.fieldnames}, not a GANTrace scan's; choose another --out")
        return {row["file"] for row in reader}


def prune_jsonl(jsonl_path: Path, keep: set[str]) -> None:
    """Keep only verdicts whose row reached the CSV, so a resumed scan writes no duplicates."""
    if not jsonl_path.is_file():
        return
    kept = []
    changed = False
    with open(jsonl_path, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                changed = True
                continue
            if record.get("file") in keep:
                kept.append(line if line.endswith("\n") else line + "\n")
            else:
                changed = True
    if changed:
        handle, temp = tempfile.mkstemp(dir=jsonl_path.parent, prefix=f".{jsonl_path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.writelines(kept)
        os.replace(temp, jsonl_path)


class _StopFlag:
    """First Ctrl-C: finish the batch in flight and stop cleanly; second Ctrl-C: stop at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after the current batch (Ctrl-C again to stop now)", file=sys.stderr)


def scan(files: list[Path], out: Path, pipe: P.Pipeline, progress: bool = True,
         stop: _StopFlag | None = None, ray: RayOptions | None = None) -> tuple[Counter, bool]:
    """Analyse every file not yet in `out`, appending CSV rows and JSONL verdicts (on Ray when `ray` is given).

    Returns the counts by outcome (labels, "error", "skipped" = already done) and whether every file is done.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    done = done_files(out)
    prune_jsonl(jsonl, done)
    todo = [path for path in files if str(path) not in done]
    counts: Counter = Counter(skipped=len(files) - len(todo))
    new_csv = not out.is_file() or out.stat().st_size == 0
    with open(out, "a", newline="", encoding="utf-8") as csv_handle, \
            open(jsonl, "a", encoding="utf-8") as json_handle, \
            tqdm(total=len(todo), unit="img", disable=not progress, desc="scanning") as bar:
        writer = csv.DictWriter(csv_handle, fieldnames=P.CSV_COLUMNS)
        if new_csv:
            writer.writeheader()
            csv_handle.flush()
        processed = 0
        for result in _results(pipe, todo, stop, ray):
            processed += 1
            json_handle.write(json.dumps(result.to_dict()) + "\n")
            json_handle.flush()
            writer.writerow(result.to_row())
            csv_handle.flush()
            counts["error" if isinstance(result, P.Failure) else result.label] += 1
            bar.update(1)
            bar.set_postfix({k: v for k, v in counts.items() if k != "skipped"}, refresh=False)
    return counts, processed == len(todo)


def _results(pipe: P.Pipeline, todo: list[Path], stop: _StopFlag | None,
             ray: RayOptions | None) -> Iterator[P.Result]:
    if ray is not None:
        yield from analyze_on_ray(pipe, [str(p) for p in todo], ray, lambda: stop is not None and stop.requested)
        return
    size = pipe.config.batch_size
    for start in range(0, len(todo), size):
        if stop is not None and stop.requested:
            return
        batch = todo[start:start + size]
        yield from pipe.analyze([str(p) for p in batch], names=[str(p) for p in batch])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files, folders or quoted glob patterns")
    parser.add_argument("--out", type=Path, default=Path("results.csv"), help="CSV to write or resume")
    parser.add_argument("--recursive", action="store_true", help="also scan sub-folders of folder arguments")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--dtype", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--attribution", type=Path, default=None, help="latent SVM artifact (scripts/train_svm.py)")
    parser.add_argument("--fingerprint", default="fingerprintnet-small", help="registry name or .safetensors path")
    parser.add_argument("--gate-attribution", action="store_true",
                        help="attribute only images the detectors call fake (faster; misses more fakes)")
    parser.add_argument("--no-progress", action="store_true")
    add_ray_arguments(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        ray = ray_options(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        files = expand_inputs(args.inputs, args.recursive)
    except FileNotFoundError as err:
        parser.error(str(err))
    config = P.PipelineConfig.for_artifacts(device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                              attribution=args.attribution, fingerprint=args.fingerprint,
                              gate_attribution=args.gate_attribution)
    pipe = P.Pipeline(config)
    for status in pipe.load_all():
        if not status.ready:
            print(f"note: {status.branch} is off: {status.reason}", file=sys.stderr)
    stop = _StopFlag()
    previous = signal.signal(signal.SIGINT, stop)
    try:
        counts, finished = scan(files, args.out, pipe, progress=not args.no_progress, stop=stop, ray=ray)
    except (ValueError, RayWorkerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; {args.out} holds every finished row: re-run the same command to resume",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if v)
    print(f"{args.out} ({args.out.with_suffix('.jsonl').name} beside it): {summary}", file=sys.stderr)
    if not finished:
        print("stopped early; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
