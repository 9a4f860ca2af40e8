"""Measure speed (and bf16-vs-fp32 agreement) of each GANTrace stage on this machine.

Prints one JSON object per measurement (at least stage, dtype, batch_size, images_per_s, peak_mem_mb) so runs can
be compared across commits and machines:

    python scripts/benchmark.py --stage detector
    python scripts/benchmark.py --stage encoder --batch-sizes 1 8 --dtypes fp32 bf16
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Iterator

import torch

from core.timing import emit, matmul_tflops, peak_memory_mb

STAGES: dict[str, Callable[[argparse.Namespace], Iterator[dict]]] = {}


def machine_record() -> dict:
    """The reference ceiling: this machine's own matmul rate in each dtype."""
    return {
        "stage": "machine",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_tflops_fp32": round(matmul_tflops(torch.float32), 3),
        "matmul_tflops_bf16": round(matmul_tflops(torch.bfloat16), 3),
        "peak_mem_mb": round(peak_memory_mb(), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, choices=sorted(STAGES) + ["machine"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions after one warm-up")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    emit(machine_record())
    if args.stage != "machine":
        for record in STAGES[args.stage](args):
            emit(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
