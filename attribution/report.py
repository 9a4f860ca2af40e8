"""Metrics and pictures for any classifier that outputs class probabilities: what an evaluation report shows.

Kept general (labels, probabilities, class names in; JSON-able dicts and PNG files out) so the SVM training report
and the end-to-end evaluation compute calibration the same way. sklearn does the counting; only the top-label
ECE and the reliability table, which sklearn has no multiclass form of, are written here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, confusion_matrix, \
    log_loss, precision_recall_fscore_support


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

    `probabilities` columns follow `classes`; every true label must be one of them. Brier is sklearn's multiclass
    form (sum over classes of the squared error, averaged over samples).
    """
    classes = list(classes)
    true_labels = np.asarray(true_labels).astype(str)
    unknown = sorted(set(true_labels) - set(classes))
    if unknown:
        raise ValueError(f"true labels {unknown} are not among the classes {classes}")
    true_index = np.array([classes.index(label) for label in true_labels])
    predicted = np.asarray(classes)[probabilities.argmax(axis=1)]
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
        "brier": float(brier_score_loss(true_labels, probabilities, labels=classes)),
        "log_loss": float(log_loss(true_labels, probabilities, labels=classes)),
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


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path,
                          title: str = "Confusion matrix") -> Path:
    """Save a confusion matrix (rows = true, columns = predicted) as a PNG."""
    from sklearn.metrics import ConfusionMatrixDisplay

    figure = _figure((1.2 * len(labels) + 2.5, 1.2 * len(labels) + 2))
    axes = figure.subplots()
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(labels)).plot(ax=axes, colorbar=False,
                                                                                 cmap="Blues")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


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


def _figure(size: tuple[float, float]):
    """A matplotlib Figure drawn by the file-only Agg canvas: no pyplot, no GUI, no global backend switch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure
