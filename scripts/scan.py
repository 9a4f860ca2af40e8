"""Scan files, folders or globs and write one CSV row (and one JSON line with the full verdict) per file.

    python scripts/scan.py photos/ --out results.csv
    python scripts/scan.py "cases/**/*.jpg" suspect.png --out case12.csv --device cpu --batch-size 8
    python scripts/scan.py archive/ --recursive --out archive.csv      # re-run the same command to resume
    python scripts/scan.py case12/ --out case12.csv --report case12-reports   # + one HTML evidence report per image
    python scripts/scan.py archive/ --recursive --out archive.csv --ray auto   # the same rows, on a Ray cluster

The CSV has the columns of `pipeline.CSV_COLUMNS` (file, sha256, label, is_fake, fake_probability, p_<label>...,
faces = how many were analysed, face = the one the row is about, warnings, error): one row per image for its most
suspicious face, or one per face with --per-face; `results.jsonl` beside it holds every full Verdict with every
face. A file that cannot be analysed gets a row
with its error. Rows are appended and flushed one by one, and files already in the CSV are skipped, so an
interrupted scan (Ctrl-C, a crash, a reboot) resumes where it stopped; the first Ctrl-C finishes the current
batch and stops cleanly, a second one stops at once. Files are identified by the path as written on the command
line (after folder and glob expansion), so resume from the same working directory.

Exit status: 0 every file done (files that cannot be analysed have a row with their error); 2 bad input (an
argument that matches no file, an --out CSV that is not a scan's); 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import pipeline as P
from batch_scan import StopFlag, expand_inputs, scan
from cli import EXIT_INTERRUPTED, EXIT_OK, add_pipeline_arguments, config_from_args, run
from core.preflight import require_output, require_ready
from ray_backend import RayWorkerError, add_ray_arguments, ray_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


if __name__ == "__main__":
    sys.exit(main())
