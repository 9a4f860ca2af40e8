"""Evaluate GANTrace on a labelled folder-per-class dataset, per branch and fused, clean and under perturbations.

    python scripts/evaluate.py ../shared/data/faces --out reports/eval
    python scripts/evaluate.py DATA --sweep original jpeg75 down0.5 --limit-per-class 20 --out reports/quick

DATA holds one folder per class: `real`, and any of `progan`, `stylegan2`, `stylegan3` (the known generators);
every other folder (e.g. `other_gan`, `diffusion`) is a generator outside the known three, used to measure the
open set. Reported, for each branch (clip_probe, fingerprint_net, latent_svm) and for the fused verdict:

* detection, real vs every fake: ROC AUC, average precision, TPR at 1 % and 5 % FPR, and at the 0.5 decision
  point the TPR and the FPR (the share of real photos called fake);
* attribution on fakes of the known classes: accuracy and balanced accuracy of the label the tool outputs
  (open-set "unknown" and, fused, "real" count as wrong), the closed-set accuracy (best known architecture), and
  the confusion matrix;
* open set, for every other folder: the share labelled "unknown", called real, and forced into a known class.

Each perturbation of the sweep is applied to the decoded pixels and re-encoded (JPEG at quality 95/75/50, or PNG
after a 0.5×/0.25× Lanczos downscale or a centre crop to half the side); the resulting *bytes* go through the
pipeline, so core.images sees a real JPEG exactly as an uploaded one. Output in --out: metrics.json,
predictions.jsonl (every image × condition), summary.md and PNG plots. `--limit-per-class N` draws N images per
class at random with a fixed seed (a sorted prefix would come from one source only).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)
from tqdm import tqdm

import pipeline as P
from attribution.fusion import (
    ARCHITECTURES,
    BranchEvidence,
    FusionConfig,
    architecture_distribution,
    branch_fake_probability,
    open_set_reasons,
)
from core.images import ImageError, encode_image, list_images, load_image
from core.preflight import require_output, require_ready

KNOWN_CLASSES = ("real", *ARCHITECTURES)
FUSED = "fused"
SOURCES = (*P.BRANCHES, FUSED)


def _jpeg(quality: int) -> Callable[[np.ndarray], bytes]:
    def apply(pixels: np.ndarray) -> bytes:
        return encode_image(Image.fromarray(pixels), "JPEG", quality=quality)
    return apply


def _downscale(factor: float) -> Callable[[np.ndarray], bytes]:
    def apply(pixels: np.ndarray) -> bytes:
        image = Image.fromarray(pixels)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return encode_image(image.resize(size, Image.Resampling.LANCZOS), "PNG")
    return apply


def _centre_crop(fraction: float) -> Callable[[np.ndarray], bytes]:
    def apply(pixels: np.ndarray) -> bytes:
        height, width = pixels.shape[:2]
        h, w = max(1, round(height * fraction)), max(1, round(width * fraction))
        top, left = (height - h) // 2, (width - w) // 2
        return encode_image(Image.fromarray(pixels[top:top + h, left:left + w]), "PNG")
    return apply


PERTURBATIONS: dict[str, Callable[[np.ndarray], bytes] | None] = {
    "original": None,
    "jpeg95": _jpeg(95), "jpeg75": _jpeg(75), "jpeg50": _jpeg(50),
    "down0.5": _downscale(0.5), "down0.25": _downscale(0.25),
    "crop0.5": _centre_crop(0.5),
}


# -- metrics (sklearn does the counting; these only choose what to count) ------------------------------------------

def tpr_at_fpr(is_fake: Sequence[bool], scores: Sequence[float], max_fpr: float) -> float:
    """The highest true-positive rate reachable with a false-positive rate of at most `max_fpr`."""
    fpr, tpr, _ = roc_curve(np.asarray(is_fake, dtype=int), np.asarray(scores, dtype=float), drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def detection_metrics(is_fake: Sequence[bool], scores: Sequence[float], threshold: float = 0.5) -> dict:
    """Real-vs-fake ranking quality (AUC, AP, TPR at low FPR) and the rates at the decision threshold."""
    y = np.asarray(is_fake, dtype=int)
    s = np.asarray(scores, dtype=float)
    called = s >= threshold
    result = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
              "tpr_at_threshold": float(called[y == 1].mean()) if (y == 1).any() else None,
              "fpr_at_threshold": float(called[y == 0].mean()) if (y == 0).any() else None}
    if len(set(y.tolist())) < 2:
        return {**result, "roc_auc": None, "average_precision": None, "tpr_at_fpr_1pct": None,
                "tpr_at_fpr_5pct": None}
    return {**result, "roc_auc": float(roc_auc_score(y, s)), "average_precision": float(average_precision_score(y, s)),
            "tpr_at_fpr_1pct": tpr_at_fpr(y, s, 0.01), "tpr_at_fpr_5pct": tpr_at_fpr(y, s, 0.05)}


def attribution_metrics(true: Sequence[str], predicted: Sequence[str], closed_set: Sequence[str] | None = None,
                        classes: Sequence[str] = ARCHITECTURES) -> dict:
    """Accuracy, balanced accuracy and confusion matrix over the known architectures.

    `predicted` may hold labels outside `classes` ("unknown", "real"): they count as errors and get their own
    confusion-matrix columns. `closed_set` (best known architecture, no open-set rule) gives closed_set_accuracy.
    """
    if not true:
        return {"n": 0}
    extra = sorted(set(predicted) - set(classes))
    columns = [*classes, *extra]
    matrix = confusion_matrix(list(true), list(predicted), labels=columns)[:len(classes)]
    recall = {c: float(matrix[i, i] / matrix[i].sum()) for i, c in enumerate(classes) if matrix[i].sum()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(list(true), list(predicted))
    result = {"n": len(true), "accuracy": float(accuracy_score(true, predicted)),
              "balanced_accuracy": float(balanced),
              "recall": recall, "confusion": {"rows": list(classes), "columns": columns, "matrix": matrix.tolist()}}
    if closed_set is not None:
        result["closed_set_accuracy"] = float(accuracy_score(true, closed_set))
        result["closed_set_balanced_accuracy"] = float(balanced_accuracy_score(true, closed_set))
    return result


def open_set_rates(labels: Sequence[str], called_real: Sequence[bool]) -> dict:
    """For images of an unknown generator: share labelled unknown, share called real, share forced into a class."""
    labels = list(labels)
    if not labels:
        return {"n": 0}
    unknown = np.asarray([label == "unknown" for label in labels])
    real = np.asarray(called_real, dtype=bool)
    return {"n": len(labels), "unknown_rate": float(unknown.mean()), "called_real_rate": float(real.mean()),
            "known_class_rate": float((~unknown & ~real).mean())}


# -- per-image outcomes --------------------------------------------------------------------------------------------

def branch_outcomes(verdict: dict, fusion: FusionConfig) -> dict[str, dict]:
    """For every branch and the fused verdict: P(fake), the label it alone would give, and its best architecture.

    A branch's own label applies the same open-set rules as the fused verdict to that branch's evidence alone.
    """
    outcomes = {}
    for branch in P.BRANCHES:
        raw = verdict["evidence"].get(branch) or {}
        evidence = BranchEvidence(raw.get("probabilities"), raw.get("label"), raw.get("reason"))
        if not evidence.ran:
            outcomes[branch] = {"ran": False, "reason": evidence.reason}
            continue
        alone = {branch: evidence}
        dist = architecture_distribution(alone, fusion)
        reasons = open_set_reasons(alone, dist, fusion) if dist is not None else ["no attribution"]
        outcomes[branch] = {"ran": True, "p_fake": branch_fake_probability(branch, evidence),
                            "label": "unknown" if reasons else max(dist, key=dist.get),
                            "closed_set": max(dist, key=dist.get) if dist is not None else None}
    all_evidence = {b: BranchEvidence(e.get("probabilities"), e.get("label"), e.get("reason"))
                    for b, e in verdict["evidence"].items() if e}
    dist = architecture_distribution(all_evidence, fusion)
    ran = verdict["fake_probability"] is not None
    outcomes[FUSED] = {"ran": ran, "p_fake": verdict["fake_probability"], "label": verdict["label"],
                       "closed_set": max(dist, key=dist.get) if dist else None,
                       "reason": None if ran else "no real-vs-fake detector ran"}
    return outcomes


def condition_metrics(records: list[dict], threshold: float = 0.5) -> dict:
    """All metrics of one condition, per source (branch or fused), from the per-image records."""
    metrics = {}
    for source in SOURCES:
        ran = [r for r in records if r["outcomes"].get(source, {}).get("ran")]
        if not ran:
            reasons = {r["outcomes"].get(source, {}).get("reason") for r in records} - {None}
            metrics[source] = {"ran": False, "reason": "; ".join(sorted(reasons)) or "no image analysed"}
            continue
        scored = [r for r in ran if r["outcomes"][source]["p_fake"] is not None]
        detect = detection_metrics([r["class"] != "real" for r in scored],
                                   [r["outcomes"][source]["p_fake"] for r in scored], threshold) if scored else None
        known = [r for r in ran if r["class"] in ARCHITECTURES and r["outcomes"][source]["closed_set"] is not None]
        attribution = attribution_metrics([r["class"] for r in known], [r["outcomes"][source]["label"] for r in known],
                                          [r["outcomes"][source]["closed_set"] for r in known]) if known else None
        open_set = {}
        for cls in sorted({r["class"] for r in ran} - set(KNOWN_CLASSES)):
            members = [r["outcomes"][source] for r in ran if r["class"] == cls]
            open_set[cls] = open_set_rates(
                [m["label"] for m in members],
                [m["p_fake"] is not None and m["p_fake"] < threshold for m in members])
        metrics[source] = {"ran": True, "n": len(ran), "detection": detect, "attribution": attribution,
                           "open_set": open_set}
    return metrics


# -- running -------------------------------------------------------------------------------------------------------

def collect_dataset(root: Path, limit_per_class: int | None, seed: int) -> list[tuple[str, Path]]:
    """(class, path) for every image in every class folder, optionally a seeded random subset per class."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    names = {p.name for p in folders}
    if "real" not in names or not names - {"real"}:
        raise ValueError(f"{root} needs a 'real' folder and at least one generator folder; found {sorted(names)}")
    rng = random.Random(seed)
    items = []
    for folder in folders:
        files = list_images(folder)
        if limit_per_class is not None and len(files) > limit_per_class:
            files = sorted(rng.sample(files, limit_per_class))
        items.extend((folder.name, path) for path in files)
    return items


