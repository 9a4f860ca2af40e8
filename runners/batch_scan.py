"""Scanning many files into a resumable CSV (one row per file) and JSONL (one full verdict per file).

scripts/scan.py parses the command line and calls `scan`; the work lives here so it can be tested and reused.
Rows are appended and flushed one by one, and files already in the CSV are skipped, so an interrupted scan
(Ctrl-C, a crash, a reboot) resumes where it stopped. Files are identified by the path as given (after folder and
glob expansion).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from outputs import evidence_report
import pipeline as P
from runners.cli import EXIT_INTERRUPTED, EXIT_OK, add_pipeline_arguments, config_from_args, run
from core.atomic import write_text_atomic
from runners.preflight import check_output, require_output, require_ready
from core.datasets import images_under
from runners.ray_backend import RayOptions, RayWorkerError, add_ray_arguments, analyze_on_ray, ray_options


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
            matches = images_under(path, recursive)
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
        write_text_atomic(jsonl_path, "".join(kept))


class StopFlag:
    """First Ctrl-C: finish the batch in flight and stop cleanly; second Ctrl-C: stop at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after the current batch (Ctrl-C again to stop now)", file=sys.stderr)


def scan(files: list[Path], out: Path, pipe: P.Pipeline, progress: bool = True, stop: StopFlag | None = None,
         report_dir: Path | None = None, per_face: bool = False,
         ray: RayOptions | None = None) -> tuple[Counter, bool]:
    """Analyse every file not yet in `out`, appending CSV rows (one per image, or per face with `per_face`) and
    JSONL verdicts; with `report_dir`, an HTML evidence report per verdict too (pictures are only drawn then).
    With `ray`, the verdicts are computed by Ray actors (ray_backend) and written here the same way.

    Returns the counts by outcome (labels, "error", "skipped" = already done) and whether every file is done.
    """
    jsonl = out.with_suffix(".jsonl")
    check_output(out, csv_header=P.CSV_COLUMNS, companions=[jsonl])
    out.parent.mkdir(parents=True, exist_ok=True)
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
        for result in _results(pipe, todo, stop, with_pictures=report_dir is not None, ray=ray):
            processed += 1
            if report_dir is not None and isinstance(result, P.Verdict):
                evidence_report.write_report(result.to_dict(), result.pictures, report_dir)
            json_handle.write(json.dumps(result.to_dict()) + "\n")
            json_handle.flush()
            writer.writerows(result.face_rows() if per_face else [result.to_row()])
            csv_handle.flush()
            counts["error" if isinstance(result, P.Failure) else result.label] += 1
            bar.update(1)
            bar.set_postfix({k: v for k, v in counts.items() if k != "skipped"}, refresh=False)
    return counts, processed == len(todo)


def _results(pipe: P.Pipeline, todo: list[Path], stop: StopFlag | None, with_pictures: bool = False,
             ray: RayOptions | None = None) -> Iterator[P.Result]:
    if ray is not None:
        yield from analyze_on_ray(pipe, [str(p) for p in todo], ray, with_pictures,
                                  lambda: stop is not None and stop.requested)
        return
    size = pipe.config.batch_size
    for start in range(0, len(todo), size):
        if stop is not None and stop.requested:
            return
        batch = todo[start:start + size]
        yield from pipe.analyze([str(p) for p in batch], names=[str(p) for p in batch], with_pictures=with_pictures)


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """scripts/scan.py: parse the command line, check --out before any model loads, scan, report; the exit code."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files, folders or quoted glob patterns")
    parser.add_argument("--out", type=Path, default=Path("results.csv"), help="CSV to write or resume")
    parser.add_argument("--recursive", action="store_true", help="also scan sub-folders of folder arguments")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="also write one self-contained HTML evidence report per analysed image into DIR")
    parser.add_argument("--per-face", action="store_true",
                        help="one CSV row per analysed face (the JSONL always holds every face)")
    add_pipeline_arguments(parser)
    add_ray_arguments(parser)
    args = parser.parse_args(argv)
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        parser.error(f"--report {args.report} is a file, not a folder to write the reports into")
    require_output(args.out, csv_header=P.CSV_COLUMNS, companions=[args.out.with_suffix(".jsonl")])
    return run(lambda: _scan(args), (FileNotFoundError, ValueError, RayWorkerError))


def _scan(args: argparse.Namespace) -> int:
    ray = ray_options(args)
    files = expand_inputs(args.inputs, args.recursive)
    pipe = P.Pipeline(config_from_args(args))
    statuses = pipe.load_all()
    require_ready(statuses, "latent_svm", "--attribution", args.attribution)
    for status in statuses:
        if not status.ready:
            print(f"note: {status.branch} is off: {status.reason}", file=sys.stderr)
    stop = StopFlag()
    previous = signal.signal(signal.SIGINT, stop)
    try:
        counts, finished = scan(files, args.out, pipe, progress=not args.no_progress, stop=stop,
                                report_dir=args.report, per_face=args.per_face, ray=ray)
    except KeyboardInterrupt:
        print(f"\ninterrupted; {args.out} holds every finished row: re-run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if v)
    print(f"{args.out} ({args.out.with_suffix('.jsonl').name} beside it): {summary}", file=sys.stderr)
    if not finished:
        print("stopped early; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK
