"""Assemble GANTrace as a Hugging Face Space (Gradio SDK) and, only when asked, push it.

    python scripts/publish_space.py                                  # dry run: list the files and the front matter
    python scripts/publish_space.py --stage-dir /tmp/space           # also keep the staged folder to inspect
    python scripts/publish_space.py --push --space-id USER/gantrace  # create/update the Space (needs `hf auth login`)

What goes up is an allow-list, never a copy of the working tree (see outputs/space_bundle.py): the code the app runs, a
runtime requirements.txt, the weight registry with the small local artifacts, and a README.md whose front matter
configures the Space; the large hub weights are preloaded by the Space builder, not uploaded.

Exit status: 0 done (dry run or pushed); 1 the staged folder is unusable (a file that must never be uploaded, or
with --push, a registered artifact missing); 2 bad input (--push without --space-id USER/NAME, a non-empty
--stage-dir).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from runners.cli import EXIT_OK, EXIT_UNUSABLE
from outputs.space_bundle import SpaceCard, front_matter, push, stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--push", action="store_true", help="upload (default: dry run)")
    parser.add_argument("--space-id", help="USER/NAME of the Space (required with --push)")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--stage-dir", type=Path, help="stage here and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.push and (not args.space_id or args.space_id.count("/") != 1):
        parser.error("--push needs --space-id USER/NAME")
    card = SpaceCard()
    if args.stage_dir is not None:
        if args.stage_dir.exists() and any(args.stage_dir.iterdir()):
            parser.error(f"{args.stage_dir} is not empty; give an empty or new folder")
        return _run(args, card, args.stage_dir)
    with tempfile.TemporaryDirectory(prefix="gantrace-space-") as temp:
        return _run(args, card, Path(temp))


def _run(args: argparse.Namespace, card: SpaceCard, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        staged, missing = stage(folder, card)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(front_matter(card), end="")
    total = 0
    for relative in staged:
        size = (folder / relative).stat().st_size
        total += size
        print(f"{size:>12,}  {relative}")
    print(f"{len(staged)} files, {total / 1e6:.1f} MB")
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


if __name__ == "__main__":
    sys.exit(main())
