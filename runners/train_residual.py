"""Train the shipped ResidualNet on every source of the face set, with the recipe that won source-grouped CV.

The cross-validation (runners.source_cv) measured a recipe — preset, augmentation, training steps — on sources
each fold's model never saw; this program trains that same recipe once on all sources, so the skill the CV
measured is the skill the artifact carries (same steps as the CV folds' mean, unless --steps says otherwise).
It writes OUT.safetensors + OUT.json (config, classes, the CV's threshold and skill record, training metadata)
and OUT.md, the model card with the CV's comparison and per-source tables, the training time and the machine.

    python scripts/train_residual.py ../shared/data/faces --cv runs/issue20/cv --recipe residual-analyst \
        --out artifacts/residual-npr --workdir runs/issue20/final
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from core.device import cpu_description
from core.atomic import write_text_atomic
from detector.residual_net import ResidualConfig
from detector.residual_training import AUGMENTATIONS, TrainSettings, train_residual
from runners.cv_candidates import cached_made_from_real, cached_windows, train_with_recipe
from runners.evaluate_sources import list_face_set


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class folders with provenance.csv")
    parser.add_argument("--cv", type=Path, required=True, help="the runners.source_cv output folder")
    parser.add_argument("--recipe", required=True, help="the CV result to ship, e.g. residual-analyst")
    parser.add_argument("--out", type=Path, required=True, help="artifact path without suffix")
    parser.add_argument("--workdir", type=Path, required=True, help="checkpoints (a re-run resumes from them)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the CV folds' mean)")
    parser.add_argument("--budget-min", type=float, default=60.0,
                        help="hard time limit of an augmentation recipe (a codec-blind one always runs its steps)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def cv_steps(folder: Path) -> int:
    """Mean number of steps the recipe's CV folds trained for (each fold's state.json)."""
    steps = [json.loads(path.read_text(encoding="utf-8"))["step"] for path in folder.glob("train-*/state.json")]
    if not steps:
        raise FileNotFoundError(f"{folder}: no train-*/state.json; run the CV for this recipe first")
    return int(round(np.mean(steps)))


def machine() -> str:
    """The CPU's model name, torch's threads and the instruction sets that set the speed (core.device's reading,
    the one every benchmark prints)."""
    model, flags = cpu_description()
    return f"{model}, {torch.get_num_threads()} torch thread(s), {', '.join(flags) or 'no AVX2'}"


def model_card(recipe: str, cv: Path, skill: dict, meta: dict) -> str:
    """The card: what the branch reads, how it was measured (comparison + per-source tables), training facts."""
    real_fake, attribution = skill["real_vs_fake"], skill["attribution"] or {}
    comparison = (cv / "comparison.md").read_text(encoding="utf-8") if (cv / "comparison.md").is_file() else ""
    per_source = (cv / recipe / "source_table.md").read_text(encoding="utf-8")
    folds = json.loads((cv / "folds.json").read_text(encoding="utf-8"))
    return "\n".join([
        "# residual-npr: up-sampling residual branch (NPR-style)", "",
        "A ~1.2 M-parameter CNN that reads the residual between each native-resolution crop and the nearest-"
        "neighbour up-sample of its ×2 nearest-neighbour down-sample (the neighbouring-pixel trace of a generator's "
        "up-sampling, Tan et al., CVPR 2024), never a resized image. Inference: centre + 4 corner crops of 64 px in "
        "the central 128-px window, probabilities averaged. Heads: P(fake), and P(real | progan | stylegan2 | "
        "stylegan3). Code: `detector/residual_net.py`, training `detector/residual_training.py`.", "",
        "## Measured skill (source-grouped 5-fold CV; every figure on sources the fold's model never saw)", "",
        f"- real vs fake: AUC {real_fake['auc']:.3f} as stored, {real_fake['auc_jpeg75']:.3f} after JPEG q75 "
        f"(mean over {skill['sources']} sources); real photos called fake at threshold {real_fake['threshold']:.3f}: "
        f"{real_fake['real_false_positive_rate']:.3f} as stored, {real_fake['real_false_positive_rate_jpeg75']:.3f} "
        "after JPEG q75.",
        f"- attribution among the known GANs: {attribution.get('accuracy', float('nan')):.3f} as stored, "
        f"{attribution.get('accuracy_jpeg75', float('nan')):.3f} after JPEG q75 (mean over "
        f"{attribution.get('gan_sources', 0)} GAN sources).",
        f"- voting bars (AUC ≥ 0.85 and real FPR ≤ 0.10 as stored and JPEG q75; attribution ≥ 0.70): "
        f"{'cleared' if meta['votes']['real_fake'] else 'NOT cleared'} for real/fake, "
        f"{'cleared' if meta['votes']['architecture'] else 'NOT cleared'} for the architecture.", "",
        f"Folds (seed {folds['seed']}): " + "; ".join(f"{name}: {', '.join(sources)}"
                                                     for name, sources in folds["folds"].items()), "",
        f"Reproduce: `python scripts/source_cv.py ../shared/data/faces --out CV {cv_flags(recipe)} --steps "
        f"{meta['steps']}` (and the other candidates, then `--report`); then `python scripts/train_residual.py "
        f"../shared/data/faces --cv CV --recipe {recipe} --out OUT --workdir WORK`.", "",
        "## Training", "",
        f"- all {meta['images']} images of the face set ({meta['sources']} sources), {meta['training']}, "
        f"{meta['steps']} steps of batch {meta['batch_size']}, {meta['training_minutes']:.1f} min on "
        f"{meta['machine']}.",
        f"- created {meta['created']}. The threshold and skill come from the CV of the same recipe; the shipped "
        "model is trained once more on all sources with the same number of steps.", "",
        comparison, per_source])


def cv_flags(recipe: str) -> str:
    """The runners.source_cv flags that produce a residual CV result name (residual-<augment> or
    residual-codecblind[-mfr])."""
    if recipe.startswith("residual-codecblind"):
        return "--candidate residual --recipe codec-blind" + (" --made-from-real" if recipe.endswith("-mfr") else "")
    return f"--candidate residual --augment {recipe.split('-', 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    document = json.loads((args.cv / args.recipe / "source_table.json").read_text(encoding="utf-8"))
    steps = args.steps or cv_steps(args.cv / args.recipe)
    samples = list_face_set(args.data)
    windows = cached_windows(samples, args.cv / "cache")
    started = time.monotonic()
    if args.recipe.startswith("residual-codecblind"):
        mfr = args.recipe.endswith("-mfr")
        twins = cached_made_from_real(samples, windows["clean"], args.cv / "cache") if mfr else {}
        model, state = train_with_recipe("residual", samples, windows["clean"], twins, np.arange(len(samples)),
                                         steps, args.seed, args.workdir)
        training = "codec-blind recipe (detector.codec_blind)" + (" + made-from-real fakes" if mfr else "")
    else:
        augment = args.recipe.split("-", 1)[1]
        settings = TrainSettings(steps=steps, time_budget_s=args.budget_min * 60.0, seed=args.seed,
                                 augment=AUGMENTATIONS[augment]())
        model, state = train_residual(windows["clean"], [s.label for s in samples], [s.group for s in samples],
                                      ResidualConfig.small(), settings, args.workdir)
        training = f"augmentation `{augment}`"
    minutes = state["elapsed_s"] / 60.0 if state["step"] else (time.monotonic() - started) / 60.0
    comparison = json.loads((args.cv / "comparison.json").read_text(encoding="utf-8")) \
        if (args.cv / "comparison.json").is_file() else {}
    votes = comparison.get(args.recipe, {})
    meta = {"recipe": args.recipe, "training": training, "steps": state["step"],
            "batch_size": TrainSettings().batch_size,
            "images": len(samples), "sources": len({s.group for s in samples}), "training_minutes": minutes,
            "machine": machine(), "python": platform.python_version(), "torch": torch.__version__,
            "created": datetime.date.today().isoformat(), "cv": str(args.cv),
            "votes": {"real_fake": bool(votes.get("votes_real_fake")),
                      "architecture": bool(votes.get("votes_architecture"))}}
    model.threshold = float(document["table"]["threshold"])
    model.skill = document["skill"]
    model.save(args.out, meta)
    write_text_atomic(Path(args.out).with_suffix(".md"), model_card(args.recipe, args.cv, document["skill"], meta))
    print(json.dumps(meta, indent=2))
    return 0
