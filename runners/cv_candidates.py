"""The candidates of the source-grouped cross-validation (`runners.source_cv`), each fitted on the other folds.

Why apart from the runner: what a candidate is (a residual net or FingerprintNet retrained per fold on cached
native windows, the spectral recipe refitted per fold, a cue's linear model over cached features, a stacker over
out-of-fold scores) is separate from how folds are run, resumed and reported.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from core.atomic import atomic_path
from core.augment import AugmentSettings
from core.datasets import LabelledImage
from core.images import load_image
from core.source_holdout import KNOWN_GANS, REAL, HeldOutPredictions, Scores, grouped_source_folds
from detector.face_geometry import mirrored
from detector.feature_model import FeatureModel
from detector.fingerprint_net import FingerprintConfig, FingerprintNet
from detector.residual_net import ResidualConfig, central_window
from detector.residual_training import AUGMENTATIONS, REGION, CropTrainer, TrainSettings, train_residual
from detector.spectral import TEST_CONDITIONS, LinearHead, SpectralSpec, dataset_features, holdout_predictions

SPECTRAL_C = 0.003
FINGERPRINT_CROP = 64


def cached_windows(samples: list[LabelledImage], cache: Path) -> dict[str, list[np.ndarray]]:
    """Per test condition, every image's central REGION-pixel native window (the condition applied to the whole
    image first), decoded once and cached as one npz keyed by the file list."""
    key = hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:16]
    path = cache / f"windows-{REGION}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return {name: _unpack(stored[f"{name}_pixels"], stored[f"{name}_shapes"]) for name in TEST_CONDITIONS}
    windows: dict[str, list[np.ndarray]] = {name: [] for name in TEST_CONDITIONS}
    for sample in tqdm(samples, desc="decoding windows", unit="img", mininterval=10):
        pixels = load_image(sample.path).pixels
        for name, perturb in TEST_CONDITIONS.items():
            windows[name].append(np.ascontiguousarray(central_window(perturb(pixels), REGION)))
    arrays = {}
    for name, images in windows.items():
        arrays[f"{name}_pixels"] = np.concatenate([image.ravel() for image in images])
        arrays[f"{name}_shapes"] = np.array([image.shape for image in images])
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, **arrays)
    return windows


def _unpack(flat: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    ends = np.cumsum([int(np.prod(shape)) for shape in shapes])
    return [flat[end - int(np.prod(shape)):end].reshape(shape) for end, shape in zip(ends, shapes)]


def learned_fold(args: argparse.Namespace, windows: dict[str, list[np.ndarray]], labels: np.ndarray,
                 sources: np.ndarray, train: np.ndarray, test: np.ndarray, workdir: Path) -> dict[str, Scores]:
    """Train the learned candidate on the fold's training images, then score its test images per condition."""
    settings = TrainSettings(steps=args.steps, time_budget_s=args.budget_min * 60.0, seed=args.seed,
                             augment=AUGMENTATIONS[args.augment]())
    regions = [windows["clean"][i] for i in train]
    if args.candidate == "residual":
        model, _ = train_residual(regions, labels[train], sources[train], ResidualConfig.small(), settings, workdir)

        def predict(images: list[np.ndarray]) -> Scores:
            fake, classes = model.head_probabilities(images)
            return Scores(fake, _renormalise(classes[:, 1:]))
    else:
        known = np.isin(labels[train], (REAL, *KNOWN_GANS))
        config = replace(FingerprintConfig.small(), crop_size=FINGERPRINT_CROP)
        torch.manual_seed(args.seed)
        model = FingerprintNet.for_training(config)
        CropTrainer(model, _fingerprint_loss, [r for r, k in zip(regions, known) if k], labels[train][known],
                    sources[train][known], FINGERPRINT_CROP, settings, workdir).run()

        def predict(images: list[np.ndarray]) -> Scores:
            probabilities = model.predict_proba(images)
            return Scores(1.0 - probabilities[:, 0], _renormalise(probabilities[:, 1:]))
    return {name: predict([windows[name][i] for i in test]) for name in TEST_CONDITIONS}


