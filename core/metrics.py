"""Metrics and pictures of an evaluation: detection (real vs fake), attribution (which class) and calibration.

One module for every report (scripts/evaluate.py, train_svm.py, train_fingerprint.py), so an AUC, a TPR at low
FPR or an ECE means the same thing in each. Inputs are labels, scores or probabilities and class names; outputs
are JSON-able dicts and PNG files. sklearn does the counting; only the top-label ECE and the reliability table,
which sklearn has no multiclass form of, are written here. Plots use matplotlib's Agg canvas directly (no pyplot,
no global backend switch), so importing this module never touches a display.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)


def tpr_at_fpr(is_fake: Sequence[bool], scores: Sequence[float], max_fpr: float) -> float:
    """The highest true-positive rate reachable with a false-positive rate of at most `max_fpr`."""
    fpr, tpr, _ = roc_curve(np.asarray(is_fake, dtype=int), np.asarray(scores, dtype=float), drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def detection_metrics(is_fake: Sequence[bool], scores: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Real-vs-fake ranking quality (ROC AUC, AP, TPR at 1 % and 5 % FPR) and the rates at the decision threshold.

    The ranking numbers are None when only one class is present (they are undefined, not zero).
    """
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


def attribution_metrics(true: Sequence[str], predicted: Sequence[str], classes: Sequence[str],
                        closed_set: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, recall per class and confusion matrix of labels over known `classes`.

    `predicted` may hold labels outside `classes` ("unknown", "real"): they count as errors and get their own
    confusion-matrix columns. `closed_set` (best known class, no open-set rule) adds closed_set_accuracy.
    """
    if not true:
        return {"n": 0}
    classes = list(classes)
    columns = [*classes, *sorted(set(predicted) - set(classes))]
    matrix = confusion_matrix(list(true), list(predicted), labels=columns)[:len(classes)]
    recall = {c: float(matrix[i, i] / matrix[i].sum()) for i, c in enumerate(classes) if matrix[i].sum()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(list(true), list(predicted))
    result = {"n": len(true), "accuracy": float(accuracy_score(true, predicted)),
              "balanced_accuracy": float(balanced),
              "recall": recall, "confusion": {"rows": classes, "columns": columns, "matrix": matrix.tolist()}}
    if closed_set is not None:
        result["closed_set_accuracy"] = float(accuracy_score(true, closed_set))
        result["closed_set_balanced_accuracy"] = float(balanced_accuracy_score(true, closed_set))
    return result


def reliability_table(probabilities: np.ndarray, true_index: np.ndarray, n_bins: int = 10) -> dict[str, list]:
    """Top-label reliability: per equal-width confidence bin, mean confidence, accuracy and count."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == true_index
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    table: dict[str, list] = {"bin_low": [], "bin_high": [], "confidence": [], "accuracy": [], "count": []}
    for index in range(n_bins):
        members = bins == index
        table["bin_low"].append(float(edges[index]))
        table["bin_high"].append(float(edges[index + 1]))
        table["count"].append(int(members.sum()))
        table["confidence"].append(float(confidence[members].mean()) if members.any() else None)
        table["accuracy"].append(float(correct[members].mean()) if members.any() else None)
    return table


def expected_calibration_error(probabilities: np.ndarray, true_index: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: the count-weighted gap between confidence and accuracy over the reliability bins."""
    table = reliability_table(probabilities, true_index, n_bins)
    total = sum(table["count"])
    gaps = [count * abs(conf - acc) for count, conf, acc in
            zip(table["count"], table["confidence"], table["accuracy"]) if count]
    return float(sum(gaps) / total) if total else float("nan")


def classification_metrics(true_labels: Sequence[str], probabilities: np.ndarray, classes: Sequence[str],
                           n_bins: int = 10) -> dict[str, Any]:
    """Accuracy (plain and class-balanced), per-class precision/recall/F1, confusion matrix, ECE, Brier and log
    loss of argmax predictions.

    `probabilities` columns follow `classes` in any order; every true label must be one of them. Brier is sklearn's
    multiclass form (sum over classes of the squared error, averaged over samples).
    """
    classes = list(classes)
    true_labels = np.asarray(true_labels).astype(str)
    unknown = sorted(set(true_labels) - set(classes))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the classes {classes}")
    true_index = np.array([classes.index(label) for label in true_labels])
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
    order = np.argsort(classes)  # sklearn's probabilistic losses read columns in sorted label order
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted, labels=classes, zero_division=0)
    return {
        "n": int(len(true_labels)),
        "accuracy": float(accuracy_score(true_labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(true_labels, predicted)),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for name, p, r, f, s in zip(classes, precision, recall, f1, support)},
        "confusion_matrix": {"labels": classes,
                             "matrix": confusion_matrix(true_labels, predicted, labels=classes).tolist()},
        "ece": expected_calibration_error(probabilities, true_index, n_bins),
        "brier": float(brier_score_loss(true_labels, probabilities[:, order], labels=sorted(classes))),
        "log_loss": float(log_loss(true_labels, probabilities[:, order], labels=sorted(classes))),
        "reliability": reliability_table(probabilities, true_index, n_bins),
    }


def accuracy_by_bins(values: np.ndarray, correct: np.ndarray, edges: Sequence[float]) -> list[dict[str, Any]]:
    """Accuracy per [low, high) bin of a per-sample value (e.g. the augmentation resolution)."""
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        members = (values >= low) & (values < high)
        rows.append({"low": float(low), "high": float(high), "count": int(members.sum()),
                     "accuracy": float(correct[members].mean()) if members.any() else None})
    return rows


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], rows: Sequence[str], path: Path,
                          title: str = "Confusion matrix", columns: Sequence[str] | None = None) -> Path:
    """Save a confusion matrix (rows = true, columns = predicted; columns default to the rows) as a PNG."""
    matrix = np.asarray(matrix)
    columns = list(rows if columns is None else columns)
    figure = _figure((1.1 * len(columns) + 2.5, 1.0 * len(rows) + 2))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), value in np.ndenumerate(matrix):
        axes.text(column, row, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    axes.set_xticks(range(len(columns)), columns, rotation=30)
    axes.set_yticks(range(len(rows)), list(rows))
    axes.set(xlabel="predicted", ylabel="true", title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_roc_pr(scored: dict[str, tuple[Sequence[bool], Sequence[float]]], path: Path,
                title: str = "real vs fake") -> dict[str, dict[str, float]]:
    """Save ROC and precision-recall curves of each named (is_fake, score) set side by side; return AUC and AP.

    Sets with a single class are left out (their curves are undefined); returns {} and writes nothing when none
    is left.
    """
    usable = {name: (np.asarray(y, dtype=int), np.asarray(s, dtype=float)) for name, (y, s) in scored.items()
              if len(set(np.asarray(y, dtype=int).tolist())) == 2}
    if not usable:
        return {}
    figure = _figure((10, 4.5))
    roc_axes, pr_axes = figure.subplots(1, 2)
    summary = {}
    for name, (truth, scores) in usable.items():
        summary[name] = {"auc": float(roc_auc_score(truth, scores)),
                         "ap": float(average_precision_score(truth, scores))}
        fpr, tpr, _ = roc_curve(truth, scores)
        precision, recall, _ = precision_recall_curve(truth, scores)
        roc_axes.plot(fpr, tpr, label=f"{name} (AUC {summary[name]['auc']:.3f})")
        pr_axes.plot(recall, precision, label=f"{name} (AP {summary[name]['ap']:.3f})")
    roc_axes.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_axes.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate", title=f"ROC, {title}")
    pr_axes.set(xlabel="recall (fake)", ylabel="precision (fake)", title=f"precision-recall, {title}")
    for axes in (roc_axes, pr_axes):
        axes.legend(loc="lower right" if axes is roc_axes else "lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return summary


def plot_reliability(table: dict[str, list], path: Path, title: str = "Reliability (top label)") -> Path:
    """Save a reliability diagram: accuracy against confidence per bin, the diagonal being perfect calibration."""
    centres = [(low + high) / 2 for low, high in zip(table["bin_low"], table["bin_high"])]
    width = table["bin_high"][0] - table["bin_low"][0]
    filled = [(c, a, n) for c, a, n in zip(centres, table["accuracy"], table["count"]) if n]
    figure = _figure((4.5, 4.5))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    if filled:
        axes.bar([c for c, _, _ in filled], [a for _, a, _ in filled], width=width * 0.9, alpha=0.7,
                 edgecolor="black", label="accuracy in bin")
        for centre, accuracy, count in filled:
            axes.annotate(str(count), (centre, accuracy), ha="center", va="bottom", fontsize=7)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("confidence (top probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_series(panels: dict[str, dict[str, Sequence[float | None]]], x: Sequence, path: Path, x_label: str = "",
                y_limits: dict[str, tuple[float, float]] | None = None) -> Path:
    """Save one panel per title, one line per named series over `x` (None values leave gaps), side by side.

    For training curves (x = epochs) and robustness sweeps (x = condition names, drawn as categories).
    """
    figure = _figure((5 * len(panels) + 0.5, 4))
    axes_list = np.atleast_1d(figure.subplots(1, len(panels)))
    positions = list(range(len(x)))
    for axes, (title, series) in zip(axes_list, panels.items()):
        for label, values in series.items():
            if any(v is not None for v in values):
                axes.plot(positions, [np.nan if v is None else v for v in values], marker="o", label=label)
        axes.set_xticks(positions, [str(v) for v in x], rotation=30 if any(isinstance(v, str) for v in x) else 0)
        axes.set(title=title, xlabel=x_label)
        if y_limits and title in y_limits:
            axes.set_ylim(*y_limits[title])
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


def _figure(size: tuple[float, float]):
    """A matplotlib Figure drawn by the file-only Agg canvas: no pyplot, no GUI, no global backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure
