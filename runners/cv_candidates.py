"""The candidates of the source-grouped cross-validation (`runners.source_cv`), each fitted on the other folds.

Why apart from the runner: what a candidate is (a residual net or FingerprintNet retrained per fold on cached
native windows, the spectral recipe refitted per fold, a cue's linear model over cached features, a stacker over
out-of-fold scores) is separate from how folds are run, resumed and reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, replace
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
from detector.codec_blind import CodecBlindRecipe
from detector.made_from_real import MADE_FROM_REAL, DecoderSpec, made_from_real_set
from detector.recipe_training import RecipeTrainer
from detector.residual_net import ResidualConfig, ResidualNet, central_window
from detector.residual_training import AUGMENTATIONS, REGION, CropTrainer, TrainSettings, residual_loss, train_residual
from detector.spectral import TEST_CONDITIONS, LinearHead, SpectralSpec, dataset_features, holdout_predictions

SPECTRAL_C = 0.003
FINGERPRINT_CROP = 64


def cached_windows(samples: list[LabelledImage], cache: Path) -> dict[str, list[np.ndarray]]:
    """Per test condition, every image's central REGION-pixel native window (the condition applied to the whole
    image first), decoded once and cached as one npz keyed by the file list."""
    path = cache / f"windows-{REGION}-{_files_key(samples)}.npz"
    if path.is_file():
        return _read_images(path, tuple(TEST_CONDITIONS))
    windows: dict[str, list[np.ndarray]] = {name: [] for name in TEST_CONDITIONS}
    for sample in tqdm(samples, desc="decoding windows", unit="img", mininterval=10):
        pixels = load_image(sample.path).pixels
        for name, perturb in TEST_CONDITIONS.items():
            windows[name].append(np.ascontiguousarray(central_window(perturb(pixels), REGION)))
    _write_images(path, windows)
    return windows


def cached_made_from_real(samples: list[LabelledImage], clean: list[np.ndarray], cache: Path,
                          spec: DecoderSpec = DecoderSpec()) -> dict[int, np.ndarray]:
    """Every real photo's made-from-real twin (of its clean window), index → pixels, made once and cached under
    a key of the file list and the decoder spec (a changed decoder makes new twins)."""
    reals = [index for index, sample in enumerate(samples) if sample.label == REAL]
    spec_key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:8]
    path = cache / f"made-from-real-{REGION}-{_files_key(samples)}-{spec_key}.npz"
    if not path.is_file():
        photos = (clean[index] for index in tqdm(reals, desc="made from real", unit="img", mininterval=10))
        twins = made_from_real_set(photos, [samples[index].name for index in reals], spec)
        _write_images(path, {"twins": twins})
    return dict(zip(reals, _read_images(path, ("twins",))["twins"]))


def _files_key(samples: list[LabelledImage]) -> str:
    return hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:16]


def _write_images(path: Path, images: dict[str, list[np.ndarray]]) -> None:
    """Lists of differently-sized images as one npz: per list, the pixels end to end and each image's shape."""
    arrays = {}
    for name, members in images.items():
        arrays[f"{name}_pixels"] = np.concatenate([image.ravel() for image in members])
        arrays[f"{name}_shapes"] = np.array([image.shape for image in members])
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, **arrays)


def _read_images(path: Path, names: tuple[str, ...]) -> dict[str, list[np.ndarray]]:
    with np.load(path, allow_pickle=False) as stored:
        return {name: _unpack(stored[f"{name}_pixels"], stored[f"{name}_shapes"]) for name in names}


def _unpack(flat: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    ends = np.cumsum([int(np.prod(shape)) for shape in shapes])
    return [flat[end - int(np.prod(shape)):end].reshape(shape) for end, shape in zip(ends, shapes)]


def learned_fold(args: argparse.Namespace, windows: dict[str, list[np.ndarray]], labels: np.ndarray,
                 sources: np.ndarray, train: np.ndarray, test: np.ndarray, workdir: Path) -> dict[str, Scores]:
    """Train the learned candidate on the fold's training images, then score its test images per condition."""
    budget = None if args.budget_min is None else args.budget_min * 60.0
    settings = TrainSettings(steps=args.steps, time_budget_s=budget, seed=args.seed,
                             augment=AUGMENTATIONS[args.augment]())
    regions = [windows["clean"][i] for i in train]
    if args.candidate == "residual":
        model, _ = train_residual(regions, labels[train], sources[train], ResidualConfig.small(), settings, workdir)
    else:
        known = np.isin(labels[train], (REAL, *KNOWN_GANS))
        model = _fingerprint_model(args.seed)
        CropTrainer(model, _fingerprint_loss, [r for r, k in zip(regions, known) if k], labels[train][known],
                    sources[train][known], FINGERPRINT_CROP, settings, workdir).run()
    return _score_conditions(model, windows, test)


def recipe_fold(args: argparse.Namespace, samples: list[LabelledImage], windows: dict[str, list[np.ndarray]],
                twins: dict[int, np.ndarray], train: np.ndarray, test: np.ndarray, workdir: Path) -> dict[str, Scores]:
    """Train a learned candidate with the codec-blind recipe on the fold's training images, score its test ones."""
    model, _ = train_with_recipe(args.candidate, samples, windows["clean"], twins, train, args.steps, args.seed,
                                 workdir)
    return _score_conditions(model, windows, test)


def train_with_recipe(candidate: str, samples: list[LabelledImage], clean: list[np.ndarray],
                      twins: dict[int, np.ndarray], train: np.ndarray, steps: int, seed: int,
                      workdir: Path | None) -> tuple[ResidualNet | FingerprintNet, dict]:
    """A residual net or FingerprintNet trained for `steps` on the codec-blind recipe fitted to the real photos
    among `train` (and, when `twins` is given, on their made-from-real fakes paired with them); resumes from
    `workdir`. Returns the model and the trainer's final state."""
    labels, sources = np.array([s.label for s in samples]), np.array([s.group for s in samples])
    real_train = train[labels[train] == REAL]
    recipe = CodecBlindRecipe.fit([samples[i].path for i in real_train])
    keep = train if candidate == "residual" else train[np.isin(labels[train], (REAL, *KNOWN_GANS))]
    regions = [clean[i] for i in keep]
    fold_labels, fold_sources = list(labels[keep]), list(sources[keep])
    position = {int(index): k for k, index in enumerate(keep)}
    pairs = {}
    for index in real_train if twins else ():
        pairs[len(regions)] = position[int(index)]
        regions.append(twins[int(index)])
        fold_labels.append(MADE_FROM_REAL)
        fold_sources.append(MADE_FROM_REAL)
    settings = TrainSettings(steps=steps, seed=seed, augment=AugmentSettings.none())
    if candidate == "residual":
        torch.manual_seed(seed)
        model, loss, crop = ResidualNet(ResidualConfig.small()), residual_loss, ResidualConfig.small().crop
    else:
        model, loss, crop = _fingerprint_model(seed), _fingerprint_loss, FINGERPRINT_CROP
    state = RecipeTrainer(model, loss, regions, fold_labels, fold_sources, crop, settings, recipe, pairs,
                          workdir).run()
    return model, state


def _fingerprint_model(seed: int) -> FingerprintNet:
    torch.manual_seed(seed)
    return FingerprintNet.for_training(replace(FingerprintConfig.small(), crop_size=FINGERPRINT_CROP))


def _score_conditions(model: ResidualNet | FingerprintNet, windows: dict[str, list[np.ndarray]],
                      test: np.ndarray) -> dict[str, Scores]:
    """P(fake) and P(architecture | fake) of the test images, per condition, from either network."""
    scores = {}
    for name in TEST_CONDITIONS:
        images = [windows[name][i] for i in test]
        if isinstance(model, ResidualNet):
            fake, classes = model.head_probabilities(images)
            scores[name] = Scores(fake, _renormalise(classes[:, 1:]))
        else:
            probabilities = model.predict_proba(images)
            scores[name] = Scores(1.0 - probabilities[:, 0], _renormalise(probabilities[:, 1:]))
    return scores


def _fingerprint_loss(model: FingerprintNet, crops: torch.Tensor, labels: list[str]) -> torch.Tensor:
    """Cross-entropy over FingerprintNet's classes; a fake outside them (made from a real photo) teaches only
    "not real": −log(1 − P(real))."""
    logits = model(crops)
    known = [i for i, label in enumerate(labels) if label in model.classes_]
    other = [i for i, label in enumerate(labels) if label not in model.classes_]
    loss = torch.zeros(())
    if known:
        targets = torch.tensor([model.classes_.index(labels[i]) for i in known])
        loss = loss + F.cross_entropy(logits[known], targets, label_smoothing=0.05) * len(known) / len(labels)
    if other:
        log_real = F.log_softmax(logits[other], dim=1)[:, model.classes_.index(REAL)]
        loss = loss - torch.log1p(-log_real.exp().clamp(max=1 - 1e-6)).sum() / len(labels)
    return loss


def _renormalise(probabilities: np.ndarray) -> np.ndarray:
    return probabilities / np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)


