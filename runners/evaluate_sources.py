"""Leave-one-source-out evaluation of an offline branch on a labelled face folder: the per-source table.

DATA is a folder of class folders (real/, progan/, stylegan2/, stylegan3/, other classes = other fakes) with a
provenance.csv beside them (columns class, file, repo; the face set's format). A source is a
`repo`; a real/fake pair processed the same way shares its repo and so is held out as one source.

    python scripts/evaluate_sources.py ../shared/data/faces --branch spectral --out runs/spectral/loso
    python scripts/evaluate_sources.py ../shared/data/faces --branch fingerprint_net --out runs/fp-loso

--branch spectral trains the spectral recipe on all other sources for every held-out source (features cached in
--cache). --branch fingerprint_net scores the shipped, already trained FingerprintNet: it is not refitted per
fold, so sources it was trained on are not truly held out and its figures are optimistic. Every test image is
scored as stored, after JPEG q75 re-encoding and after a 0.5× downscale; the threshold on P(fake) is chosen on
the held-out scores (mean real false-positive rate over real sources ≤ --max-real-fpr, clean and JPEG q75).
Writes DIR/source_table.json (table + skill record) and DIR/source_table.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.augment import AugmentSettings
from core.datasets import LabelledImage, read_dataset
from core.errors import InputError
from core.images import ImageError, load_image
from core.source_holdout import (KNOWN_GANS, MAX_REAL_FALSE_POSITIVE_RATE, HeldOutPredictions, Scores,
                                 choose_threshold, leave_one_source_out, skill_record, source_folds, source_table,
                                 table_markdown)
from detector.spectral import TEST_CONDITIONS, SpectralSpec, dataset_features, holdout_predictions

BRANCHES = ("spectral", "fingerprint_net")
DEFAULT_CACHE = Path("runs") / "spectral"  # relative to the working directory, like --out
DEFAULT_FINGERPRINT = Path(__file__).resolve().parents[1] / "artifacts" / "fingerprintnet-small.safetensors"
# the threshold keeps real photos called fake within budget in every condition fusion's bar checks
THRESHOLD_CONDITIONS = ("clean", "jpeg75", "half")
BATCH = 16


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--branch", choices=BRANCHES, required=True)
    parser.add_argument("--out", type=Path, required=True, help="output folder for source_table.json/.md")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where decoded features/scores are cached")
    parser.add_argument("--weights", type=Path, default=DEFAULT_FINGERPRINT, help="FingerprintNet safetensors")
    parser.add_argument("--C", type=float, default=0.1, help="spectral: inverse L2 strength of the linear heads")
    parser.add_argument("--max-real-fpr", type=float, default=MAX_REAL_FALSE_POSITIVE_RATE,
                        help="threshold rule: mean real false-positive rate over real sources (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="spectral: augmentation seed")
    parser.add_argument("--per-source", type=int, default=None,
                        help="score at most this many images per source and class (evenly spaced), to save time")
    return parser.parse_args(argv)


def list_face_set(data: Path) -> list[LabelledImage]:
    """Every row of DATA/provenance.csv (source = repo); a missing folder, CSV, column or file is an InputError."""
    csv_path = Path(data) / "provenance.csv"
    if not Path(data).is_dir():
        raise InputError(f"{data}: not a folder")
    if not csv_path.is_file():
        raise InputError(f"{csv_path}: missing (needs a provenance.csv with class,file,repo columns)")
    samples, kind = read_dataset(csv_path)
    if kind != "provenance":
        raise InputError(f"{csv_path}: missing columns (needs class,file,repo)")
    absent = [s.path for s in samples if not s.path.is_file()]
    if absent:
        raise InputError(f"{absent[0]}: listed in provenance.csv but not found ({len(absent)} missing)")
    if not any(s.label == "real" for s in samples) or all(s.label == "real" for s in samples):
        raise InputError(f"{csv_path}: needs both real and fake images to evaluate real vs fake")
    return samples


def cap_per_source(samples: list[LabelledImage], limit: int | None) -> list[LabelledImage]:
    """At most `limit` evenly spaced samples per (source, class), in file order: a cheaper, still per-source run."""
    if limit is None:
        return samples
    groups: dict[tuple[str, str], list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault((sample.group, sample.label), []).append(index)
    kept = {members[int(i)] for members in groups.values()
            for i in np.unique(np.linspace(0, len(members) - 1, min(limit, len(members))).round())}
    return [samples[index] for index in sorted(kept)]


def spectral_predictions(samples: list[LabelledImage], cache: Path, C: float, seed: int,
                         spec: SpectralSpec = SpectralSpec(),
                         augmentation: AugmentSettings = AugmentSettings.spectral()) -> HeldOutPredictions:
    """Cached spectral features, then the recipe refitted per held-out source."""
    views, tests = dataset_features([s.path for s in samples], spec, augmentation, seed,
                                    cache / f"spectral-features-seed{seed}.npz", _progress("spectral features"))
    labels, sources = [s.label for s in samples], [s.group for s in samples]
    folds = tqdm(source_folds(sources), desc="held-out sources", unit="source")
    return holdout_predictions(views, tests, labels, sources, spec, C, folds)


def fingerprint_predictions(samples: list[LabelledImage], weights: Path, cache: Path) -> HeldOutPredictions:
    """The shipped FingerprintNet's P(class) per condition (cached by weight checksum); no refit per fold."""
    from core.weights import sha256_file
    from detector.fingerprint_net import FingerprintNet

    model = FingerprintNet.from_pretrained(weights)
    files = "".join(f"{s.path.parent.name}/{s.path.name}" for s in samples).encode()
    cache_path = cache / f"fingerprint-{sha256_file(weights)[:16]}-{hashlib.sha256(files).hexdigest()[:12]}.npz"
    if cache_path.is_file():
        with np.load(cache_path, allow_pickle=False) as stored:
            probabilities = {name: stored[name] for name in TEST_CONDITIONS}
    else:
        probabilities = {name: np.zeros((len(samples), len(model.classes_)), np.float32) for name in TEST_CONDITIONS}
        for start in tqdm(range(0, len(samples), BATCH), desc="FingerprintNet", unit="batch", mininterval=5):
            batch = [load_image(sample.path).pixels for sample in samples[start:start + BATCH]]
            for name, perturb in TEST_CONDITIONS.items():
                probabilities[name][start:start + len(batch)] = model.predict_proba([perturb(p) for p in batch])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache_path, **probabilities)
    classes = list(model.classes_)
    gan_columns = [classes.index(name) for name in KNOWN_GANS]

    def score(_model, test: np.ndarray, condition: str) -> Scores:
        rows = probabilities[condition][test]
        return Scores(1.0 - rows[:, classes.index("real")], rows[:, gan_columns])

    labels, sources = [s.label for s in samples], [s.group for s in samples]
    return leave_one_source_out(labels, sources, lambda train: None, score, conditions=tuple(TEST_CONDITIONS))


