"""How tests run the programs as a user does: in their own process, from the shell's point of view."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SCAN = SCRIPTS / "scan.py"
EXTRACT_LATENTS = SCRIPTS / "extract_latents.py"
FAST = ["--encoder", "tiny-random", "--copies", "2", "--shard-size", "2", "--workers", "1",
        "--device", "cpu", "--dtype", "fp32", "--threads", "1", "--no-progress"]


def extract(*args) -> subprocess.CompletedProcess:
    """scripts/extract_latents.py in its own process, as from a shell: its exit status and its messages."""
    return subprocess.run([sys.executable, str(EXTRACT_LATENTS), *(str(a) for a in args)], capture_output=True,
                          text=True, timeout=600)


def shard_bytes(folder: Path) -> dict[str, bytes]:
    """Every latent shard's bytes by name, to compare two extractions byte for byte."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.npz"))}


def rows(path: Path) -> list[dict]:
    """A scan CSV's rows as dicts."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
