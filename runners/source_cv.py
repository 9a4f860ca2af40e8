"""Source-grouped 5-fold cross-validation of candidate real/fake + which-GAN branches: one protocol, one table.

Every candidate is judged the same way: the face set's sources (provenance `repo`; a real/fake pair processed
the same way is one source) are dealt into K folds by `core.source_holdout.grouped_source_folds` (seeded, written
to OUT/folds.json); for each fold the candidate is fitted on the other folds and scores the held-out one, as
stored, after JPEG q75 and after a 0.5× downscale. The threshold on P(fake) is chosen on those held-out scores
(mean real false-positive rate over real sources ≤ 10 %, clean and JPEG q75), and the per-source table is the one
`scripts/evaluate_sources.py` writes.

Candidates:
- `residual`: detector.residual_net (NPR-style up-sampling residual), retrained per fold; `--augment` picks the
  training augmentation (none | analyst), and the result is stored as `residual-<augment>`.
- `fingerprint`: FingerprintNet (small preset, 64-pixel crops like the residual branch) retrained per fold with
  the same augmentation and sampling, stored as `fingerprint-<augment>`.
- `spectral`: the spectral_dct recipe of detector.spectral, refitted per fold (the reference).
- `stacker`: a logistic regression over out-of-fold scores of `spectral` and `--stack-with` (a finished learned
  candidate); for each outer fold it is fitted only on the other folds' out-of-fold scores.

Every decoded image is cached once (OUT/cache): the central 256-pixel native window of each image, as stored and
under each test condition, so every job decodes the face set once. Each (candidate, fold) result is written
atomically to OUT/<candidate>/<fold>.npz; a re-run skips finished folds and a killed training resumes from its
checkpoint. `--report` writes OUT/comparison.md/.json: all finished candidates side by side.

    python -m runners.source_cv ../shared/data/faces --out /work/runs/issue20/cv --candidate residual --augment analyst
    python -m runners.source_cv ../shared/data/faces --out /work/runs/issue20/cv --candidate stacker \
        --stack-with residual-analyst
    python -m runners.source_cv ../shared/data/faces --out /work/runs/issue20/cv --report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
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

from core.atomic import atomic_path, write_json_atomic, write_text_atomic
from core.datasets import LabelledImage
from core.errors import InputError
from core.images import load_image
from core.source_holdout import (KNOWN_GANS, MAX_REAL_FALSE_POSITIVE_RATE, REAL, HeldOutPredictions, Scores,
                                 fold_sources, grouped_source_folds, leave_one_source_out)
from detector.fingerprint_net import FingerprintConfig, FingerprintNet
from detector.residual_net import ResidualConfig, central_window
from detector.residual_training import AUGMENTATIONS, REGION, CropTrainer, TrainSettings, train_residual
from detector.spectral import TEST_CONDITIONS, SpectralSpec, TrainAugment, dataset_features, holdout_predictions
from scripts.evaluate_sources import THRESHOLD_CONDITIONS, cap_per_source, list_face_set, write_table

CANDIDATES = ("residual", "fingerprint", "spectral", "stacker")
SPECTRAL_C = 0.003
FINGERPRINT_CROP = 64
VOTE_AUC, VOTE_ATTRIBUTION = 0.85, 0.70


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--out", type=Path, required=True, help="output folder (folds, cache, per-candidate results)")
    parser.add_argument("--candidate", choices=CANDIDATES, help="what to cross-validate")
    parser.add_argument("--augment", choices=sorted(AUGMENTATIONS), default="analyst",
                        help="training augmentation of a learned candidate (default %(default)s)")
    parser.add_argument("--stack-with", default=None, help="stacker: the learned candidate's result name")
    parser.add_argument("--report", action="store_true", help="write the comparison of every finished candidate")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="fold assignment and training seed")
    parser.add_argument("--budget-min", type=float, default=5.0, help="training minutes per fold (learned ones)")
    parser.add_argument("--steps", type=int, default=20000, help="planned steps per fold (the budget may cut them)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared)")
    parser.add_argument("--per-source", type=int, default=None,
                        help="at most this many images per source and class (evenly spaced), for a quick pass")
    parser.add_argument("--max-real-fpr", type=float, default=MAX_REAL_FALSE_POSITIVE_RATE)
    args = parser.parse_args(argv)
    if not args.report and args.candidate is None:
        parser.error("give --candidate or --report")
    if args.candidate == "stacker" and not args.stack_with:
        parser.error("--candidate stacker needs --stack-with (a finished learned candidate, e.g. residual-analyst)")
    return args


def result_name(args: argparse.Namespace) -> str:
    """Folder name of a candidate's results: learned ones carry their augmentation, the stacker its partner."""
    if args.candidate in ("residual", "fingerprint"):
        return f"{args.candidate}-{args.augment}"
    return f"stacker-spectral+{args.stack_with}" if args.candidate == "stacker" else args.candidate


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
            result = model.predict_proba(images)
            return Scores(result["fake"], _renormalise(result["classes"][:, 1:]))
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
    targets = torch.tensor([model.classes.index(label) for label in labels])
    return F.cross_entropy(model(crops), targets, label_smoothing=0.05)


