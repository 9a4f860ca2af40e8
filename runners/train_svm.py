"""Train the latent attribution SVM on extracted W+ shards and write the artifact plus a report folder.

LATENTS is a folder written by scripts/extract_latents.py. The rows are split by group (an image and its augmented
copies never straddle): a validation part (--validation-fraction) is held out; C is picked from --C by stratified
group k-fold cross-validation on the rest (balanced accuracy of StandardScaler + LinearSVC); the calibrated model
is fitted
on the rest with group-aware calibration folds, and the open-set thresholds are set on the validation part.

Outputs: OUT, a .skops file (safe to share: it loads without running code) or, for an OUT ending in .joblib, the
legacy pickle plus OUT.sha256; the report folder (default: OUT without suffix + "_report") with
metrics.json (per-class precision/recall/F1, ECE, Brier, log loss, accuracy per augmentation resolution, CV
mean ± std per C, the open-set rule and its known-class rejection rate), confusion_matrix.json/.png and
reliability.png.

Exit status: 0 done; 2 bad input (not a shard folder, unfinished extraction, unknown class, fewer than two
classes, too few groups for the folds, OUT exists without --force, OUT not .skops/.joblib).

With --push-to-hub OWNER/NAME the .skops file and a model card are staged in OUT without suffix + "_hub" and
uploaded as a Hub model repo (--dry-run: stage and list the files, upload nothing); anyone can then pass
--attribution hf://OWNER/NAME to the app, scan.py or evaluate.py.

Example:
  python scripts/train_svm.py /tmp/latents --out /tmp/svm/latent_svm.skops --classes progan stylegan2 stylegan3
  python scripts/train_svm.py /tmp/latents --out /tmp/svm/latent_svm.skops --push-to-hub me/gantrace-svm --dry-run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from attribution.latent_shards import load_latent_set
from attribution.latent_svm import LatentAttributor
from attribution.latent_training import feature_spec, select_C, write_training_report
from attribution.share import push_staged, stage_attributor
from runners.cli import EXIT_OK, run
from core.errors import InputError
from runners.preflight import require_output


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_output(Path(args.out))
    return run(lambda: _run(args), (FileNotFoundError, ValueError))


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    report = Path(args.report) if args.report else out.with_name(out.stem + "_report")
    if out.exists() and not args.force:
        raise InputError(f"{out} exists; pass --force to overwrite it")
    if out.suffix not in (".skops", ".joblib"):
        raise InputError(f"{out}: the artifact must end in .skops (or legacy .joblib)")
    if args.dry_run and not args.push_to_hub:
        raise InputError("--dry-run only applies to --push-to-hub")
    if args.push_to_hub and out.suffix != ".skops":
        raise InputError(f"{out}: only a .skops artifact can be pushed to the Hub (a pickle would run code)")
    data = load_latent_set(Path(args.latents), args.classes)
    classes = sorted(set(data.labels.tolist()))
    if len(classes) < 2:
        raise InputError(f"{args.latents}: need at least two classes with latents, found {classes}")
    encoder = data.manifest["settings"]["encoder"]
    tiny = encoder["kind"] == "tiny-random"
    if tiny:
        print(f"WARNING: these latents come from the {encoder['warning']}", file=sys.stderr)
    print(f"{len(data.labels)} latents, {len(np.unique(data.groups))} groups, classes {classes}")

    class_weight = None if args.class_weight == "none" else args.class_weight
    selection = select_C(data, args.C, class_weight, args.cv_folds, args.validation_fraction, args.seed)
    best_C = selection["chosen_C"]
    print(f"chosen C = {best_C} (group {args.cv_folds}-fold CV balanced accuracy "
          f"{selection['cv'][str(best_C)]['mean']:.3f} ± {selection['cv'][str(best_C)]['std']:.3f})")

    attributor = LatentAttributor(C=best_C, class_weight=class_weight, calibration_folds=args.calibration_folds,
                                  validation_fraction=args.validation_fraction, coverage=args.coverage,
                                  distance_quantile=args.distance_quantile, random_state=args.seed)
    attributor.fit(data.latents, data.labels, data.groups, feature_spec=feature_spec(data))
    attributor.metadata["model_selection"] = selection
    attributor.metadata["data"]["inputs"] = data.manifest["settings"].get("inputs")
    if tiny:
        attributor.metadata["warning"] = "trained on tiny-random encoder latents: " + encoder["warning"]
    digest = attributor.save(out)

    metrics = write_training_report(attributor, data, selection, out, digest, report)
    validation = metrics["validation"]
    open_set = metrics["open_set"]
    print(f"artifact: {out} (sha256 {digest})")
    print(f"validation: accuracy {validation['accuracy']:.3f} (balanced {validation['balanced_accuracy']:.3f}), "
          f"ECE {validation['ece']:.3f}, Brier {validation['brier']:.3f} on {validation['n']} latents")
    print(f"open set: {open_set['rule']}; rejects {open_set['validation_rejected']:.1%} of known-class validation")
    print(f"report: {report}")
    if tiny:
        print("WARNING: tiny-random encoder latents: these numbers measure plumbing, not attribution quality")
    if args.push_to_hub:
        folder = out.with_name(out.stem + "_hub")
        staged = stage_attributor(out, folder, args.push_to_hub, args.licence)
        print(f"staged for {args.push_to_hub} in {folder}: {', '.join(path.name for path in staged)}")
        if not args.dry_run:
            print(f"pushed: {push_staged(folder, args.push_to_hub)}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("latents", help="shard folder written by extract_latents.py")
    parser.add_argument("--out", required=True,
                        help="artifact path: .skops (safe to share) or legacy .joblib (+ OUT.sha256)")
    parser.add_argument("--report", help="report folder (default: OUT without suffix + '_report')")
    parser.add_argument("--classes", nargs="+", help="train on these classes only (default: all in the shards)")
    parser.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1],
                        help="SVM C, or several to pick from by group CV (default 0.001 0.01 0.1)")
    parser.add_argument("--class-weight", choices=["balanced", "none"], default="balanced",
                        help="balanced (default): weigh classes inversely to their size; none: every latent equal")
    parser.add_argument("--cv-folds", type=int, default=5, help="group CV folds for picking C (default 5)")
    parser.add_argument("--calibration-folds", type=int, default=5, help="group folds for sigmoid calibration")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help="share of groups held out for metrics and the open-set thresholds (default 0.2)")
    parser.add_argument("--coverage", type=float, default=0.95,
                        help="share of known-class validation latents the probability floor keeps (default 0.95)")
    parser.add_argument("--distance-quantile", type=float, default=0.99,
                        help="validation quantile of the distance to the nearest class mean used as ceiling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing artifact")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME", help="upload the .skops and a model card to this repo")
    parser.add_argument("--dry-run", action="store_true", help="with --push-to-hub: stage and list, upload nothing")
    parser.add_argument("--licence", default="other", help="licence id for the model card (default: other)")
    return parser