def _fingerprint_loss(model: FingerprintNet, crops: torch.Tensor, labels: list[str]) -> torch.Tensor:
    targets = torch.tensor([model.classes_.index(label) for label in labels])
    return F.cross_entropy(model(crops), targets, label_smoothing=0.05)


def _renormalise(probabilities: np.ndarray) -> np.ndarray:
    return probabilities / np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)


def spectral_all_folds(samples: list[LabelledImage], folds: list, cache: Path) -> HeldOutPredictions:
    """The spectral_dct recipe (detector.spectral, the shipped C) refitted per fold from cached features."""
    spec, augmentation = SpectralSpec(), AugmentSettings.spectral()
    key = hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:16]
    views, tests = dataset_features([s.path for s in samples], spec, augmentation, 0,
                                    cache / f"spectral-{key}.npz",
                                    lambda items: tqdm(items, desc="spectral features", unit="img", mininterval=10))
    return holdout_predictions(views, tests, [s.label for s in samples], [s.group for s in samples], spec,
                               SPECTRAL_C, folds)


def stacker_fold(stacked: dict[str, dict[str, np.ndarray]], labels: np.ndarray, train: np.ndarray,
                 test: np.ndarray) -> dict[str, Scores]:
    """Logistic regressions over the stacked branches' out-of-fold scores, fitted on the training folds' rows only
    (all three conditions, so the weights hold under re-encoding), applied to the held-out fold."""
    conditions = tuple(TEST_CONDITIONS)

    def fake_features(rows: np.ndarray, condition: str) -> np.ndarray:
        return np.stack([_logit(stacked[name]["fake"][condition][rows]) for name in sorted(stacked)], axis=1)

    def attribution_features(rows: np.ndarray, condition: str) -> np.ndarray:
        return np.concatenate([np.log(np.clip(stacked[name]["attribution"][condition][rows], 1e-6, 1.0))
                               for name in sorted(stacked)], axis=1)

    binary = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))
    binary.fit(np.concatenate([fake_features(train, c) for c in conditions]), np.tile(labels[train] != REAL, 3))
    known = train[np.isin(labels[train], KNOWN_GANS)]
    attribution = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))
    attribution.fit(np.concatenate([attribution_features(known, c) for c in conditions]), np.tile(labels[known], 3))
    order = [list(attribution.classes_).index(name) for name in KNOWN_GANS]
    return {c: Scores(binary.predict_proba(fake_features(test, c))[:, 1],
                      attribution.predict_proba(attribution_features(test, c))[:, order]) for c in conditions}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


# The cue candidates: linear models over features cached once (runners.feature_cache), fitted per fold in seconds.
# Their C is chosen inside each outer fold (nested): the C of CUE_C_GRID whose inner source-grouped CV over the
# training folds gives the best worst-condition AUC; the held-out fold never takes part in the choice.
CUE_C_GRID = (0.003, 0.03, 0.3)
INNER_FOLDS = 3
CUE_FEATURES = {"geometry": "geometry", "colour": "colour", "dct": "spectral", "cues": "cues"}
# `cues`: the three cues side by side in one linear model (as stored only: their recipe views do not line up)
CONCATENATED = ("geometry", "colour", "spectral")