def _renormalise(probabilities: np.ndarray) -> np.ndarray:
    return probabilities / np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)


def spectral_all_folds(samples: list[LabelledImage], folds: list, cache: Path) -> HeldOutPredictions:
    """The spectral_dct recipe (detector.spectral, the shipped C) refitted per fold from cached features."""
    spec, augmentation = SpectralSpec(), TrainAugment()
    key = hashlib.sha256("\n".join(s.name for s in samples).encode()).hexdigest()[:16]
    views, tests = dataset_features([s.path for s in samples], spec, augmentation, 0,
                                    cache / f"spectral-{key}.npz",
                                    lambda items: tqdm(items, desc="spectral features", unit="img", mininterval=10))
    return holdout_predictions(views, tests, [s.label for s in samples], [s.group for s in samples], spec,
                               SPECTRAL_C, folds)


def stacker_fold(stacked: dict[str, dict[str, np.ndarray]], labels: np.ndarray, train: np.ndarray,
                 test: np.ndarray) -> dict[str, Scores]:
    """Logistic regressions over two branches' out-of-fold scores, fitted on the training folds' rows only (all
    three conditions, so the weights hold under re-encoding), applied to the held-out fold."""
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


def save_fold(path: Path, test: np.ndarray, scores: dict[str, Scores]) -> None:
    """One (candidate, fold) result, written atomically: test indices, P(fake) and attribution per condition."""
    arrays = {"test": test}
    for condition, result in scores.items():
        arrays[f"fake_{condition}"] = np.asarray(result.fake, dtype=np.float32)
        arrays[f"attribution_{condition}"] = np.asarray(result.attribution, dtype=np.float32)
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, **arrays)


def load_results(folder: Path, folds: list, size: int) -> dict[str, dict[str, np.ndarray]] | None:
    """Out-of-fold P(fake) and attribution of every image per condition, or None while a fold is missing."""
    if not all((folder / f"{name}.npz").is_file() for name, _, _ in folds):
        return None
    fake = {c: np.full(size, np.nan) for c in TEST_CONDITIONS}
    attribution = {c: np.full((size, len(KNOWN_GANS)), np.nan) for c in TEST_CONDITIONS}
    for name, _, _ in folds:
        with np.load(folder / f"{name}.npz", allow_pickle=False) as stored:
            for condition in TEST_CONDITIONS:
                fake[condition][stored["test"]] = stored[f"fake_{condition}"]
                attribution[condition][stored["test"]] = stored[f"attribution_{condition}"]
    return {"fake": fake, "attribution": attribution}


