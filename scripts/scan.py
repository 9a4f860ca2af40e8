"""Scan files, folders or globs and write one CSV row (and one JSON line with the full verdict) per file.

    python scripts/scan.py photos/ --out results.csv
    python scripts/scan.py "cases/**/*.jpg" suspect.png --out case12.csv --device cpu --batch-size 8
    python scripts/scan.py archive/ --recursive --out archive.csv      # re-run the same command to resume
    python scripts/scan.py case12/ --out case12.csv --report case12-reports   # + one HTML evidence report per image
    python scripts/scan.py archive/ --recursive --out archive.csv --ray auto   # the same rows, on a Ray cluster

The CSV has the columns of `pipeline.CSV_COLUMNS` (file, sha256, label, is_fake, fake_probability, p_<label>...,
faces = how many were analysed, face = the one the row is about, warnings, error): one row per image for its most
suspicious face, or one per face with --per-face; `results.jsonl` beside it holds every full Verdict with every
face. `label` is real, progan, stylegan2, stylegan3, unknown (fake, no known architecture fits) or undecided (no
branch with the skill to vote decided real vs fake; is_fake and the p_ columns are then empty): see README's "How
it decides"; the JSON lines carry `schema_version`. The summary line counts each label (e.g. `undecided: 19`).
A file that cannot be analysed gets a row with its error. Rows are appended and flushed one by one, and files
already in the CSV are skipped, so an interrupted scan (Ctrl-C, a crash, a reboot) resumes where it stopped; the
first Ctrl-C finishes the current batch and stops cleanly, a second one stops at once. Files are identified by the
path as written on the command line (after folder and glob expansion), so resume from the same working directory.

Exit status: 0 every file done (files that cannot be analysed have a row with their error); 2 bad input (an
argument that matches no file, an --out CSV that is not a scan's); 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import sys

from runners.batch_scan import main

if __name__ == "__main__":
    sys.exit(main(description=__doc__))
