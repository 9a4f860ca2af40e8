"""Ship a cue (face geometry, colour statistics, spectral DCT) with the skill its source-grouped CV measured.

The cue's candidate must have run first (`scripts/source_cv.py --candidate geometry|colour`, same --recipe and
--made-from-real): its per-source table, threshold and skill record are what the artifact carries, so fusion
lets it vote only where the held-out figures clear the bars. The shipped model is the same recipe refitted on
every image of the face set from the feature cache (seconds). Writes OUT.npz (weights), OUT.json (kind, feature
version, feature names, threshold, skill, metadata) and OUT.md (model card: what it reads, the per-source table in
three conditions, per fold, training time and machine).

    python scripts/train_cue.py ../shared/data/faces --cue geometry --cv /work/runs/cv --out artifacts/face-geometry
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.device import cpu_description
from core.errors import InputError
from core.source_holdout import table_markdown
from detector import colour_stats, face_cues, face_geometry
from detector.feature_model import FeatureModel
from detector.spectral import TEST_CONDITIONS, SpectralDetector
from pipeline.branch import BranchRole
from pipeline.fusion import FusionConfig, attribution_refusal, real_vs_fake_refusal
from runners.cv_candidates import cue_training_rows, nested_c
from runners.cv_results import summary_table
from runners.evaluate_sources import cap_per_source, list_face_set
from runners.feature_cache import cv_features

# what each shippable cue is: the artifact's kind, its feature function's version and names, and what it reads
CUES = {
    "geometry": ("face-geometry", face_geometry.FEATURE_VERSION, face_geometry.FEATURE_NAMES,
                 "where the face sits in the frame, from dlib's 68 landmarks: landmark positions as fractions of "
                 "the frame, the eyes' and mouth's offsets from the FFHQ alignment template, the eye line's angle "
                 "and length, the face's centre and scale, and left/right asymmetry per region "
                 "(detector/face_geometry.py). A face-level branch: it reads the landmarks the pipeline's face "
                 "finder already computed."),
    "dct": ("spectral-dct", face_cues.FEATURE_VERSION, tuple(f"dct{i}" for i in range(face_cues.SPECTRAL_SPEC.dim)),
            "the spectral DCT features of detector/spectral.py (the face at one content scale, 128-px centre crop, "
            "log-DCT pooled to 16×16). Saved in the spectral branch's format (detector.spectral.SpectralDetector), "
            "so `spectral_dct` loads it as its weights."),
    "colour": ("colour-stats", colour_stats.FEATURE_VERSION, colour_stats.FEATURE_NAMES,
               "the whole image's colour statistics: fractions of saturated and under-exposed pixels (McCloskey & "
               "Albright 2019), 16-bin saturation and value histograms, per-channel moments and the chroma "
               "channels' spread (detector/colour_stats.py). An image-level branch."),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--cue", choices=sorted(CUES), required=True)
    parser.add_argument("--cv", type=Path, required=True, help="the source_cv --out folder (results + features/)")
    parser.add_argument("--recipe", choices=("none", "codec-blind"), default="none")
    parser.add_argument("--made-from-real", action="store_true")
    parser.add_argument("--per-source", type=int, default=None, help="as the CV run was given")
    parser.add_argument("--out", type=Path, required=True, help="artifact stem, e.g. artifacts/face-geometry")
    return parser.parse_args(argv)


def result_name(args: argparse.Namespace) -> str:
    """The CV result folder of this cue and training choice (runners.source_cv.result_name's naming)."""
    return args.cue + ("-codecblind" if args.recipe == "codec-blind" else "") + ("-mfr" if args.made_from_real else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table_path = args.cv / result_name(args) / "source_table.json"
    try:
        if not table_path.is_file():
            raise InputError(f"{table_path}: missing; run scripts/source_cv.py --candidate {args.cue} first")
        document = json.loads(table_path.read_text(encoding="utf-8"))
        samples = cap_per_source(list_face_set(args.data), args.per_source)
        tests, views, made = cv_features(args.cv / "features", samples, args.recipe != "none", args.made_from_real,
                                         args.cue != "geometry")
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    kind, version, names, _ = CUES[args.cue]
    labels, sources = np.array([s.label for s in samples]), np.array([s.group for s in samples])
    everything = np.arange(len(samples))
    started = time.perf_counter()
    C = nested_c(args.cue, tests, labels, sources, everything, views, made)
    rows, targets = cue_training_rows(args.cue, tests, labels, everything, views, made)
    model = FeatureModel.fit(kind, version, names, rows, targets, C)
    seconds = time.perf_counter() - started
    model.detector.threshold = document["table"]["threshold"]
    model.skill = document["skill"]
    cpu, _ = cpu_description()
    metadata = {"trained_on": f"{args.data.name}: {len(samples)} images, {len(rows)} training rows",
                "C": C, "recipe": args.recipe, "made_from_real": args.made_from_real,
                "fit_seconds": round(seconds, 2), "machine": cpu, "cv_command": document.get("command"),
                "created": datetime.date.today().isoformat()}
    if args.cue == "dct":
        spectral = SpectralDetector(face_cues.SPECTRAL_SPEC, model.detector.head,
                                    model.attribution_head,
                                    model.detector.threshold)
        spectral.save(args.out, skill=model.skill, metadata=metadata)
    else:
        model.save(args.out, metadata)
    args.out.with_suffix(".md").write_text(model_card(args, document, metadata, len(samples)), encoding="utf-8")
    print(json.dumps(document["skill"], indent=2))
    return 0


def compared_with(cv: Path) -> list[str]:
    """Every candidate the same CV measured (its `--report`), so the card shows what this model won against."""
    report = cv / "comparison.json"
    if not report.is_file():
        return []
    summary = json.loads(report.read_text(encoding="utf-8"))
    return ["## Every candidate of the same cross-validation", "", *summary_table(summary),
            "", "Per fold and per source: the CV's comparison.md (`scripts/source_cv.py --report`).", ""]


def model_card(args: argparse.Namespace, document: dict, metadata: dict, n_images: int) -> str:
    """What the cue reads, whether fusion lets it vote and why, and the held-out tables it was judged by."""
    kind, _, names, reads = CUES[args.cue]
    bars = FusionConfig()
    fake_refusal = real_vs_fake_refusal(BranchRole(), document["skill"], bars)
    arch_refusal = attribution_refusal(BranchRole(), document["skill"], bars)
    training = ("the images as stored" if args.recipe == "none" else
                "the codec-blind recipe's whole-image views (detector/codec_blind.py: history-erasing downscale, "
                "JPEG at a quality drawn from the real photos' own, one lossless share for every class, flip)")
    if args.made_from_real:
        training += ", plus fakes made from the real photos (detector/made_from_real.py)"
    fold_lines = ["| fold | sources | AUC (stored / q75 / 0.5×) | real photos called fake | attribution |",
                  "|---|---|---|---|---|"]
    for fold in document["per_fold"]:
        cells = [" / ".join("–" if fold[c][key] is None else f"{fold[c][key]:.2f}" for c in TEST_CONDITIONS)
                 for key in ("auc", "real_false_positive_rate", "attribution_accuracy")]
        fold_lines.append(f"| {fold['fold']} | {', '.join(fold['sources'])} | {' | '.join(cells)} |")
    return "\n".join([
        f"# {args.out.stem}: the {args.cue} cue + linear heads ({kind} branch)", "",
        f"Reads {reads}", "",
        f"{len(names)} features into StandardScaler + class-balanced LogisticRegression (C = {metadata['C']}, "
        "chosen by source-grouped CV over the training images, as inside every CV fold): "
        "real vs fake (every non-real class is fake) and progan / stylegan2 / stylegan3. Weights are plain arrays "
        "(.npz, loaded with allow_pickle=False); kind, feature version, names, threshold and skill are in the .json.",
        "",
        f"Trained on the GANTrace development face set ({n_images} images) from {training}. Fitting took "
        f"{metadata['fit_seconds']} s on {metadata['machine']} (features computed once by runners/feature_cache.py).",
        "",
        "## Does it vote?", "",
        f"- Real vs fake: {'yes' if fake_refusal is None else fake_refusal}.",
        f"- Architecture: {'yes' if arch_refusal is None else arch_refusal}.", "",
        "Judged by source-grouped 5-fold cross-validation (seed 0; every source held out once, a same-processing "
        "real/fake pair together), as stored, after JPEG q75 and after a 0.5× downscale; the threshold is chosen on "
        "the held-out scores so that real photos called fake stay ≤ 10 % (mean over real sources) in all three. "
        f"Reproduce: `{document.get('command')}`.", "",
        "## Per fold", "", *fold_lines, "",
        table_markdown(document["table"], "Per-source table (held-out)"), "",
        *compared_with(args.cv),
        "## Limits", "",
        "- The face set is small (tens of sources): these figures prove the protocol, not a publishable accuracy.",
        "- Geometry reads the alignment FFHQ/CelebA-HQ crops share with the generators trained on them: real photos "
        "cropped that way look like fakes to it, and a re-cropped fake looks real. Colour statistics read the "
        "camera/generator tone curve, and also each source's own grading.",
        "- Diffusion and other GAN images are trained as 'fake'; generators it never saw may read as real.", ""])


if __name__ == "__main__":
    sys.exit(main())