def held_out(results: dict, labels: np.ndarray, sources: np.ndarray, folds: list) -> HeldOutPredictions:
    """Finished fold files as HeldOutPredictions, through the same protocol function every table uses."""
    return leave_one_source_out(labels, sources, lambda train: None,
                                lambda _, test, c: Scores(results["fake"][c][test], results["attribution"][c][test]),
                                conditions=tuple(TEST_CONDITIONS), folds=folds)


def per_fold(predictions: HeldOutPredictions, folds: list, fold_map: dict, threshold: float) -> list[dict]:
    """Per fold and condition: AUC over the fold's images, real photos called fake, attribution accuracy."""
    rows = []
    for name, _, test in folds:
        row = {"fold": name, "sources": fold_map[name], "n": int(len(test))}
        labels = predictions.labels[test]
        for condition in TEST_CONDITIONS:
            fake = predictions.fake[condition][test]
            is_fake, known = labels != REAL, np.isin(labels, KNOWN_GANS)
            attribution = predictions.attribution[condition][test]
            truth = [KNOWN_GANS.index(label) for label in labels[known]]
            row[condition] = {
                "auc": float(roc_auc_score(is_fake, fake)) if 0 < is_fake.sum() < len(is_fake) else None,
                "real_false_positive_rate": float(np.mean(fake[~is_fake] >= threshold)) if (~is_fake).any() else None,
                "attribution_accuracy": float(np.mean(attribution[known].argmax(1) == truth)) if known.any() else None,
            }
        rows.append(row)
    return rows


def write_candidate(name: str, predictions: HeldOutPredictions, folds: list, fold_map: dict, out: Path,
                    max_real_fpr: float, k: int) -> dict:
    """The candidate's per-source table (the evaluate_sources format), its skill record and its per-fold rows."""
    document = write_table(predictions, out, f"{name}, source-grouped {k}-fold CV", max_real_fpr)
    document["skill"]["protocol"] = f"source-grouped {k}-fold cross-validation"
    document["per_fold"] = per_fold(predictions, folds, fold_map, document["table"]["threshold"])
    write_json_atomic(out / "source_table.json", document)
    return document


