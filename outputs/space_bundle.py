"""A Hugging Face Space (Gradio SDK) of GANTrace: what is staged, its README front matter, and the push.

runners/publish_space.py (scripts/publish_space.py) parses the command line, resolves the attributor and calls
these. What goes up is an allow-list, never a copy of the working tree: app.py, the runners' command-line
conventions it imports (not the batch runners), the stages', the pipeline's and the outputs' .py files (and the
report's stylesheet), a runtime requirements.txt, artifacts/weights.json with the small artifacts registered as
`local` (e.g. fingerprintnet-small.safetensors + .json + model card) and a README.md whose front matter configures
the Space. Datasets, images, pickled weights (even registered ones), caches, tokens, .git, tests, runs and reports
are never staged, nor the test tools (whatever requirements-test.txt lists), and a staged file over MAX_FILE_MB is
refused. The large hub weights (CLIP, e4e) are not uploaded: `preload_from_hub` makes the Space builder fetch them
into its Hub cache, where the weight registry finds them; the app fetches any other missing registered weight
(the 4 KB UFD probe) at start, as it does everywhere.

The attributor (which GAN) is staged only when the publisher names one (`StagedAttributor`): its .skops file goes
to artifacts/NAME.skops, and the staged registry gets a `local` entry for it (sha256, size, origin, licence) and
names it in `defaults.attributor`, the registry name the latent branch resolves when no --attribution is given.
So the Space's app.py runs it without flags, verifies its sha256 on load like every registered weight and names
it in each verdict's `models`; the repository's own registry is untouched.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio
import yaml
from huggingface_hub import SpaceCardData

from core.atomic import write_text_atomic
from core.weights import REPO_ROOT, load_registry, sha256_file

PACKAGES = ("core", "detector", "encoder", "attribution", "provenance", "pipeline", "outputs")
# Public data the code reads besides registered weights: the C2PA trust list (certificates only, no key) and its
# record; staged like a registered artifact so its .pem suffix is allowed.
PUBLIC_DATA = (Path("artifacts") / "c2pa-trust-list.pem", Path("artifacts") / "c2pa-trust-list.md")
TOP_FILES = ("app.py", "runners/__init__.py", "runners/cli.py")
SOURCE_SUFFIXES = (".py", ".css")
RUNTIME_EXCLUDED = ("gradio", "gradio-client")  # the Space's SDK provides them (sdk_version)
TEST_REQUIREMENTS = "requirements-test.txt"
REGISTRY = Path("artifacts") / "weights.json"
FORBIDDEN_PARTS = {".git", "tests", "runs", "reports", "data", "__pycache__", ".gradio", ".cache", "node_modules"}
FORBIDDEN_NAMES = {".env", ".netrc", "token", "credentials", "credentials.json", "id_rsa"}
PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".ckpt", ".bin"}  # loading one runs its code
FORBIDDEN_SUFFIXES = PICKLE_SUFFIXES | {".pem", ".key", ".npz", ".npy", ".csv", ".jsonl", ".parquet", ".zip", ".tar",
                                        ".gz", ".jpg", ".jpeg", ".png", ".webp"}
MAX_FILE_MB = 50
# The attributor is named by the publisher, not swept up: it may be larger (GANOrigin's converted SVC keeps its
# support vectors, 9,216 floats each), and the Hub stores it through its large-file storage.
MAX_ATTRIBUTOR_MB = 500
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


@dataclass(frozen=True)
class StagedAttributor:
    """The latent attributor a Space runs by default: its .skops file and what the card and registry say of it."""

    name: str                  # its registry name in the Space, the key of its sha256 in every verdict's `models`
    file: Path                 # the .skops file to stage (never a pickle)
    origin: str                # where it came from: a registry weight's source, an hf:// address, a local file
    licence: str
    skill: str                 # its measured skill in words, or "not measured"
    open_set: str              # its open-set rule ("none (closed set ...)" for GANOrigin's)
    description: str           # what the model is, from its own metadata
    classes: tuple[str, ...]
    hub_repo: str | None = None  # a Hub model repo it comes from, listed in the card's `models`

    @property
    def staged_path(self) -> Path:
        return Path("artifacts") / f"{self.name}.skops"


def runtime_requirements(repo: Path = REPO_ROOT) -> str:
    """requirements.txt minus what the Space provides (Gradio, from sdk_version) and anything requirements-test.txt
    lists (test tools must never reach the Space build, even if a line is added to the wrong file)."""
    test_only = {name for _, name in _requirement_lines(repo / TEST_REQUIREMENTS)}
    kept = [line for line, base in _requirement_lines(repo / "requirements.txt")
            if base not in RUNTIME_EXCLUDED and base not in test_only]
    return "\n".join(kept) + "\n"


def _requirement_lines(path: Path) -> list[tuple[str, str]]:
    """(requirement, lower-case package name) of each requirement line; comments and pip options (-r) skipped."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement and not requirement.startswith("-"):
            name = re.split(r"[<>=!~\[;@ ]", requirement, maxsplit=1)[0]
            found.append((requirement, name.lower().replace("_", "-")))
    return found