def spectral_all_folds(samples: list[LabelledImage], folds: list, cache: Path) -> HeldOutPredictions:
    """The spectral_dct recipe (detector.spectral, the shipped C) refitted per fold from cached features."""
    spec, augmentation = SpectralSpec(), AugmentSettings.spectral()
    key = _files_key(samples)
    views, tests = dataset_features([s.path for s in samples], spec, augmentation, 0,
                                    cache / f"spectral-{key}.npz",
                                    lambda items: tqdm(items, desc="spectral features", unit="img", mininterval=10))
    return holdout_predictions(views, tests, [s.label for s in samples], [s.group for s in samples], spec,
                               SPECTRAL_C, folds)


def stacker_fold(inner: dict[str, dict[str, dict[str, np.ndarray]]], outer: dict[str, dict[str, dict[str, np.ndarray]]],
                 labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, Scores]:
    """Logistic regressions over the partners' answers, fitted on `inner` (their answers for the training images,
    from models that never saw the held-out fold: `inner_answers`) in all three conditions, so the weights hold
    under re-encoding, and applied to `outer` (the partners' own out-of-fold answers for the held-out fold)."""
    conditions = tuple(TEST_CONDITIONS)

    def fake_features(answers: dict, rows: np.ndarray, condition: str) -> np.ndarray:
        return np.stack([_logit(answers[name]["fake"][condition][rows]) for name in sorted(answers)], axis=1)

    def attribution_features(answers: dict, rows: np.ndarray, condition: str) -> np.ndarray:
        return np.concatenate([np.log(np.clip(answers[name]["attribution"][condition][rows], 1e-6, 1.0))
                               for name in sorted(answers)], axis=1)

    binary = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))
    binary.fit(np.concatenate([fake_features(inner, train, c) for c in conditions]), np.tile(labels[train] != REAL, 3))
    known = train[np.isin(labels[train], KNOWN_GANS)]
    attribution = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000))
    attribution.fit(np.concatenate([attribution_features(inner, known, c) for c in conditions]),
                    np.tile(labels[known], 3))
    order = [list(attribution.classes_).index(name) for name in KNOWN_GANS]
    return {c: Scores(binary.predict_proba(fake_features(outer, test, c))[:, 1],
                      attribution.predict_proba(attribution_features(outer, test, c))[:, order]) for c in conditions}


def stack_partner(name: str) -> tuple[str, bool, bool]:
    """(cue, codec-blind recipe?, made-from-real?) of a cue candidate's result name, e.g. dct-codecblind-mfr; the
    stacker refits its partners inside every outer fold, which only the cue candidates can afford."""
    cue, *flags = name.split("-")
    if cue not in CUE_FEATURES or not set(flags) <= {"codecblind", "mfr"}:
        raise ValueError(f"{name}: the stacker stacks cue candidates ({', '.join(CUE_FEATURES)}, with -codecblind "
                         "and -mfr), which it can refit inside each outer fold")
    return cue, "codecblind" in flags, "mfr" in flags


def inner_answers(partners: list[str], tests: dict[str, np.ndarray], views: dict[str, np.ndarray] | None,
                  made: tuple | None, labels: np.ndarray, sources: np.ndarray, train: np.ndarray
                  ) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Every partner's answers (P(fake), P(architecture | fake)) for the outer training images, each from a model
    refitted on the other INNER_FOLDS source-grouped folds of those images. Why: the partners' out-of-fold answers
    for the other outer folds come from models that were trained on the held-out fold, and a stacker fitted on
    them learned how those models err: for the three codec-blind cues with made-from-real fakes that stacker
    reached attribution 0.76, this one 0.46."""
    size = len(labels)
    answers = {name: {"fake": {c: np.full(size, 0.5) for c in TEST_CONDITIONS},
                      "attribution": {c: np.full((size, len(KNOWN_GANS)), 1 / len(KNOWN_GANS))
                                      for c in TEST_CONDITIONS}} for name in partners}
    for _, inner_train, inner_test in grouped_source_folds(sources[train], INNER_FOLDS, 0, labels[train]):
        for name in partners:
            cue, recipe, made_from_real = stack_partner(name)
            scores, _ = cue_fold(cue, tests, labels, sources, train[inner_train], train[inner_test],
                                 views if recipe else None, made if made_from_real else None)
            for condition, result in scores.items():
                answers[name]["fake"][condition][train[inner_test]] = result.fake
                if result.attribution is not None:  # a training part without every known GAN scores none
                    answers[name]["attribution"][condition][train[inner_test]] = result.attribution
    return answers


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
