"""Measurement helpers shared by the benchmark script and the pipeline's per-stage timings."""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class Stopwatch:
    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Stopwatch]:
    """Time a block with a monotonic clock: `with timed() as t: ...` then `t.seconds`."""
    watch = Stopwatch()
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - start


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def emit(record: dict) -> None:
    """Print one measurement as a JSON line so runs can be compared across machines and commits."""
    print(json.dumps(record, sort_keys=False), flush=True)


def matmul_tflops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """The machine's own dense matmul rate, the ceiling that stage timings are compared to."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)
    with timed() as watch:
        for _ in range(repeats):
            torch.matmul(a, b)
    return 2 * size**3 * repeats / watch.seconds / 1e12
