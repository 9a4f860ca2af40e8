"""What every benchmark stage shares: its settings, where the development face set is, and a per-call timer.

The face set lives beside the repository (../shared/data/faces); a stage that finds it absent falls back to seeded
noise and says so in its records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipeline as P
from core.images import list_images

REPO = Path(__file__).resolve().parents[1]
FACES = REPO.parent / "shared" / "data" / "faces"


@dataclass(frozen=True)
class BenchSettings:
    """What to measure: the device, the dtypes and batch sizes to sweep, timed repeats, and the pipeline's config."""

    device: str = "auto"
    dtypes: Sequence[str] = ("fp32", "bf16")
    batch_sizes: Sequence[int] = (1, 8)
    repeats: int = 2
    pipeline: P.PipelineConfig = field(default_factory=P.PipelineConfig)
    backend: str = "local"
    ray_actors: int = 2
    images: int = 40
    compile: bool = False


def face_images(cls: str) -> list[Path]:
    """Images of one class of the development face set beside the repository, [] when it is absent."""
    folder = FACES / cls
    return list_images(folder) if folder.is_dir() else []


def call_seconds(call: Callable[..., Any], repeats: int, *args: Any) -> tuple[list[float], Any]:
    """Wall seconds of each of `repeats` calls of `call(*args)`, and what the last call returned."""
    from core.timing import timed

    seconds, result = [], None
    for _ in range(repeats):
        with timed() as watch:
            result = call(*args)
        seconds.append(watch.seconds)
    return seconds, result
