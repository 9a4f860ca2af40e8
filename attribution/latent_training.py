"""Training the latent attribution SVM on extracted shards: picking C, recording what the features mean, reporting.

scripts/train_svm.py parses the command line and calls these; `LatentAttributor` (attribution.latent_svm) is the
model itself. C is picked by stratified group k-fold cross-validation on the training part only, so the
validation part that sets the open-set thresholds and the reported metrics never influences the choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from attribution.latent_shards import LatentSet
from attribution.latent_svm import LatentAttributor, group_folds, group_validation_split
from core.atomic import write_json_atomic
from core.metrics import accuracy_by_bins, plot_confusion_matrix, plot_reliability
from core.probability import most_probable


def select_C(data: LatentSet, C_values: Sequence[float], class_weight: str | None, cv_folds: int,
             validation_fraction: float, seed: int) -> dict[str, Any]:
    """Group k-fold CV of StandardScaler + LinearSVC per C on the training part only (validation stays unseen).

    Ties (to 6 decimals) go to the smaller C, the stronger regularisation.
    """
    train, _ = group_validation_split(data.labels, data.groups, validation_fraction, seed)
    features = data.latents[train].reshape(len(train), -1).astype(np.float32)
    folds = group_folds(data.labels[train], data.groups[train], cv_folds, seed)
    results = {}
    for C in C_values:
        svm = LinearSVC(C=C, class_weight=class_weight, max_iter=10000, random_state=seed)
        model = Pipeline([("scale", StandardScaler()), ("svm", svm)])
        scores = cross_val_score(model, features, data.labels[train], cv=folds, scoring="balanced_accuracy")
        results[str(C)] = {"mean": float(scores.mean()), "std": float(scores.std()), "folds": scores.tolist()}
    best = max(C_values, key=lambda C: (round(results[str(C)]["mean"], 6), -C))
    return {"metric": "balanced accuracy (uncalibrated LinearSVC, StratifiedGroupKFold on the training part)",
            "folds": cv_folds, "cv": results, "chosen_C": best}


def feature_spec(data: LatentSet) -> dict[str, Any]:
    """What the encoder side must reproduce at inference for these features to mean the same thing."""
    settings = data.manifest["settings"]
    return {"latent_avg_added": settings["encoder"]["latent_avg_added"],
            "encoder": settings["encoder"]["kind"],
            "encoder_weights_sha256": settings["encoder"]["weights_sha256"],
            "encoder_precision": settings["precision"],
            "preprocessing": settings["preprocessing"],
            "shards_settings_sha256": data.manifest["settings_sha256"]}


def write_training_report(attributor: LatentAttributor, data: LatentSet, selection: dict[str, Any], out: Path,
                          digest: str, report: Path) -> dict[str, Any]:
    """metrics.json (validation, accuracy per augmentation resolution, model selection, open set, calibration),
    confusion_matrix.json/.png and reliability.png in `report`; returns the metrics."""
    report.mkdir(parents=True, exist_ok=True)
    validation_rows = attributor.validation_index_
    probabilities = attributor.predict_proba(data.latents[validation_rows])
    correct = np.asarray(most_probable(attributor.classes_, probabilities)) == data.labels[validation_rows]
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
    write_json_atomic(report / "metrics.json", metrics)
    write_json_atomic(report / "confusion_matrix.json", matrix)
    plot_confusion_matrix(matrix["matrix"], matrix["labels"], report / "confusion_matrix.png",
                          title="Latent SVM, validation (closed set)")
    plot_reliability(metadata["validation"]["reliability"], report / "reliability.png",
                     title=f"Latent SVM reliability (ECE {metadata['validation']['ece']:.3f})")
    metrics["validation"] = metadata["validation"]
    return metrics