def source_files(repo: Path = REPO_ROOT) -> list[Path]:
    """Repository-relative paths of the code the Space runs."""
    files = [Path(name) for name in TOP_FILES]
    for package in PACKAGES:
        files += sorted(p.relative_to(repo) for p in (repo / package).rglob("*")
                        if p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts)
    return files


def artifact_files(repo: Path = REPO_ROOT) -> tuple[list[Path], list[str]]:
    """Every file sharing the stem of a registered `local` artifact; and what is missing."""
    files = []
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


def staged_registry(repo: Path = REPO_ROOT, attributor: StagedAttributor | None = None) -> dict:
    """The repository's weight registry, plus (given an attributor) its `local` entry, pinned by sha256, named as
    the default attributor; an entry of the same name (GANOrigin's `converted` one) is replaced by it."""
    document = json.loads((repo / REGISTRY).read_text(encoding="utf-8"))
    if attributor is None:
        return document
    entry = {"name": attributor.name, "kind": "local",
             "description": f"The latent attributor this Space runs by default (staged by scripts/publish_space.py): "
                            f"{attributor.description}; measured skill: {attributor.skill}; open set: "
                            f"{attributor.open_set}",
             "licence": attributor.licence, "used_by": "attribution.latent_svm (defaults.attributor)",
             "path": attributor.staged_path.as_posix(), "sha256": sha256_file(attributor.file),
             "size": attributor.file.stat().st_size, "origin": attributor.origin}
    weights = [spec for spec in document["weights"] if spec["name"] != attributor.name] + [entry]
    defaults = {**document.get("defaults", {}), "attributor": attributor.name}
    return {**document, "defaults": defaults, "weights": weights}


def front_matter(card: SpaceCard, repo: Path = REPO_ROOT, attributor: StagedAttributor | None = None) -> str:
    """The README header that configures the Space (SDK and version, entry point, models and their preload): the
    fields of huggingface_hub's own SpaceCardData, dumped as YAML without line folding."""
    hub = [spec for spec in load_registry(repo / REGISTRY).values() if spec.kind == "hub"]
    models = [spec.repo_id for spec in hub] + ([attributor.hub_repo] if attributor and attributor.hub_repo else [])
    data = SpaceCardData(
        title=card.title, emoji=card.emoji, colorFrom=card.color_from, colorTo=card.color_to, sdk="gradio",
        sdk_version=gradio.__version__, app_file="app.py", python_version=PYTHON_VERSION,
        short_description=card.short_description, license=card.license, models=list(dict.fromkeys(models)),
        preload_from_hub=[f"{spec.repo_id} {spec.filename}" + (f" {spec.revision}" if spec.revision else "")
                          for spec in hub])
    return "---\n" + yaml.safe_dump(data.to_dict(), sort_keys=False, allow_unicode=True, width=1 << 16) + "---\n"


