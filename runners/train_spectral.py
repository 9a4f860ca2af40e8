"""Train the spectral branch (DCT log-spectrum + linear heads), judged leave-one-source-out, and ship it.

For every candidate regularisation strength the recipe is evaluated leave-one-source-out (train on all other
sources, test on the held-out one; clean, JPEG q75, 0.5× downscale). The strength whose worse of clean / JPEG q75
mean-over-sources AUC is highest is kept, the threshold is the one chosen on its held-out scores, and the final
heads are refitted on every source. Writes OUT.npz (weights), OUT.json (spec, threshold, skill) and OUT.md (model
card with the per-source table). The out-of-distribution record (threshold on the RMS of the standardised
features, and how often it fires on held-out sources) is written with them; --ood-only adds or refreshes just
that record in an existing OUT.json and OUT.md from the cached features, leaving the weights untouched.

    python scripts/train_spectral.py ../shared/data/faces --out artifacts/spectral-dct --per-source 60
    python scripts/train_spectral.py ../shared/data/faces --out artifacts/spectral-dct --per-source 60 --ood-only
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from runners.evaluate_sources import DEFAULT_CACHE, cap_per_source, list_face_set, spectral_predictions, write_table

from core.augment import AugmentSettings
from core.errors import InputError
from core.images import ImageError
from core.source_holdout import MAX_REAL_FALSE_POSITIVE_RATE, table_markdown
from pipeline.fusion import FusionConfig
from detector.spectral import (OOD_GROUPS, SpectralDetector, SpectralSpec, dataset_features,
                               holdout_ood, ood_record)

# the bars fusion applies (pipeline.fusion.FusionConfig), so the model card says what fusion will do
VOTE_AUC = FusionConfig().min_real_vs_fake_auc
VOTE_REAL_FPR = FusionConfig().max_real_false_positive_rate
VOTE_ATTRIBUTION = FusionConfig().min_attribution_accuracy
MEETS, BELOW = "meets the bar", "below the bar — must not vote"
OOD_HEADING = "## Out-of-distribution signal"
LIMITS_HEADING = "## Limits"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--out", type=Path, required=True, help="artifact stem, e.g. artifacts/spectral-dct")
    parser.add_argument("--report", type=Path, default=DEFAULT_CACHE / "train", help="per-C held-out tables")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where decoded features are cached")
    parser.add_argument("--C", type=float, nargs="+", default=[0.001, 0.01, 0.1], help="candidate strengths")
    parser.add_argument("--max-real-fpr", type=float, default=MAX_REAL_FALSE_POSITIVE_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-source", type=int, default=None,
                        help="use at most this many images per source and class (evenly spaced)")
    parser.add_argument("--ood-only", action="store_true",
                        help="only (re)compute the out-of-distribution record of the existing OUT artifact")
    return parser.parse_args(argv)


def selection_score(document: dict) -> float:
    """Worse of clean and JPEG q75 held-out AUC (mean over sources): format must not be what the model reads."""
    real_vs_fake = document["skill"]["real_vs_fake"]
    return min(real_vs_fake["auc"], real_vs_fake["auc_jpeg75"])


def verdict_lines(skill: dict) -> list[str]:
    """Plain sentences: does this artifact meet the issue-11 bars to vote, per task?"""
    rvf, attribution = skill["real_vs_fake"], skill["attribution"]
    meets = [rvf[f"auc{s}"] >= VOTE_AUC and rvf[f"real_false_positive_rate{s}"] <= VOTE_REAL_FPR
             for s in ("", "_jpeg75")]
    lines = [f"- Real vs fake: AUC {rvf['auc']:.3f} clean / {rvf['auc_jpeg75']:.3f} JPEG q75 (bar ≥ {VOTE_AUC}), "
             f"real photos called fake {rvf['real_false_positive_rate']:.3f} / "
             f"{rvf['real_false_positive_rate_jpeg75']:.3f} (bar ≤ {VOTE_REAL_FPR}): "
             f"{MEETS if all(meets) else BELOW}."]
    if attribution is None:
        lines.append("- Attribution: no head (null).")
    else:
        ok = min(attribution["accuracy"], attribution["accuracy_jpeg75"]) >= VOTE_ATTRIBUTION
        lines.append(f"- Attribution among progan/stylegan2/stylegan3: accuracy {attribution['accuracy']:.3f} clean / "
                     f"{attribution['accuracy_jpeg75']:.3f} JPEG q75 over {attribution['gan_sources']} held-out GAN "
                     f"sources (bar ≥ {VOTE_ATTRIBUTION}): {MEETS if ok else BELOW}.")
    return lines


def ood_section(record: dict, holdout: dict) -> str:
    """The model card's out-of-distribution section: the rule, the summary and the per-source firing rates."""
    conditions = list(holdout["summary"])
    lines = [OOD_HEADING, "",
             f"An image is flagged when the RMS of its standardised DCT features (z-scores under the real-vs-fake "
             f"head's scaler, i.e. what the linear model reads) exceeds {record['threshold']:.3f}, the "
             f"{record['quantile']:.0%} quantile over {record['fitted_on']}; fusion then calls the verdict "
             "uncertain when this branch votes. A spectrum inside that range is no evidence of a known generator: "
             "compare the other_gan / diffusion row with the rest before reading a silent flag as reassurance. "
             "Held out (leave-one-source-out: scaler and threshold fitted on the "
             "other sources' training views, the held-out source's test images flagged or not), mean firing rate "
             "over sources:", "",
             "| group | sources | " + " | ".join(conditions) + " |", "|---|---:|" + "---:|" * len(conditions)]
    for group, description in OOD_GROUPS.items():
        rates = " | ".join(f"{holdout['summary'][c].get(group, float('nan')):.3f}" for c in conditions)
        lines.append(f"| {description} | {holdout['sources'][group]} | {rates} |")
    lines += ["", "| source | group | n | threshold | " + " | ".join(conditions) + " |",
              "|---|---|---:|---:|" + "---:|" * len(conditions)]
    for row in holdout["rows"]:
        rates = " | ".join(f"{row['rate'][c]:.2f}" for c in conditions)
        lines.append(f"| {row['source']} | {row['group']} | {row['n']} | {row['threshold']:.2f} | {rates} |")
    return "\n".join(lines) + "\n"