def perturbed_sources(items: list[tuple[str, Path]], condition: str, limits) -> Iterator[tuple[str, Path, object]]:
    """What the pipeline receives for each image under a condition: the file itself, or re-encoded bytes."""
    perturb = PERTURBATIONS[condition]
    for cls, path in items:
        if perturb is None:
            yield cls, path, str(path)
            continue
        try:
            pixels = load_image(path, limits).pixels
        except ImageError as err:
            yield cls, path, err
            continue
        yield cls, path, perturb(pixels)


def evaluate(pipe: P.Pipeline, items: list[tuple[str, Path]], conditions: Sequence[str], root: Path,
             predictions_path: Path, progress: bool = True) -> dict:
    """Run every condition, write one prediction line per image × condition, return the metrics per condition."""
    results: dict[str, dict] = {}
    with open(predictions_path, "w", encoding="utf-8") as out:
        for condition in conditions:
            records = []
            errors = []
            stream = perturbed_sources(items, condition, pipe.config.limits)
            bar = tqdm(total=len(items), desc=condition, unit="img", disable=not progress)
            for chunk in _chunks(stream, pipe.config.batch_size):
                ready = [(cls, path, src) for cls, path, src in chunk if not isinstance(src, Exception)]
                errors += [f"{src}" for _, _, src in chunk if isinstance(src, Exception)]
                names = [str(path.relative_to(root)) for _, path, _ in ready]
                verdicts = pipe.analyze([src for _, _, src in ready], names=names) if ready else []
                for (cls, _, _), name, result in zip(ready, names, verdicts):
                    if isinstance(result, P.Failure):
                        errors.append(result.error)
                        continue
                    record = {"condition": condition, "file": name, "class": cls,
                              "outcomes": branch_outcomes(result.to_dict(), pipe.config.fusion)}
                    records.append(record)
                    out.write(json.dumps(record) + "\n")
                bar.update(len(chunk))
            bar.close()
            results[condition] = {"n_images": len(records), "n_errors": len(errors), "errors": errors[:20],
                                  "metrics": condition_metrics(records)}
    return results


