"""Assemble GANTrace as a Hugging Face Space (Gradio SDK) and, only when asked, push it.

    python scripts/download_weights.py --name ganorigin-svm --trust-foreign-pickle   # once: convert, with consent
    python scripts/publish_space.py --attribution ganorigin-svm --stage-dir /tmp/space  # dry run, kept to inspect
    python scripts/publish_space.py --attribution ganorigin-svm --push --space-id USER/gantrace  # needs `hf auth login`

What goes up is an allow-list, never a copy of the working tree (see outputs/space_bundle.py): the code the app runs, a
runtime requirements.txt, the weight registry with the small local artifacts, and a README.md whose front matter
configures the Space; the large hub weights are preloaded by the Space builder, not uploaded.

--attribution names the attributor (which GAN) the Space runs by default, staged as a .skops file and pinned in the
staged registry: `ganorigin-svm` (GANOrigin's classifier, once converted on this machine), a .skops PATH, or
hf://OWNER/NAME[/FILE][@REVISION]. Pickles are never staged. Without it the Space has no attribution model, and the
dry run says so.

Exit status: 0 done (dry run or pushed); 1 the staged folder is unusable (a file that must never be uploaded, or
with --push, a registered artifact missing); 2 bad input (--push without --space-id USER/NAME, a non-empty
--stage-dir, an --attribution that is missing, not converted yet or not a .skops attributor).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from runners.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNUSABLE
from core.errors import InputError
from core.weights import HUB_URI_PREFIX, WeightUnavailableError, load_registry, parse_hub_uri, resolve
from outputs.space_bundle import SpaceCard, StagedAttributor, push, stage

NO_ATTRIBUTION = ("no --attribution: the Space will have NO attribution model (its latent branch stays off, so a "
                  "GAN-made face is 'generator unknown' unless another branch names it); add one with --attribution "
                  "ganorigin-svm (after: python scripts/download_weights.py --name ganorigin-svm "
                  "--trust-foreign-pickle), --attribution PATH.skops or --attribution hf://OWNER/NAME")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--push", action="store_true", help="upload (default: dry run)")
    parser.add_argument("--space-id", help="USER/NAME of the Space (required with --push)")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--stage-dir", type=Path, help="stage here and keep it (default: a temporary folder)")
    parser.add_argument("--attribution", metavar="ganorigin-svm|PATH.skops|hf://OWNER/NAME",
                        help="the attributor the Space runs by default (default: none, no attribution)")
    parser.add_argument("--attribution-licence", metavar="TEXT",
                        help="the attributor's licence for the card (default: the registry's, else 'not stated')")
    args = parser.parse_args(argv)
    if args.push and (not args.space_id or args.space_id.count("/") != 1):
        parser.error("--push needs --space-id USER/NAME")
    if args.stage_dir is not None and args.stage_dir.exists() and any(args.stage_dir.iterdir()):
        parser.error(f"{args.stage_dir} is not empty; give an empty or new folder")
    try:
        attributor = attributor_for_space(args.attribution, args.attribution_licence) if args.attribution else None
    except (RuntimeError, ValueError) as err:  # InputError, a missing weight, a foreign artifact, a bad address
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    card = SpaceCard()
    if args.stage_dir is not None:
        return _run(args, card, args.stage_dir, attributor)
    with tempfile.TemporaryDirectory(prefix="gantrace-space-") as temp:
        return _run(args, card, Path(temp), attributor)


def attributor_for_space(source: str, licence: str | None = None) -> StagedAttributor:
    """The .skops file an --attribution value names and what the Space's card and registry say about it.

    A registry name (`ganorigin-svm`) is taken from this machine only, never converted here; hf:// is fetched
    through huggingface_hub (.skops only); a path must be a .skops file. The file is then loaded through the safe
    loader, so a file holding an untrusted type is refused before it can be staged."""
    from attribution.latent_svm import HUB_FILENAME, LatentAttributor, resolve_attributor

    registry = load_registry()
    hub_repo = None
    if source in registry:
        spec = registry[source]
        try:
            path = resolve(source, download=False, registry=registry)
        except WeightUnavailableError:
            if spec.kind == "converted":
                raise InputError(f"--attribution {source}: not converted on this machine; convert it first (you "
                                 f"consent to unpickle its files once): {spec.fetch_command}") from None
            raise
        name, origin, known_licence, hub_repo = source, spec.source, spec.licence, spec.repo_id
    elif source.startswith(HUB_URI_PREFIX):
        hub_repo, filename, revision = parse_hub_uri(source, HUB_FILENAME)
        path = resolve_attributor(source)
        name = _slug(hub_repo.split("/")[1])
        origin = f"{source} (the Hugging Face Hub repo {hub_repo}, file {filename}, revision {revision or 'main'})"
        known_licence = f"not stated by the publisher (see the card of {hub_repo})"
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"--attribution {source}: no such file")
        name, origin = _slug(path.stem), f"the publisher's file {path.name} (trained outside this repository)"
        known_licence = "not stated by the publisher"
    if path.suffix != ".skops":
        raise InputError(f"--attribution {source}: {path.name} is not a .skops attributor; pickles are never staged "
                         "(they run code when loaded): retrain with scripts/train_svm.py --out NAME.skops")
    if source not in registry and name in registry:
        raise InputError(f"--attribution {source}: its name {name!r} is already a registered weight; rename the file")
    model = LatentAttributor.from_pretrained(path)
    return StagedAttributor(name=name, file=path, origin=origin, licence=licence or known_licence,
                            skill=skill_text(model.metadata), open_set=model.metadata["open_set"]["rule"],
                            description=model.origin, classes=tuple(str(c) for c in model.classes_),
                            hub_repo=hub_repo)


def skill_text(metadata: dict) -> str:
    """An artifact's measured attribution skill in words, from its metadata's skill record, or "not measured"."""
    skill = (metadata.get("skill") or {}).get("attribution") or {}
    protocol = f" ({skill['protocol']})" if skill.get("protocol") else ""
    if skill.get("accuracy") is None:
        return "not measured" + protocol
    balanced = skill.get("balanced_accuracy")
    figures = [f"accuracy {skill['accuracy']:.3f}"] + ([f"balanced accuracy {balanced:.3f}"] if balanced is not None
                                                       else []) + ([f"on {skill['n']} latents"] if "n" in skill else [])
    return ", ".join(figures) + protocol


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "attributor"


def _run(args: argparse.Namespace, card: SpaceCard, folder: Path, attributor: StagedAttributor | None) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        staged, missing = stage(folder, card, attributor=attributor)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    readme = (folder / "README.md").read_text(encoding="utf-8")
    print(readme[:readme.index("\n---\n", 4) + 5], end="")
    total = 0
    for relative in staged:
        size = (folder / relative).stat().st_size
        total += size
        print(f"{size:>12,}  {relative}")
    print(f"{len(staged)} files, {total / 1e6:.1f} MB")
    if attributor is None:
        print(f"warning: {NO_ATTRIBUTION}", file=sys.stderr)
    else:
        print(f"attribution: {attributor.name} ({attributor.staged_path}) from {attributor.origin}; licence "
              f"{attributor.licence}; skill {attributor.skill}")
    for item in missing:
        print(f"warning: registered artifact {item} is missing: the Space would run without it", file=sys.stderr)
    if not args.push:
        print("dry run: nothing uploaded (add --push --space-id USER/NAME to publish)", file=sys.stderr)
        return EXIT_OK
    if missing:
        print("error: refusing to push with registered artifacts missing", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"published: {push(folder, args.space_id, args.private)}")
    return EXIT_OK