def with_ood_section(card: str, section: str) -> str:
    """The card with its out-of-distribution section replaced, or inserted before the limits when absent."""
    if OOD_HEADING in card:
        head, rest = card.split(OOD_HEADING, 1)
        following = rest.find("\n## ")
        return head + section + ("" if following < 0 else "\n" + rest[following + 1:])
    if LIMITS_HEADING in card:
        head, tail = card.split(LIMITS_HEADING, 1)
        return head + section + "\n" + LIMITS_HEADING + tail
    return card.rstrip("\n") + "\n\n" + section


def model_card(out: Path, document: dict, C: float, candidates: dict[float, float], n_images: int,
               per_source: int | None) -> str:
    skill = document["skill"]
    azimuthal = "(64 radial bins)" if SpectralSpec().azimuthal else "is off: it lowered held-out AUC from 0.67 to 0.64"
    return "\n".join([
        f"# {out.stem}: DCT log-spectrum + linear heads (spectral branch)", "",
        "Frank et al. (ICML 2020) DCT log-spectrum of the grayscale face put at one content scale (short side "
        "resized to 128 px, centre crop 128×128; pooled 8×8 to 16×16 coefficients; a Durall et al. (CVPR "
        f"2020) azimuthal profile {azimuthal}), into "
        "StandardScaler + LogisticRegression heads: real vs fake (every non-real class is fake), and progan / "
        "stylegan2 / stylegan3. Weights are plain arrays (.npz, loaded with allow_pickle=False); spec, threshold "
        "and skill are in the .json.", "",
        f"Trained on the GANTrace development face set ({n_images} images, every class"
        f"{'' if per_source is None else f', at most {per_source} per source and class'}) with the same augmentation "
        "for every class: random downscale 0.25–1 of the whole image (reaching the 256/300 px regimes of the paired "
        "sources), JPEG q50–100 (80 % of views, the rest lossless), resize to 128, random crop jitter and flip, "
        "slight Gaussian blur and noise, 4 views per image. "
        f"C = {C} chosen by the worse of clean / JPEG q75 held-out AUC among {candidates}.", "",
        "## Does it vote? (issue 11 bars, leave-one-source-out)", "", *verdict_lines(skill), "",
        "The skill block in the .json is what fusion reads. AUC is the mean over sources: a source holding both "
        "classes gets its own AUC, a one-class source the AUC of its images against the held-out images of the "
        "other class. The real false-positive rate is the mean over real sources at the shipped threshold, chosen "
        "on held-out scores so that it stays ≤ 10 % clean and after JPEG q75.", "",
        table_markdown(document["table"], "Per-source table (held-out)"), "",
        "## Limits", "",
        "- The face set is small (tens of sources); these figures prove the protocol, not a publishable accuracy.",
        "- What limited it: a fixed-size native crop let the model read image size (AUC 0.59); one content scale "
        "lifted that to about 0.68, and the remaining signal is weak — 16×16 pooled DCT bands of a 128-px face keep "
        "the spectral fall-off but little of the up-sampling grid, and most sources are one generator each, so "
        "a linear model fits their look rather than the architecture (ProGAN re-implementations and StyleGAN3 "
        "sources vary most).",
        "- A linear model on spectra sees up-sampling traces and camera/codec statistics alike; re-encoding and "
        "downscaling shrink the high frequencies it reads (see the jpeg75 and half tables).",
        "- Diffusion and other GAN images are trained as 'fake'; generators it never saw may read as real.",
        "- Every image is resized to 128 px: up-sampling peaks of large images are partly blurred away; what is "
        "left is the overall spectral fall-off and the traces that survive resizing.", ""])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        samples = cap_per_source(list_face_set(args.data), args.per_source)
        if args.ood_only:
            return add_ood(args, samples)
        documents = {}
        for C in args.C:
            predictions = spectral_predictions(samples, args.cache, C, args.seed)
            documents[C] = write_table(predictions, args.report / f"C{C:g}", f"spectral C={C:g}", args.max_real_fpr)
            print(f"C={C:g}: {json.dumps(documents[C]['skill'])}", file=sys.stderr)
        views, tests = cached_features(args, samples)
    except (InputError, ImageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    candidates = {C: round(selection_score(document), 4) for C, document in documents.items()}
    best = max(candidates, key=candidates.get)
    document = documents[best]
    detector = SpectralDetector.fit_features(views, [s.label for s in samples], SpectralSpec(), best)
    detector.threshold = document["table"]["threshold"]
    holdout = holdout_ood(views, tests, [s.label for s in samples], [s.group for s in samples])
    detector.ood = ood_record(views, detector.binary, holdout)
    metadata = {"trained_on": f"{args.data.name}: {len(samples)} images", "C": best, "selection": candidates,
                "augmentation": asdict(AugmentSettings.spectral()), "seed": args.seed,
                "created": datetime.date.today().isoformat()}
    detector.save(args.out, skill=document["skill"], metadata=metadata)
    card = model_card(args.out, document, best, candidates, len(samples), args.per_source)
    args.out.with_suffix(".md").write_text(with_ood_section(card, ood_section(detector.ood, holdout)), encoding="utf-8")
    print(json.dumps(document["skill"], indent=2))
    return 0


def cached_features(args: argparse.Namespace, samples: list) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Training views and test features of the shipped spec, from the cache that the held-out runs filled."""
    return dataset_features([s.path for s in samples], SpectralSpec(), AugmentSettings.spectral(), args.seed,
                            args.cache / f"spectral-features-seed{args.seed}.npz")


def add_ood(args: argparse.Namespace, samples: list) -> int:
    """Write the `ood` record into OUT.json and its section into OUT.md; the weights (.npz) are not rewritten."""
    config = args.out.with_suffix(".json")
    try:
        detector = SpectralDetector.from_pretrained(args.out)
    except (OSError, ValueError) as err:
        raise InputError(str(err)) from err
    if detector.spec != SpectralSpec():
        raise InputError(f"{config}: spec {detector.spec} is not the current recipe's; retrain instead")
    views, tests = cached_features(args, samples)
    holdout = holdout_ood(views, tests, [s.label for s in samples], [s.group for s in samples])
    record = ood_record(views, detector.binary, holdout)
    document = json.loads(config.read_text(encoding="utf-8"))
    document["ood"] = record
    config.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    card = args.out.with_suffix(".md")
    card.write_text(with_ood_section(card.read_text(encoding="utf-8"), ood_section(record, holdout)), encoding="utf-8")
    print(json.dumps(record, indent=2))
    return 0