def comparison(documents: dict[str, dict]) -> tuple[dict, str]:
    """Every candidate side by side: summary per condition, per fold, and whether it clears the voting bars."""
    summary, lines = {}, ["# Source-grouped CV: every candidate side by side", "",
                          "AUC = mean over sources; real FPR = real photos called fake at the candidate's threshold "
                          "(mean over real sources); attribution = accuracy among progan/stylegan2/stylegan3, mean "
                          "over GAN sources. Conditions: as stored / JPEG q75 / 0.5× downscale.", "",
                          "| candidate | AUC | real FPR | attribution | threshold | real/fake vote | arch vote |",
                          "|---|---|---|---|---:|---|---|"]
    for name, document in documents.items():
        conditions = document["table"]["conditions"]
        row = {c: conditions[c]["summary"] for c in TEST_CONDITIONS}
        votes_fake = all((row[c]["auc_mean"] or 0) >= VOTE_AUC and (row[c]["real_false_positive_rate"] or 1) <= 0.10
                         for c in THRESHOLD_CONDITIONS)
        votes_arch = (row["clean"]["attribution_accuracy"] or 0) >= VOTE_ATTRIBUTION
        summary[name] = {"summary": row, "threshold": document["table"]["threshold"], "votes_real_fake": votes_fake,
                         "votes_architecture": votes_arch, "per_fold": document["per_fold"]}
        cells = [" / ".join(_fmt(row[c][key]) for c in TEST_CONDITIONS)
                 for key in ("auc_mean", "real_false_positive_rate", "attribution_accuracy")]
        lines.append(f"| {name} | {' | '.join(cells)} | {document['table']['threshold']:.3f} | "
                     f"{'yes' if votes_fake else 'no'} | {'yes' if votes_arch else 'no'} |")
    lines += ["", "## Per fold (clean: AUC over the fold's images / real FPR / attribution accuracy)", "",
              "| fold | sources | " + " | ".join(documents) + " |", "|---|---|" + "---|" * len(documents)]
    any_document = next(iter(documents.values()))
    for index, fold in enumerate(any_document["per_fold"]):
        cells = []
        for document in documents.values():
            clean = document["per_fold"][index]["clean"]
            cells.append(" / ".join(_fmt(clean[key]) for key in
                                    ("auc", "real_false_positive_rate", "attribution_accuracy")))
        lines.append(f"| {fold['fold']} | {', '.join(fold['sources'])} | {' | '.join(cells)} |")
    lines += ["", "## Per source (AUC as stored / JPEG q75 / 0.5×)", "",
              "| source | " + " | ".join(documents) + " |", "|---|" + "---|" * len(documents)]
    for index, source_row in enumerate(any_document["table"]["conditions"]["clean"]["sources"]):
        cells = [" / ".join(_fmt(d["table"]["conditions"][c]["sources"][index]["auc"]) for c in TEST_CONDITIONS)
                 for d in documents.values()]
        lines.append(f"| {source_row['source']} ({source_row['n_real']} real, {source_row['n_fake']} fake) | "
                     f"{' | '.join(cells)} |")
    return summary, "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        samples = cap_per_source(list_face_set(args.data), args.per_source)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    labels, sources = np.array([s.label for s in samples]), np.array([s.group for s in samples])
    folds = grouped_source_folds(sources, args.folds, args.seed, labels)
    fold_map = fold_sources(folds, sources)
    write_json_atomic(args.out / "folds.json", {"k": args.folds, "seed": args.seed, "images": len(samples),
                                                "per_source_cap": args.per_source, "folds": fold_map})
    if args.report:
        documents = {}
        for folder in sorted(p for p in args.out.iterdir() if (p / "source_table.json").is_file()):
            documents[folder.name] = json.loads((folder / "source_table.json").read_text(encoding="utf-8"))
        if not documents:
            print(f"error: no finished candidate under {args.out}", file=sys.stderr)
            return 2
        summary, markdown = comparison(documents)
        write_json_atomic(args.out / "comparison.json", summary)
        write_text_atomic(args.out / "comparison.md", markdown)
        print(markdown)
        return 0
    name = result_name(args)
    folder = args.out / name
    if args.candidate == "spectral":
        predictions = spectral_all_folds(samples, folds, args.out / "cache")
        for fold, _, test in folds:
            save_fold(folder / f"{fold}.npz", test, {c: Scores(predictions.fake[c][test],
                                                               predictions.attribution[c][test])
                                                     for c in TEST_CONDITIONS})
    elif args.candidate == "stacker":
        stacked = {partner: load_results(args.out / partner, folds, len(samples))
                   for partner in ("spectral", args.stack_with)}
        missing = [partner for partner, result in stacked.items() if result is None]
        if missing:
            print(f"error: {', '.join(missing)} has unfinished folds under {args.out}; run it first", file=sys.stderr)
            return 2
        for fold, train, test in folds:
            save_fold(folder / f"{fold}.npz", test, stacker_fold(stacked, labels, train, test))
    else:
        windows = cached_windows(samples, args.out / "cache")
        for fold, train, test in folds:
            if (folder / f"{fold}.npz").is_file():
                print(f"{name} {fold}: done earlier, skipped")
                continue
            print(f"{name} {fold}: training on {len(train)} images, testing on {len(test)} ({', '.join(fold_map[fold])})")
            scores = learned_fold(args, windows, labels, sources, train, test, folder / f"train-{fold}")
            save_fold(folder / f"{fold}.npz", test, scores)
    predictions = held_out(load_results(folder, folds, len(samples)), labels, sources, folds)
    document = write_candidate(name, predictions, folds, fold_map, folder, args.max_real_fpr, args.folds)
    print(json.dumps(document["skill"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
