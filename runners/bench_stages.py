"""Speed (and bf16-vs-fp32 agreement) of each GANTrace stage on this machine, one JSON-able record per measurement.

The one registry of what `scripts/benchmark.py --stage` can name: it parses the command line, prints
`machine_record()` first (the machine's own matmul rate, the ceiling the stages are compared to) and then what
`STAGES[name](settings)` yields. Each stage family has its module: `bench_models` (detector, align, encoder,
fingerprint), `bench_pipeline`, `bench_latency`, `bench_int8` (int8, int8_layers), `bench_scan` and
`bench_provenance`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from core.device import cpu_description, cpu_supports_bf16
from core.timing import matmul_tflops, peak_memory_mb
from runners.bench_int8 import bench_int8, bench_int8_layers
from runners.bench_latency import bench_latency
from runners.bench_models import bench_align, bench_detector, bench_encoder, bench_fingerprint
from runners.bench_pipeline import bench_pipeline
from runners.bench_provenance import bench_provenance
from runners.bench_scan import bench_scan
from runners.bench_settings import BenchSettings

STAGES: dict[str, Callable[[BenchSettings], Iterator[dict]]] = {
    "detector": bench_detector, "align": bench_align, "encoder": bench_encoder, "fingerprint": bench_fingerprint,
    "pipeline": bench_pipeline, "latency": bench_latency, "int8": bench_int8, "int8_layers": bench_int8_layers,
    "scan": bench_scan, "provenance": bench_provenance,
}


def machine_record() -> dict:
    """The reference ceiling: this machine's own matmul rate in each dtype."""
    model, flags = cpu_description()
    return {
        "stage": "machine",
        "cpu": model,
        "cpu_flags": list(flags),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_tflops_fp32": round(matmul_tflops(torch.float32), 3),
        # Emulated bf16 (a CPU without AMX / AVX512-BF16) takes minutes for this matmul and measures nothing useful.
        "matmul_tflops_bf16": round(matmul_tflops(torch.bfloat16), 3) if cpu_supports_bf16() else None,
        "peak_mem_mb": round(peak_memory_mb(), 1),
    }