def _chunks(stream: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in stream:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- reporting -----------------------------------------------------------------------------------------------------

def summary_markdown(report: dict) -> str:
    """A table per condition that a reader can scan: detection, attribution and open-set rates per source."""
    lines = [f"# GANTrace evaluation: {report['dataset']}", "",
             "Images per class: " + ", ".join(f"{k} {v}" for k, v in report["images_per_class"].items()), "",
             "Detection is real vs every fake; attribution is on fakes of the known classes (the label as output: "
             "'unknown' and 'real' count as wrong; closed = best known architecture); open set is every other "
             "folder (unknown = share labelled unknown, real = share called real).", ""]
    for condition, result in report["conditions"].items():
        lines += [f"## {condition} ({result['n_images']} images, {result['n_errors']} not analysed)", "",
                  "| source | AUC | AP | TPR@1%FPR | TPR@5%FPR | TPR@0.5 | FPR@0.5 | attr. acc | attr. bal. acc | "
                  "closed acc | open set: unknown / real |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for source, m in result["metrics"].items():
            if not m["ran"]:
                lines.append(f"| {source} | did not run: {m['reason'][:160]} |" + " |" * 9)
                continue
            d = m["detection"] or {}
            a = m["attribution"] or {}
            open_set = "; ".join(f"{cls} {o['unknown_rate']:.2f} / {o['called_real_rate']:.2f}"
                                 for cls, o in m["open_set"].items() if o.get("n"))
            lines.append("| " + " | ".join([source, _f(d.get("roc_auc")), _f(d.get("average_precision")),
                                             _f(d.get("tpr_at_fpr_1pct")), _f(d.get("tpr_at_fpr_5pct")),
                                             _f(d.get("tpr_at_threshold")), _f(d.get("fpr_at_threshold")),
                                             _f(a.get("accuracy")), _f(a.get("balanced_accuracy")),
                                             _f(a.get("closed_set_accuracy")), open_set or "–"]) + " |")
        lines.append("")
    return "\n".join(lines)


def write_plots(report: dict, out: Path) -> list[str]:
    """ROC curves (original), robustness across the sweep, and the fused confusion matrix, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    conditions = list(report["conditions"])
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for source in SOURCES:
        aucs = [_get(report, c, source, "detection", "roc_auc") for c in conditions]
        accs = [_get(report, c, source, "attribution", "balanced_accuracy") for c in conditions]
        if any(v is not None for v in aucs):
            axes[0].plot(conditions, [np.nan if v is None else v for v in aucs], marker="o", label=source)
        if any(v is not None for v in accs):
            axes[1].plot(conditions, [np.nan if v is None else v for v in accs], marker="o", label=source)
    for ax, title in zip(axes, ("detection ROC AUC", "attribution balanced accuracy")):
        ax.set_title(title)
        ax.set_ylim(0, 1.02)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    figure.tight_layout()
    figure.savefig(out / "robustness.png", dpi=110)
    plt.close(figure)
    written.append("robustness.png")

    first = conditions[0]
    fused = report["conditions"][first]["metrics"].get(FUSED, {})
    confusion = (fused.get("attribution") or {}).get("confusion")
    if confusion:
        figure, ax = plt.subplots(figsize=(5, 3.6))
        matrix = np.asarray(confusion["matrix"])
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(confusion["columns"])), confusion["columns"], rotation=30)
        ax.set_yticks(range(len(confusion["rows"])), confusion["rows"])
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center")
        ax.set_xlabel("predicted (fused)")
        ax.set_ylabel("true")
        ax.set_title(f"fused attribution, {first}")
        figure.tight_layout()
        figure.savefig(out / "confusion_fused.png", dpi=110)
        plt.close(figure)
        written.append("confusion_fused.png")
    return written


def write_roc(predictions_path: Path, condition: str, out: Path) -> str | None:
    """ROC curves of every source that ran, for one condition, from predictions.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    records = [json.loads(line) for line in predictions_path.read_text(encoding="utf-8").splitlines()]
    records = [r for r in records if r["condition"] == condition]
    figure, ax = plt.subplots(figsize=(5, 5))
    drawn = False
    for source in SOURCES:
        pairs = [(r["class"] != "real", r["outcomes"][source]["p_fake"]) for r in records
                 if r["outcomes"].get(source, {}).get("ran") and r["outcomes"][source]["p_fake"] is not None]
        if len({y for y, _ in pairs}) < 2:
            continue
        truth, scores = [int(y) for y, _ in pairs], [s for _, s in pairs]
        fpr, tpr, _ = roc_curve(truth, scores)
        ax.plot(fpr, tpr, label=f"{source} (AUC {roc_auc_score(truth, scores):.3f})")
        drawn = True
    if not drawn:
        plt.close(figure)
        return None
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate (real called fake)")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"real vs fake, {condition}")
    ax.legend(loc="lower right")
    figure.tight_layout()
    name = f"roc_{condition}.png"
    figure.savefig(out / name, dpi=110)
    plt.close(figure)
    return name


def _get(report: dict, condition: str, source: str, group: str, key: str):
    metrics = report["conditions"][condition]["metrics"].get(source, {})
    return (metrics.get(group) or {}).get(key)


def _f(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None, pipe: P.Pipeline | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="folder with one sub-folder per class (real, progan, ...)")
    parser.add_argument("--out", type=Path, default=Path("reports/eval"), help="folder for the report")
    parser.add_argument("--sweep", nargs="+", default=list(PERTURBATIONS), choices=list(PERTURBATIONS),
                        help="conditions to evaluate (default: all)")
    parser.add_argument("--limit-per-class", type=int, default=None, help="seeded random subset per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--attribution", type=Path, default=None, help="latent SVM artifact (scripts/train_svm.py)")
    parser.add_argument("--fingerprint", default="fingerprintnet-small", help="registry name or .safetensors path")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    require_output(args.out, folder=True)
    if not args.dataset.is_dir():
        parser.error(f"{args.dataset} is not a folder")
    if args.limit_per_class is not None and args.limit_per_class < 1:
        parser.error("--limit-per-class must be at least 1")
    try:
        items = collect_dataset(args.dataset, args.limit_per_class, args.seed)
    except ValueError as err:
        parser.error(str(err))
    if pipe is None:
        pipe = P.Pipeline(P.PipelineConfig(device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                                           attribution_artifact=args.attribution,
                                           fingerprint_weights=args.fingerprint, find_faces=False))
    statuses = pipe.load_all()
    require_ready(statuses, "latent_svm", "--attribution", args.attribution)
    for status in statuses:
        if not status.ready:
            print(f"note: {status.branch} is off: {status.reason}", file=sys.stderr)
    if not any(status.ready for status in statuses):
        print("error: no branch can run, so there is nothing to evaluate (see the notes above for how to enable "
              "one)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    predictions = args.out / "predictions.jsonl"
    conditions = evaluate(pipe, items, args.sweep, args.dataset, predictions, progress=not args.no_progress)
    per_class: dict[str, int] = {}
    for cls, _ in items:
        per_class[cls] = per_class.get(cls, 0) + 1
    report = {"dataset": str(args.dataset), "images_per_class": per_class, "limit_per_class": args.limit_per_class,
              "seed": args.seed, "fusion": asdict(pipe.config.fusion),
              "branches": [s.to_dict() for s in statuses], "conditions": conditions}
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "summary.md").write_text(summary_markdown(report) + "\n", encoding="utf-8")
    plots = write_plots(report, args.out)
    roc = write_roc(predictions, args.sweep[0], args.out)
    plots += [roc] if roc else []
    print(summary_markdown(report))
    print(f"\nwrote {args.out}/: metrics.json, predictions.jsonl, summary.md, {', '.join(plots)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