def write_table(predictions: HeldOutPredictions, out: Path, title: str, max_real_fpr: float,
                does_attribution: bool = True) -> dict:
    """Choose the threshold on held-out scores, write source_table.json/.md, return the JSON document."""
    threshold = choose_threshold(predictions, THRESHOLD_CONDITIONS, max_real_fpr)
    table = source_table(predictions, threshold)
    document = {"skill": skill_record(table, does_attribution=does_attribution), "table": table}
    out.mkdir(parents=True, exist_ok=True)
    (out / "source_table.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (out / "source_table.md").write_text(table_markdown(table, title) + "\n", encoding="utf-8")
    return document


def _progress(desc: str):
    return lambda items: tqdm(items, desc=desc, unit="img", mininterval=5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        samples = cap_per_source(list_face_set(args.data), args.per_source)
        if args.branch == "spectral":
            predictions = spectral_predictions(samples, args.cache, args.C, args.seed)
        else:
            if not args.weights.is_file():
                raise InputError(f"{args.weights}: FingerprintNet weights not found")
            predictions = fingerprint_predictions(samples, args.weights, args.cache)
    except (InputError, ImageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    document = write_table(predictions, args.out, f"{args.branch}, leave-one-source-out", args.max_real_fpr)
    print(json.dumps(document["skill"], indent=2))
    return 0
