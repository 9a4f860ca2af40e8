"""Train the latent attribution SVM on extracted W+ shards and write the artifact plus a report folder.

LATENTS is a folder written by scripts/extract_latents.py. The rows are split by group (an image and its augmented
copies never straddle): a validation part (--validation-fraction) is held out; C is picked from --C by stratified
group k-fold cross-validation on the rest (balanced accuracy of StandardScaler + LinearSVC); the calibrated model
is fitted
on the rest with group-aware calibration folds, and the open-set thresholds are set on the validation part.

Outputs: OUT (joblib) and OUT.sha256; the report folder (default: OUT without suffix + "_report") with
metrics.json (per-class precision/recall/F1, ECE, Brier, log loss, accuracy per augmentation resolution, CV
mean ± std per C, the open-set rule and its known-class rejection rate), confusion_matrix.json/.png and
reliability.png.

Exit status: 0 done; 2 bad input (not a shard folder, unfinished extraction, unknown class, fewer than two
classes, too few groups for the folds, OUT exists without --force).

Example:
  python scripts/train_svm.py /tmp/latents --out /tmp/svm/latent_svm.joblib --classes progan stylegan2 stylegan3
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from attribution.latent_shards import LatentSet, load_latent_set
from attribution.latent_svm import LatentAttributor, group_folds, group_validation_split
from attribution.report import accuracy_by_bins, plot_confusion_matrix, plot_reliability
from core.preflight import require_output


class InputError(ValueError):
    """Bad command-line input; main() prints it as one line and exits with status 2."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_output(Path(args.out))
    try:
        return _run(args)
    except (InputError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    report = Path(args.report) if args.report else out.with_name(out.stem + "_report")
    if out.exists() and not args.force:
        raise InputError(f"{out} exists; pass --force to overwrite it")
    data = load_latent_set(Path(args.latents), args.classes)
    classes = sorted(set(data.labels.tolist()))
    if len(classes) < 2:
        raise InputError(f"{args.latents}: need at least two classes with latents, found {classes}")
    encoder = data.manifest["settings"]["encoder"]
    tiny = encoder["kind"] == "tiny-random"
    if tiny:
        print(f"WARNING: these latents come from the {encoder['warning']}", file=sys.stderr)
    print(f"{len(data.labels)} latents, {len(np.unique(data.groups))} groups, classes {classes}")

    selection = _select_C(data, args)
    best_C = selection["chosen_C"]
    print(f"chosen C = {best_C} (group {args.cv_folds}-fold CV balanced accuracy "
          f"{selection['cv'][str(best_C)]['mean']:.3f} ± {selection['cv'][str(best_C)]['std']:.3f})")

    attributor = LatentAttributor(C=best_C, class_weight=_class_weight(args), calibration_folds=args.calibration_folds,
                                  validation_fraction=args.validation_fraction, coverage=args.coverage,
                                  distance_quantile=args.distance_quantile, random_state=args.seed)
    attributor.fit(data.latents, data.labels, data.groups, feature_spec=_feature_spec(data))
    attributor.metadata["model_selection"] = selection
    if tiny:
        attributor.metadata["warning"] = "trained on tiny-random encoder latents: " + encoder["warning"]
    digest = attributor.save(out)

    metrics = _report(attributor, data, selection, out, digest, report)
    validation = metrics["validation"]
    open_set = metrics["open_set"]
    print(f"artifact: {out} (sha256 {digest})")
    print(f"validation: accuracy {validation['accuracy']:.3f} (balanced {validation['balanced_accuracy']:.3f}), "
          f"ECE {validation['ece']:.3f}, Brier {validation['brier']:.3f} on {validation['n']} latents")
    print(f"open set: {open_set['rule']}; rejects {open_set['validation_rejected']:.1%} of known-class validation")
    print(f"report: {report}")
    if tiny:
        print("WARNING: tiny-random encoder latents: these numbers measure plumbing, not attribution quality")
    return 0


def _select_C(data: LatentSet, args: argparse.Namespace) -> dict[str, Any]:
    """Group k-fold CV of StandardScaler + LinearSVC per C on the training part only (validation stays unseen)."""
    train, _ = group_validation_split(data.labels, data.groups, args.validation_fraction, args.seed)
    features = data.latents[train].reshape(len(train), -1).astype(np.float32)
    folds = group_folds(data.labels[train], data.groups[train], args.cv_folds, args.seed)
    results = {}
    for C in args.C:
        svm = LinearSVC(C=C, class_weight=_class_weight(args), max_iter=10000, random_state=args.seed)
        model = Pipeline([("scale", StandardScaler()), ("svm", svm)])
        scores = cross_val_score(model, features, data.labels[train], cv=folds, scoring="balanced_accuracy")
        results[str(C)] = {"mean": float(scores.mean()), "std": float(scores.std()), "folds": scores.tolist()}
    best = max(args.C, key=lambda C: (round(results[str(C)]["mean"], 6), -C))
    return {"metric": "balanced accuracy (uncalibrated LinearSVC, StratifiedGroupKFold on the training part)",
            "folds": args.cv_folds, "cv": results, "chosen_C": best}


def _class_weight(args: argparse.Namespace) -> str | None:
    return None if args.class_weight == "none" else args.class_weight


def _feature_spec(data: LatentSet) -> dict[str, Any]:
    """What the encoder side must reproduce at inference for these features to mean the same thing."""
    settings = data.manifest["settings"]
    return {"latent_avg_added": settings["encoder"]["latent_avg_added"],
            "encoder": settings["encoder"]["kind"],
            "encoder_weights_sha256": settings["encoder"]["weights_sha256"],
            "encoder_precision": settings["precision"],
            "preprocessing": settings["preprocessing"],
            "shards_settings_sha256": data.manifest["settings_sha256"]}


def _report(attributor: LatentAttributor, data: LatentSet, selection: dict[str, Any], out: Path, digest: str,
            report: Path) -> dict[str, Any]:
    report.mkdir(parents=True, exist_ok=True)
    validation_rows = attributor.validation_index_
    probabilities = attributor.predict_proba(data.latents[validation_rows])
    correct = attributor.classes_[probabilities.argmax(axis=1)] == data.labels[validation_rows]
    resolutions = data.resolutions[validation_rows]
    low, high = int(resolutions.min()), int(resolutions.max())
    edges = [2 ** k for k in range(int(math.log2(low)), int(math.log2(high)) + 2)]
    metadata = attributor.metadata
    metrics = {
        "artifact": str(out), "sha256": digest, "classes": metadata["classes"],
        "validation": {key: value for key, value in metadata["validation"].items() if key != "confusion_matrix"},
        "accuracy_by_resolution": accuracy_by_bins(resolutions, correct, edges),
        "model_selection": selection, "open_set": metadata["open_set"], "calibration": metadata["calibration"],
        "data": metadata["data"], "feature_spec": metadata["feature_spec"], "versions": metadata["versions"],
    }
    if "warning" in metadata:
        metrics["warning"] = metadata["warning"]
    matrix = metadata["validation"]["confusion_matrix"]
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (report / "confusion_matrix.json").write_text(json.dumps(matrix, indent=2) + "\n", encoding="utf-8")
    plot_confusion_matrix(matrix["matrix"], matrix["labels"], report / "confusion_matrix.png",
                          title="Latent SVM, validation (closed set)")
    plot_reliability(metadata["validation"]["reliability"], report / "reliability.png",
                     title=f"Latent SVM reliability (ECE {metadata['validation']['ece']:.3f})")
    metrics["validation"] = metadata["validation"]
    return metrics


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("latents", help="shard folder written by extract_latents.py")
    parser.add_argument("--out", required=True, help="artifact path (.joblib); OUT.sha256 is written beside it")
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
    return parser


if __name__ == "__main__":
    sys.exit(main())
