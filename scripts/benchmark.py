"""Measure speed (and bf16-vs-fp32 agreement) of each GANTrace stage on this machine.

Prints one JSON object per measurement (at least stage, dtype, batch_size, images_per_s, peak_mem_mb) so runs can
be compared across commits and machines; the first is the machine's own matmul rate, the ceiling the stages are
compared to (see runners/bench_stages.py for the stages and where each is measured):

    python scripts/benchmark.py --stage detector
    python scripts/benchmark.py --stage encoder --batch-size 1 8 --dtype fp32 bf16 --device cpu
    python scripts/benchmark.py --stage scan --backend ray --dtype bf16 --batch-size 8   # vs --backend local
    python scripts/benchmark.py --stage pipeline --batch-size 8 --dtype fp32   # images/s beside the core-time bound
    python scripts/benchmark.py --stage latency --dtype fp32 int8             # one face at batch 1: p50/p95
    python scripts/benchmark.py --stage int8 --images 32                      # what int8 changes against fp32
    python scripts/benchmark.py --stage int8_layers --batch-size 8            # e4e's convs, fp32 vs int8, by shape
    python scripts/benchmark.py --stage provenance --images 40               # ms per file, plain and C2PA-signed

Exit status: 0 done; 2 bad input (an unknown stage, dtype or device).
"""

from __future__ import annotations

import argparse
import sys

from runners.bench_settings import BenchSettings
from runners.bench_stages import STAGES, machine_record
from runners.cli import EXIT_OK, add_pipeline_arguments, config_from_args, positive_int, run
from core.timing import emit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", required=True, choices=sorted(STAGES) + ["machine"])
    parser.add_argument("--repeats", type=positive_int, default=2, help="timed repetitions after one warm-up")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="scan stage: run in this process or on a local Ray (Ray Data actors)")
    parser.add_argument("--ray-actors", type=positive_int, default=2, help="scan stage on Ray: actors, one CPU each")
    parser.add_argument("--images", type=positive_int, default=40,
                        help="scan stage: how many files; int8 stage: how many faces, over 4 classes (default 40)")
    parser.add_argument("--compile", action="store_true",
                        help="latency stage: also time torch.compile with freezing (minutes of compilation)")
    add_pipeline_arguments(parser, sweep=True)
    args = parser.parse_args(argv)
    return run(lambda: _benchmark(args), (ValueError,))


def _benchmark(args: argparse.Namespace) -> int:
    settings = BenchSettings(device=args.device, dtypes=args.dtype, batch_sizes=args.batch_size, repeats=args.repeats,
                             pipeline=config_from_args(args, dtype="auto", batch_size=1), backend=args.backend,
                             ray_actors=args.ray_actors, images=args.images, compile=args.compile)
    emit(machine_record())
    if args.stage != "machine":
        for record in STAGES[args.stage](settings):
            emit(record)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