def with_concatenated(tests: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The condition arrays plus "cues", every cue's features side by side (CONCATENATED order)."""
    return {**tests, "cues": np.concatenate([tests[kind] for kind in CONCATENATED], axis=-1)}


def cue_fold(cue: str, tests: dict[str, np.ndarray], labels: np.ndarray, sources: np.ndarray, train: np.ndarray,
             test: np.ndarray, recipe: dict[str, np.ndarray] | None = None,
             made_from_real: tuple[np.ndarray, dict[str, np.ndarray]] | None = None) -> tuple[dict[str, Scores], float]:
    """Fit one cue's FeatureModel on the fold's training images (`cue_training_rows`, C chosen by `nested_c`) and
    score its test images per condition from the condition cache's (N, conditions, ...) arrays (TEST_CONDITIONS
    order); returns the scores and the C."""
    kind = CUE_FEATURES[cue]
    C = nested_c(cue, tests, labels, sources, train, recipe, made_from_real)
    rows, targets = cue_training_rows(cue, tests, labels, train, recipe, made_from_real)
    model = FeatureModel.fit(cue, "cv", [f"{kind}{i}" for i in range(rows.shape[1])], rows, targets, C)
    scores = {}
    for position, condition in enumerate(TEST_CONDITIONS):
        features = tests[kind][test, position]
        attribution = model.attributor.predict_proba(features) if model.attributor is not None else None
        scores[condition] = Scores(model.detector.predict_proba(features)[:, 1], attribution)
    return scores, C


def nested_c(cue: str, tests: dict[str, np.ndarray], labels: np.ndarray, sources: np.ndarray, train: np.ndarray,
             recipe: dict[str, np.ndarray] | None = None,
             made_from_real: tuple[np.ndarray, dict[str, np.ndarray]] | None = None) -> float:
    """The C of CUE_C_GRID with the best mean (over INNER_FOLDS source-grouped folds of the training images) of
    the worst AUC over the three conditions: the same rule as the outer protocol, on training images only."""
    kind = CUE_FEATURES[cue]
    inner = grouped_source_folds(sources[train], INNER_FOLDS, 0, labels[train])
    results = {}
    for C in CUE_C_GRID:
        aucs = []
        for _, inner_train, inner_test in inner:
            held = train[inner_test]
            is_fake = labels[held] != REAL
            if not 0 < is_fake.sum() < len(held):
                continue
            rows, targets = cue_training_rows(cue, tests, labels, train[inner_train], recipe, made_from_real)
            head = LinearHead.fit(rows, np.where(targets == REAL, REAL, "fake"), C)
            column = head.classes.index("fake")
            aucs.append(min(roc_auc_score(is_fake, head.proba(tests[kind][held, position])[:, column])
                            for position in range(len(TEST_CONDITIONS))))
        results[C] = float(np.mean(aucs)) if aucs else 0.0
    return max(results, key=results.get)


def cue_training_rows(cue: str, tests: dict[str, np.ndarray], labels: np.ndarray, train: np.ndarray,
                      recipe: dict[str, np.ndarray] | None = None,
                      made_from_real: tuple[np.ndarray, dict[str, np.ndarray]] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) a cue's model is fitted on, for the images `train`.

    The images as stored (view 0 of the condition cache), or with `recipe` (the recipe cache's (N, views, ...)
    arrays) every recipe view of every training image; `made_from_real` = (twin index per made-from-real image,
    their recipe-view arrays) adds those whose real twin is among `train`, labelled fake. Geometry has no recipe
    views of its own: the recipe cannot move it (runners.feature_cache), so its recipe rows are each training face
    as stored and mirrored (the recipe's flip), and a made-from-real fake's rows are its twin's.
    """
    kind = CUE_FEATURES[cue]
    if made_from_real is not None and recipe is None:
        raise ValueError("made-from-real fakes exist only as recipe views: use them with the recipe")
    made = np.isin(made_from_real[0], train) if made_from_real is not None else None
    if kind == "geometry":
        def rows_of(images: np.ndarray) -> np.ndarray:
            stored = tests[kind][images, 0]
            return stored if recipe is None else np.stack([stored, mirrored(stored)], axis=1)

        real_rows = rows_of(train)
        made_rows = rows_of(made_from_real[0][made]) if made is not None else real_rows[:0]
    else:
        real_rows = tests[kind][train, 0] if recipe is None else recipe[kind][train]
        made_rows = made_from_real[1][kind][made] if made is not None else real_rows[:0]
    views = 1 if real_rows.ndim == 2 else real_rows.shape[1]
    dim = real_rows.shape[-1]
    rows = np.concatenate([real_rows.reshape(-1, dim), made_rows.reshape(-1, dim)])
    return rows, np.concatenate([np.repeat(labels[train], views), np.full(len(made_rows) * views, "fake")])
