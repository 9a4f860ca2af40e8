"""Share a trained attributor through the Hugging Face Hub: one .skops file plus a model card, staged in a folder.

Why a staged folder: what is uploaded is exactly what a dry run shows (`stage_attributor` writes it, a reviewer
reads it, `push_staged` uploads it unchanged). Only .skops attributors are shared, because whoever downloads one
loads it with `--attribution hf://OWNER/NAME` and must not run code in doing so. The card is written from the
artifact's own metadata, so its figures are those of the file beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from attribution.latent_svm import HUB_FILENAME, LatentAttributor

CARD_NAME = "README.md"


def stage_attributor(artifact: Path, folder: Path, repo_id: str, licence: str = "other") -> list[Path]:
    """Copy a .skops attributor into `folder` as the Hub expects it and write its model card; return the files."""
    artifact = Path(artifact)
    if artifact.suffix != ".skops":
        raise ValueError(f"{artifact}: only .skops attributors can be shared (a .joblib pickle would run code on "
                         "whoever loads it); retrain with --out NAME.skops")
    model = LatentAttributor.from_pretrained(artifact)
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(artifact, folder / HUB_FILENAME)
    (folder / CARD_NAME).write_text(model_card(model.metadata, repo_id, licence), encoding="utf-8")
    return sorted(folder.iterdir())


def push_staged(folder: Path, repo_id: str, private: bool = False) -> str:
    """Create the model repo if needed and upload the staged folder as one commit; return the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                               commit_message="GANTrace latent attributor (.skops) and model card")
    return str(commit.commit_url)


def model_card(metadata: dict[str, Any], repo_id: str, licence: str) -> str:
    """The model card: classes, training data and counts, validation figures, latent convention, licence."""
    classes = metadata["classes"]
    spec = metadata.get("feature_spec", {})
    data = metadata.get("data", {})
    validation = metadata.get("validation", {})
    lines = [
        "---", f"license: {licence}", "library_name: sklearn",
        "tags: [gantrace, gan-attribution, image-forensics, skops]", "---", "",
        f"# GANTrace latent attributor `{repo_id}`", "",
        "Says which GAN made a face from its e4e W+ latent: a calibrated linear SVM (StandardScaler → "
        "CalibratedClassifierCV(LinearSVC)) trained by GANTrace's `scripts/train_svm.py`.", "",
        f"Use it with `python app.py --attribution hf://{repo_id}` (or scan.py / evaluate.py). The file is a "
        "`skops.io` artifact: GANTrace loads it with an explicit list of trusted types and it runs no code.", "",
        "## Classes", "", ", ".join(f"`{name}`" for name in classes)
        + " — and `unknown` by the open-set rule below.", "",
        "## Training data", "",
    ]
    inputs = data.get("inputs")
    if inputs:
        lines += [f"Inputs: {inputs.get('count')} images ({inputs.get('kind')}), list sha256 `{inputs.get('sha256')}`.",
                  ""]
    lines += [f"{data.get('rows')} latents from {data.get('groups')} source images (augmented copies of one image "
              "share a group and never straddle the split).", "",
              "| class | train latents | train images | validation latents | validation images |",
              "|---|---|---|---|---|"]
    for name, counts in data.get("per_class", {}).items():
        lines.append(f"| {name} | {counts['train_rows']} | {counts['train_groups']} | {counts['validation_rows']} | "
                     f"{counts['validation_groups']} |")
    lines += ["", "## Validation (held-out source images)", ""]
    for key in ("n", "accuracy", "balanced_accuracy", "ece", "brier", "log_loss"):
        if key in validation:
            value = validation[key]
            lines.append(f"- {key}: {value:.4f}" if isinstance(value, float) else f"- {key}: {value}")
    skill = metadata.get("skill", {}).get("attribution", {})
    if skill.get("protocol"):
        lines.append(f"- protocol: {skill['protocol']}")
    lines += ["", "## Latent convention", "",
              f"- shape: {spec.get('latent_shape')} ({spec.get('flatten', 'row-major')}), stored as "
              f"{spec.get('latent_dtype')}",
              f"- latent_avg added: {spec.get('latent_avg_added')} (encode faces the same way, or the features "
              "shift and the answers are wrong)",
              f"- encoder: {spec.get('encoder')}, weights sha256 `{spec.get('encoder_weights_sha256')}`",
              "", "## Open set", "", metadata.get("open_set", {}).get("rule", "none"), "",
              "## Licence", "",
              f"`{licence}`. The training images keep their own terms (FFHQ, CelebA-HQ and most generator "
              "outputs are for non-commercial research); check them before any other use.", ""]
    if metadata.get("warning"):
        lines += ["## Warning", "", metadata["warning"], ""]
    return "\n".join(lines)
