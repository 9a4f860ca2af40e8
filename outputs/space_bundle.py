"""A Hugging Face Space (Gradio SDK) of GANTrace: what is staged, its README front matter, and the push.

scripts/publish_space.py parses the command line and calls these. What goes up is an allow-list, never a copy of
the working tree: app.py, the runners' command-line conventions it imports (not the batch runners), the stages',
the pipeline's and the outputs' .py files (and the report's stylesheet), a runtime
requirements.txt, artifacts/weights.json with the small artifacts registered as `local` (e.g.
fingerprintnet-small.safetensors + .json + model card) and a README.md whose front matter configures the Space.
Datasets, images, pickled weights, caches, tokens, .git, tests, runs and reports are never staged, and a staged
file over MAX_FILE_MB is refused. The large hub weights (CLIP, e4e) are not uploaded: `preload_from_hub` makes
the Space builder fetch them into its Hub cache, where the weight registry finds them; the app fetches any other
missing registered weight (the 4 KB UFD probe) at start, as it does everywhere.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio

from core.atomic import write_text_atomic
from core.weights import REPO_ROOT, load_registry

PACKAGES = ("core", "detector", "encoder", "attribution", "pipeline", "outputs")
TOP_FILES = ("app.py", "runners/__init__.py", "runners/cli.py")
SOURCE_SUFFIXES = (".py", ".css")
RUNTIME_EXCLUDED = ("gradio", "gradio-client", "pytest")
FORBIDDEN_PARTS = {".git", "tests", "runs", "reports", "data", "__pycache__", ".gradio", ".cache", "node_modules"}
FORBIDDEN_NAMES = {".env", ".netrc", "token", "credentials", "credentials.json", "id_rsa"}
FORBIDDEN_SUFFIXES = {".pem", ".key", ".pt", ".pth", ".ckpt", ".pkl", ".npz", ".npy", ".csv", ".jsonl", ".parquet",
                      ".zip", ".tar", ".gz", ".jpg", ".jpeg", ".png", ".webp"}
MAX_FILE_MB = 50
PYTHON_VERSION = "3.11"


@dataclass(frozen=True)
class SpaceCard:
    """The Space's identity; front matter keys follow the Hub's Spaces configuration reference."""

    title: str = "GANTrace"
    emoji: str = "🔎"
    color_from: str = "indigo"
    color_to: str = "gray"
    short_description: str = "Real face or GAN? Which GAN? With the evidence."
    license: str = "mit"


def runtime_requirements(repo: Path = REPO_ROOT) -> str:
    """The repo's requirements minus what the Space provides (Gradio, from sdk_version) or only tests need."""
    kept = []
    for line in (repo / "requirements.txt").read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        package = name.split(";")[0].replace(" ", "")
        base = next((package[:i] for i, ch in enumerate(package) if ch in "<>=!~["), package).lower()
        if name and base not in RUNTIME_EXCLUDED:
            kept.append(name)
    return "\n".join(kept) + "\n"


def source_files(repo: Path = REPO_ROOT) -> list[Path]:
    """Repository-relative paths of the code the Space runs."""
    files = [Path(name) for name in TOP_FILES]
    for package in PACKAGES:
        files += sorted(p.relative_to(repo) for p in (repo / package).rglob("*")
                        if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts)
    return files


def artifact_files(repo: Path = REPO_ROOT) -> tuple[list[Path], list[str]]:
    """weights.json plus every file sharing the stem of a registered `local` artifact; and what is missing."""
    files = [Path("artifacts/weights.json")]
    missing = []
    for spec in load_registry(repo / "artifacts" / "weights.json").values():
        if spec.kind != "local" or not spec.path:
            continue
        main = repo / spec.path
        if not main.is_file():
            missing.append(f"{spec.name} ({spec.path})")
            continue
        files += sorted(p.relative_to(repo) for p in main.parent.glob(f"{main.stem}.*") if p.is_file())
    return files, missing


