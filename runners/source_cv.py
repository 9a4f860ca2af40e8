"""Source-grouped 5-fold cross-validation of candidate real/fake + which-GAN branches: one protocol, one table.

Every candidate is judged the same way: the face set's sources (provenance `repo`; a real/fake pair processed
the same way is one source) are dealt into K folds by `core.source_holdout.grouped_source_folds` (seeded, written
to OUT/folds.json); for each fold the candidate is fitted on the other folds and scores the held-out one, as
stored, after JPEG q75 and after a 0.5× downscale. The threshold on P(fake) is chosen on those held-out scores
(mean real false-positive rate over real sources ≤ 10 %, clean and JPEG q75), and the per-source table is the one
`scripts/evaluate_sources.py` writes.

Candidates:
- `residual`: detector.residual_net (NPR-style up-sampling residual), retrained per fold; `--augment` picks the
  training augmentation (none | analyst | reencoded), and the result is stored as `residual-<augment>`.
- `fingerprint`: FingerprintNet (small preset, 64-pixel crops like the residual branch) retrained per fold with
  the same augmentation and sampling, stored as `fingerprint-<augment>`.
- either learned one with `--recipe codec-blind` (issue 27): trained on the codec-blind recipe of
  detector.codec_blind, fitted per fold to its own real training photos' JPEG qualities, batches of (fake, real)
  pairs sharing one processing draw; `--made-from-real` adds a fake made from every real training photo
  (detector.made_from_real), paired with its twin. Stored as `<candidate>-codecblind[-mfr]`.
  Every learned candidate trains a fixed `--steps` per fold (no wall-clock budget unless `--budget-min` is given),
  so the machine's load changes how long a fold takes, never what it learns.
- `spectral`: the spectral_dct recipe of detector.spectral, refitted per fold (the reference).
- `geometry`, `colour`, `dct`: a linear model (detector.feature_model) over one cue's features — face geometry
  from the 68 dlib landmarks, colour statistics, the spectral DCT features — computed once by
  `runners.feature_cache` (OUT/features) and refitted per fold in seconds. Trained on the images as stored, or
  with `--recipe codec-blind` on the recipe's training views; `--made-from-real` adds the fakes made from the
  training folds' real photos. Stored as `<cue>[-codecblind][-mfr]`.
- `stacker`: a logistic regression over the answers of the finished cue candidates named by `--stack-with`
  (comma-separated, e.g. dct-codecblind-mfr,geometry-codecblind-mfr), fully nested: for each outer fold the
  partners are refitted on inner source-grouped folds of its training images, the stacker learns from those inner
  answers and is applied to the partners' own out-of-fold answers for the held-out fold. (Fitting it on the other
  outer folds' out-of-fold answers instead lets it learn how models that saw the held-out fold err: attribution
  0.76 there, 0.46 nested.)

Every decoded image is cached once (OUT/cache): the central 256-pixel native window of each image, as stored and
under each test condition, so every job decodes the face set once; so is every real photo's made-from-real twin.
Each (candidate, fold) result is written atomically to OUT/<candidate>/<fold>.npz; a re-run
skips finished folds and a killed training resumes from its checkpoint. `--report` writes OUT/comparison.md/.json: all finished candidates side by side.

    python scripts/source_cv.py ../shared/data/faces --out runs/issue20/cv --candidate residual --augment analyst
    python scripts/source_cv.py ../shared/data/faces --out runs/cv --candidate residual --recipe codec-blind \
        --made-from-real --steps 1200
    python scripts/source_cv.py ../shared/data/faces --out runs/cv --candidate stacker \
        --stack-with dct-codecblind-mfr,geometry-codecblind-mfr,colour-codecblind-mfr
    python scripts/source_cv.py ../shared/data/faces --out /work/runs/cv --candidate geometry --recipe codec-blind
    python scripts/source_cv.py ../shared/data/faces --out runs/issue20/cv --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.atomic import write_json_atomic, write_text_atomic
from core.errors import InputError
from core.source_holdout import (MAX_REAL_FALSE_POSITIVE_RATE, Scores,
                                 fold_sources, grouped_source_folds)
from detector.codec_blind import estimate_jpeg_quality
from detector.residual_training import AUGMENTATIONS
from detector.spectral import TEST_CONDITIONS
from runners.cv_candidates import (CUE_FEATURES, cached_made_from_real, cached_windows, cue_fold, inner_answers,
                                   learned_fold, recipe_fold, spectral_all_folds, stack_partner, stacker_fold,
                                   with_concatenated)
from runners.cv_results import comparison, held_out, load_results, rescored, save_fold, write_candidate
from runners.evaluate_sources import cap_per_source, list_face_set
from runners.feature_cache import cv_features

CANDIDATES = ("residual", "fingerprint", "spectral", *CUE_FEATURES, "stacker")
RECIPES = ("none", "codec-blind")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--out", type=Path, required=True, help="output folder (folds, cache, per-candidate results)")
    parser.add_argument("--candidate", choices=CANDIDATES, help="what to cross-validate")
    parser.add_argument("--augment", choices=sorted(AUGMENTATIONS), default="analyst",
                        help="training augmentation of a learned candidate (default %(default)s)")
    parser.add_argument("--recipe", choices=RECIPES, default="none",
                        help="codec-blind: train a learned candidate on the codec-blind recipe (detector.codec_blind, "
                             "fitted per fold to its real photos) instead of --augment (default %(default)s)")
    parser.add_argument("--made-from-real", action="store_true",
                        help="with --recipe codec-blind: add fakes made from the fold's real training photos")
    parser.add_argument("--stack-with", default=None,
                        help="stacker: the result names of the candidates it stacks, comma-separated")
    parser.add_argument("--report", action="store_true", help="write the comparison of every finished candidate")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="fold assignment and training seed")
    parser.add_argument("--budget-min", type=float, default=None,
                        help="training minutes per fold that may cut --steps (default: none, every fold runs --steps)")
    parser.add_argument("--steps", type=int, default=1200, help="training steps per fold of a learned candidate")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CPU is shared)")
    parser.add_argument("--per-source", type=int, default=None,
                        help="at most this many images per source and class (evenly spaced), for a quick pass")
    parser.add_argument("--max-real-fpr", type=float, default=MAX_REAL_FALSE_POSITIVE_RATE)
    args = parser.parse_args(argv)
    if not args.report and args.candidate is None:
        parser.error("give --candidate or --report")
    if args.candidate == "stacker" and not args.stack_with:
        parser.error("--candidate stacker needs --stack-with (finished cue candidates, e.g. dct,geometry-codecblind)")
    if args.candidate == "cues" and args.recipe != "none":
        parser.error("--candidate cues (the three cues in one model) is trained as stored only")
    if args.made_from_real and args.recipe != "codec-blind":
        parser.error("--made-from-real pairs each fake with its real twin under one draw: it needs --recipe codec-blind")
    return args


def result_name(args: argparse.Namespace) -> str:
    """Folder name of a candidate's results: learned ones carry their augmentation, the stacker its partner."""
    if args.candidate in ("residual", "fingerprint"):
        if args.recipe == "codec-blind":
            return f"{args.candidate}-codecblind" + ("-mfr" if args.made_from_real else "")
        return f"{args.candidate}-{args.augment}"
    if args.candidate in CUE_FEATURES:
        return (args.candidate + ("-codecblind" if args.recipe == "codec-blind" else "")
                + ("-mfr" if args.made_from_real else ""))
    return f"stacker-{args.stack_with.replace(',', '+')}" if args.candidate == "stacker" else args.candidate