def readme(card: SpaceCard, repo: Path = REPO_ROOT, attributor: StagedAttributor | None = None) -> str:
    """Front matter plus a short page: what the Space answers, its attribution model, where its weights come from,
    what it cannot do. `repo` holds the registry to describe (the staged folder's, once staged)."""
    registry = load_registry(repo / REGISTRY)
    weights = "\n".join(f"| {s.name} | {s.licence} | {s.source} |" for s in registry.values())
    return front_matter(card, repo, attributor) + f"""
# {card.title}

Upload a face image: GANTrace says whether it is a real photo or made by a GAN, and if made, by which
architecture (ProGAN, StyleGAN2, StyleGAN3 or an unknown generator), with the evidence of each branch (CLIP probe,
the spectral baseline, e4e latent attribution, the file's Content Credentials and metadata) and the image's
residual spectrum. The uploaded bytes are analysed as they
are and deleted from the server cache within an hour. `Use via API` gives the Verdict JSON (`/analyze`).

It is evidence for an analyst, not proof: read the warnings in each verdict, and expect lower accuracy on
re-compressed, resized or non-face images and on generators it was not trained on.

{attribution_section(registry, attributor)}

| weight | licence | source |
|---|---|---|
{weights}
"""


def attribution_section(registry: dict, attributor: StagedAttributor | None) -> str:
    """The card's paragraph on the attribution model: which, from where, licence, measured skill, closed set."""
    if attributor is None:
        return ("## Attribution model\n\nNone: this Space was published without one, so its latent branch is off "
                "and a GAN-made face gets \"generator unknown\" unless a detector with measured attribution skill "
                "names it. The publisher adds one with `scripts/publish_space.py --attribution "
                "ganorigin-svm|PATH.skops|hf://OWNER/NAME`.")
    spec = registry[attributor.name]
    return f"""## Attribution model

The latent branch runs **`{attributor.name}`** (`{spec.path}`, sha256 `{spec.sha256}`): {attributor.description}.

- where it came from: {attributor.origin}
- licence: {attributor.licence}
- measured skill: {attributor.skill}
- closed set: it knows only {", ".join(f"`{name}`" for name in attributor.classes)} and gives every face one of
  them, whatever made it, except where its open-set rule answers `unknown`: {attributor.open_set}"""


def stage(target: Path, card: SpaceCard, repo: Path = REPO_ROOT, attributor: StagedAttributor | None = None
          ) -> tuple[list[Path], list[str]]:
    """Copy the allow-listed files (and the attributor) into `target`, write the staged registry, README.md and
    requirements.txt; return the staged files sorted, and the registered artifacts that are missing."""
    artifacts, missing = artifact_files(repo)
    artifacts += [relative for relative in PUBLIC_DATA if (repo / relative).is_file()]
    copies = [(relative, repo / relative, relative in artifacts, MAX_FILE_MB)
              for relative in source_files(repo) + artifacts]
    if attributor is not None:
        copies.append((attributor.staged_path, Path(attributor.file), True, MAX_ATTRIBUTOR_MB))
    for relative, source, registered, limit_mb in copies:
        check_allowed(relative, source, registered=registered, limit_mb=limit_mb)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    (target / REGISTRY).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target / REGISTRY, json.dumps(staged_registry(repo, attributor), indent=2) + "\n")
    write_text_atomic(target / "README.md", readme(card, target, attributor))
    write_text_atomic(target / "requirements.txt", runtime_requirements(repo))
    staged = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    return staged, missing


def check_allowed(relative: Path, source: Path, registered: bool = False, limit_mb: float | None = None) -> None:
    """Refuse anything that must never reach a public Space, whatever a future edit of the allow-list says.

    A `registered` file (one of a `local` weight's files in artifacts/weights.json) may have a weight suffix such
    as .npz, never a pickle's; the folder, name and size rules still apply to it."""
    name = relative.name.lower()
    suffix = relative.suffix.lower()
    forbidden_suffix = suffix in PICKLE_SUFFIXES or (suffix in FORBIDDEN_SUFFIXES and not registered)
    if FORBIDDEN_PARTS & set(relative.parts) or name in FORBIDDEN_NAMES or forbidden_suffix:
        raise ValueError(f"{relative} must never be uploaded to a Space (data, weights, caches or secrets)")
    size_mb = source.stat().st_size / 1e6
    limit_mb = MAX_FILE_MB if limit_mb is None else limit_mb
    if size_mb > limit_mb:
        raise ValueError(f"{relative} is {size_mb:.0f} MB, over the {limit_mb:g} MB limit for staged files; "
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
