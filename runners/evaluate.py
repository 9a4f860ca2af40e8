"""Evaluate GANTrace on a labelled image set, per branch and fused, clean and under perturbations.

    python scripts/evaluate.py ../shared/data/faces --out reports/eval
    python scripts/evaluate.py DATA --sweep original jpeg75 down0.5 --limit-per-class 20 --out reports/quick

DATA is a folder of class subfolders, a CSV path,label[,group] or a provenance.csv (see core.datasets): `real`,
and any of `progan`, `stylegan2`, `stylegan3` (the known generators); every other class (e.g. `other_gan`,
`diffusion`) is a generator outside the known three, used to measure the open set. Reported, for each branch and
for the fused verdict:

* detection, real vs every fake: ROC AUC, average precision, TPR at 1 % and 5 % FPR, and at the 0.5 decision
  point the TPR and the FPR (the share of real photos called fake);
* attribution on fakes of the known classes: accuracy and balanced accuracy of the label the tool outputs
  (open-set "unknown" and, fused, "real" count as wrong), the closed-set accuracy (best known architecture), and
  the confusion matrix;
* open set, for every other class: the share labelled "unknown", called real, left undecided, and forced into a
  known class;
* undecided, per class: the images the fused verdict labelled "undecided" (nothing with the skill voted on real
  vs fake). They count as neither a right nor a wrong answer: detection and attribution leave them out.

Each condition of --sweep re-encodes the decoded pixels (JPEG 95/75/50, PNG after a 0.5×/0.25× downscale or a
centre crop to half the side) and sends the bytes through the pipeline. Output in --out: metrics.json,
predictions.jsonl (every image × condition), summary.md and PNG plots. `--limit-per-class N` picks N images per
class at random with a fixed seed, spread over sources (default: every image).

Exit status: 0 done; 1 no branch could run (the notes say how to enable one); 2 bad input (no such data, no
'real' class or no generator class, a malformed CSV).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pipeline as P
from runners.cli import EXIT_OK, EXIT_UNUSABLE, add_pipeline_arguments, config_from_args, positive_int, run
from runners.preflight import require_output, require_ready
from runners.evaluation import PERTURBATIONS, collect_dataset, evaluate_dataset, summary_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="folder of class subfolders, a CSV or a provenance.csv")
    parser.add_argument("--out", type=Path, default=Path("reports/eval"), help="folder for the report")
    parser.add_argument("--sweep", nargs="+", default=list(PERTURBATIONS), choices=list(PERTURBATIONS),
                        help="conditions to evaluate (default: all)")
    parser.add_argument("--limit-per-class", type=positive_int, default=None,
                        help="seeded random subset per class (default: every image)")
    parser.add_argument("--seed", type=int, default=0)
    add_pipeline_arguments(parser)
    args = parser.parse_args(argv)
    require_output(args.out, folder=True)
    return run(lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    items = collect_dataset(args.dataset, args.limit_per_class, args.seed)
    pipe = P.Pipeline(config_from_args(args, find_faces=False))
    statuses = pipe.load_all()
    require_ready(statuses, "latent_svm", "--attribution", args.attribution)
    for status in statuses:
        if not status.ready:
            print(f"note: {status.branch} is off: {status.reason}", file=sys.stderr)
    if not any(status.ready for status in statuses):
        print("error: no branch can run, so there is nothing to evaluate (see the notes above for how to enable "
              "one)", file=sys.stderr)
        return EXIT_UNUSABLE
    extra = {"limit_per_class": args.limit_per_class, "seed": args.seed,
             "branches": [s.to_dict() for s in statuses]}
    report = evaluate_dataset(pipe, items, args.sweep, args.out, str(args.dataset), not args.no_progress, extra)
    print(summary_markdown(report))
    print(f"\nwrote {args.out}/: metrics.json, predictions.jsonl, summary.md, {', '.join(report['plots'])}",
          file=sys.stderr)
    return EXIT_OK