def front_matter(card: SpaceCard, repo: Path = REPO_ROOT) -> str:
    """The README header that configures the Space: SDK and version, entry point, models and their preload."""
    hub = [spec for spec in load_registry(repo / "artifacts" / "weights.json").values() if spec.kind == "hub"]
    lines = ["---", f"title: {card.title}", f"emoji: {card.emoji}", f"colorFrom: {card.color_from}",
             f"colorTo: {card.color_to}", "sdk: gradio", f"sdk_version: {gradio.__version__}", "app_file: app.py",
             f'python_version: "{PYTHON_VERSION}"', f"short_description: {card.short_description}",
             f"license: {card.license}", "models:"]
    lines += [f"  - {repo_id}" for repo_id in dict.fromkeys(spec.repo_id for spec in hub)]
    lines.append("preload_from_hub:")
    lines += [f"  - {spec.repo_id} {spec.filename}" + (f" {spec.revision}" if spec.revision else "") for spec in hub]
    lines.append("---")
    return "\n".join(lines) + "\n"


def readme(card: SpaceCard, repo: Path = REPO_ROOT) -> str:
    """Front matter plus a short page: what the Space answers, where its weights come from, what it cannot do."""
    registry = load_registry(repo / "artifacts" / "weights.json")
    weights = "\n".join(f"| {s.name} | {s.licence} | {s.source} |" for s in registry.values())
    return front_matter(card, repo) + f"""
# {card.title}

Upload a face image: GANTrace says whether it is a real photo or made by a GAN, and if made, by which
architecture (ProGAN, StyleGAN2, StyleGAN3 or an unknown generator), with the evidence of each branch (CLIP probe,
FingerprintNet with its spectrum and Grad-CAM, e4e latent attribution). The uploaded bytes are analysed as they
are and deleted from the server cache within an hour. `Use via API` gives the Verdict JSON (`/analyze`).

It is evidence for an analyst, not proof: read the warnings in each verdict, and expect lower accuracy on
re-compressed, resized or non-face images and on generators it was not trained on.

| weight | licence | source |
|---|---|---|
{weights}
"""


def stage(target: Path, card: SpaceCard, repo: Path = REPO_ROOT) -> tuple[list[Path], list[str]]:
    """Copy the allow-listed files into `target` and write README.md and requirements.txt; return them sorted."""
    artifacts, missing = artifact_files(repo)
    copied = source_files(repo) + artifacts
    for relative in copied:
        check_allowed(relative, repo / relative, registered=relative in artifacts)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / relative, destination)
    write_text_atomic(target / "README.md", readme(card, repo))
    write_text_atomic(target / "requirements.txt", runtime_requirements(repo))
    staged = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    return staged, missing


def check_allowed(relative: Path, source: Path, registered: bool = False) -> None:
    """Refuse anything that must never reach a public Space, whatever a future edit of the allow-list says.

    A `registered` file (one of a `local` weight's files in artifacts/weights.json) may have a weight suffix such
    as .npz; the folder, name and size rules still apply to it."""
    name = relative.name.lower()
    forbidden_suffix = relative.suffix.lower() in FORBIDDEN_SUFFIXES and not registered
    if FORBIDDEN_PARTS & set(relative.parts) or name in FORBIDDEN_NAMES or forbidden_suffix:
        raise ValueError(f"{relative} must never be uploaded to a Space (data, weights, caches or secrets)")
    size_mb = source.stat().st_size / 1e6
    if size_mb > MAX_FILE_MB:
        raise ValueError(f"{relative} is {size_mb:.0f} MB, over the {MAX_FILE_MB} MB limit for staged files; "
                         "large weights belong on the Hub and in preload_from_hub")


def push(folder: Path, space_id: str, private: bool) -> str:
    """Create the Space if needed and upload the staged folder as one commit; return the URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo = api.create_repo(space_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private)
    api.upload_folder(repo_id=space_id, repo_type="space", folder_path=str(folder),
                      commit_message="Publish GANTrace from scripts/publish_space.py",
                      ignore_patterns=["**/__pycache__/**", "*.pyc", ".git/**"])
    return str(getattr(repo, "url", f"https://huggingface.co/spaces/{space_id}"))