def training_settings(args: argparse.Namespace) -> dict:
    """What decides a learned candidate's folds; a folder trained one way is never finished another way."""
    return {"steps": args.steps, "budget_min": args.budget_min, "seed": args.seed, "augment": args.augment,
            "recipe": args.recipe, "made_from_real": args.made_from_real, "per_source": args.per_source}


def claim_folder(folder: Path, settings: dict) -> None:
    """Record `settings` in a new candidate folder, or check an existing folder was trained with the same: a
    re-run with another --steps would otherwise skip the finished folds and mix two trainings in one table."""
    record = folder / "training.json"
    if record.is_file():
        earlier = json.loads(record.read_text())
        changed = {k: (earlier.get(k), v) for k, v in settings.items() if earlier.get(k) != v}
        if changed:
            described = ", ".join(f"{k} {old} (now {new})" for k, (old, new) in changed.items())
            raise InputError(f"{folder} was trained with {described}: give another --out, or move it away")
        return
    if any(folder.glob("fold-*.npz")):
        raise InputError(f"{folder} holds folds with no record of their training: give another --out, or move it")
    write_json_atomic(record, settings)


def run_learned(args: argparse.Namespace, samples: list, folds: list, fold_map: dict, folder: Path) -> None:
    """Train and score a learned candidate fold by fold; a finished fold is skipped, an unfinished one resumes."""
    claim_folder(folder, training_settings(args))
    labels, sources = np.array([s.label for s in samples]), np.array([s.group for s in samples])
    windows = cached_windows(samples, args.out / "cache")
    twins = cached_made_from_real(samples, windows["clean"], args.out / "cache") if args.made_from_real else {}
    for fold, train, test in folds:
        if (folder / f"{fold}.npz").is_file():
            print(f"{folder.name} {fold}: done earlier, skipped")
            continue
        print(f"{folder.name} {fold}: training on {len(train)} images, testing on {len(test)} "
              f"({', '.join(fold_map[fold])})", flush=True)
        started = time.monotonic()
        if args.recipe == "codec-blind":
            scores = recipe_fold(args, samples, windows, twins, train, test, folder / f"train-{fold}")
        else:
            scores = learned_fold(args, windows, labels, sources, train, test, folder / f"train-{fold}")
        save_fold(folder / f"{fold}.npz", test, scores)
        print(f"{folder.name} {fold}: {time.monotonic() - started:.0f} s", flush=True)


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
        stored_jpeg = np.array([estimate_jpeg_quality(s.path) is not None for s in samples])
        documents = {}
        for folder in sorted(p for p in args.out.iterdir() if p.is_dir()):
            results = load_results(folder, folds, len(samples))
            if results is not None:
                documents[folder.name] = rescored(folder.name, folder, held_out(results, labels, sources, folds),
                                                  folds, fold_map, args.max_real_fpr, args.folds, stored_jpeg)
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
        partners = args.stack_with.split(",")
        try:
            flags = [stack_partner(partner) for partner in partners]
            tests, views, made = cv_features(args.out / "features", samples, any(f[1] for f in flags),
                                             any(f[2] for f in flags))
        except (ValueError, InputError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        tests = with_concatenated(tests)
        outer = {partner: load_results(args.out / partner, folds, len(samples)) for partner in partners}
        missing = [partner for partner, result in outer.items() if result is None]
        if missing:
            print(f"error: {', '.join(missing)} has unfinished folds under {args.out}; run it first", file=sys.stderr)
            return 2
        for fold, train, test in tqdm(folds, desc="stacker folds (partners refitted inside each)"):
            inner = inner_answers(partners, tests, views, made, labels, sources, train)
            save_fold(folder / f"{fold}.npz", test, stacker_fold(inner, outer, labels, train, test))
    elif args.candidate in CUE_FEATURES:
        try:
            tests, views, made = cv_features(args.out / "features", samples, args.recipe != "none",
                                             args.made_from_real, CUE_FEATURES[args.candidate] != "geometry")
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        tests = with_concatenated(tests)
        for fold, train, test in folds:
            scores, C = cue_fold(args.candidate, tests, labels, sources, train, test, views, made)
            print(f"{name} {fold}: C = {C} (nested)", flush=True)
            save_fold(folder / f"{fold}.npz", test, scores)
    else:
        try:
            run_learned(args, samples, folds, fold_map, folder)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    predictions = held_out(load_results(folder, folds, len(samples)), labels, sources, folds)
    command = "python scripts/source_cv.py " + " ".join(str(a) for a in (sys.argv[1:] if argv is None else argv))
    document = write_candidate(name, predictions, folds, fold_map, folder, args.max_real_fpr, args.folds, command)
    print(json.dumps(document["skill"], indent=2))
    return 0

