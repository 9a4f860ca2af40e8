"""Command-line conventions shared by every GANTrace program, so a flag means the same thing in each.

- `--device auto` (GPU when there is one) and `--threads` (default: every core this process may use) wherever
  models run; `--no-progress` on every long program.
- "No limit" is spelled by leaving a flag out: its default is None, never 0.
- Exit status: 0 done; 1 the run finished but its result is unusable (said why on stderr); 2 bad input (one
  line on stderr naming the file or flag); 3 stopped before the end as asked (re-run to resume); 130 interrupted.
- The pipeline flags (--dtype, --batch-size, --lanes, --attribution, --fingerprint, --c2pa-trust,
  --gate-attribution, --offline, --skip-branch, --branch) are added by `add_pipeline_arguments` and turned into a
  `pipeline.PipelineConfig` by `config_from_args`, the one place that maps them, for scan.py, evaluate.py,
  benchmark.py and app.py.
- Missing registered weights are fetched on first use (with a progress bar and a bounded time-out); `--offline`
  or HF_HUB_OFFLINE=1 never touches the network, and a branch whose weights cannot be had is off with the reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from pipeline import PipelineConfig

EXIT_OK, EXIT_UNUSABLE, EXIT_BAD_INPUT, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def machine_threads() -> int:
    """The cores this process may run on (the affinity mask, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (so a bad value is a usage error, exit 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_runtime_arguments(parser: argparse.ArgumentParser, device: bool = True) -> None:
    """--device (when models run), --threads and --no-progress."""
    if device:
        parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda or mps")
    parser.add_argument("--threads", type=positive_int, default=machine_threads(),
                        help="CPU threads for the models (default: this machine's cores, %(default)s here)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs and CI)")


def apply_runtime(args: argparse.Namespace) -> None:
    """Use the chosen number of CPU threads in torch (the one setting that must be made before models run)."""
    import torch

    torch.set_num_threads(args.threads)


def add_pipeline_arguments(parser: argparse.ArgumentParser, sweep: bool = False) -> None:
    """The flags that choose how the pipeline runs, plus the runtime flags.

    With `sweep` (benchmarks), --dtype and --batch-size take several values and the program runs each. The branch
    names --skip-branch and --branch accept are read off the registered branches (`pipeline.branches.BRANCHES`).
    """
    from pipeline.branches import BRANCHES  # here: programs that only train import this module without the pipeline

    add_runtime_arguments(parser)
    if sweep:
        parser.add_argument("--dtype", "--dtypes", nargs="+", default=["fp32", "bf16"],
                            choices=["fp32", "bf16", "fp16", "int8"],
                            help="weight dtypes to measure (default fp32 bf16)")
        parser.add_argument("--batch-size", "--batch-sizes", type=positive_int, nargs="+", default=[1, 8],
                            help="batch sizes to measure (default 1 8)")
    else:
        parser.add_argument("--dtype", default="auto", help="auto, fp32, bf16, fp16 or int8 (weights; int8: CPU only)")
        parser.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--lanes", type=positive_int, default=2,
                        help="jobs run side by side, sharing the threads (default 2; 1 = one job at a time)")
    parser.add_argument("--attribution", default=os.environ.get("GANTRACE_ATTRIBUTION") or None,
                        help="latent SVM artifact: a .skops path from scripts/train_svm.py or hf://OWNER/NAME[@REV] "
                             "(default: env GANTRACE_ATTRIBUTION, else GANOrigin's converted classifier)")
    parser.add_argument("--fingerprint", default="fingerprintnet-small", help="registry name or .safetensors path")
    parser.add_argument("--c2pa-trust", default=os.environ.get("GANTRACE_C2PA_TRUST") or None, metavar="PEM",
                        help="your trust anchors for Content Credentials (PEM certificates), beside the shipped C2PA "
                             "trust list; a trusted manifest declaring a generative source votes fake "
                             "(default: env GANTRACE_C2PA_TRUST)")
    parser.add_argument("--gate-attribution", action="store_true",
                        help="attribute only images the detectors call fake (faster; misses more fakes)")
    parser.add_argument("--offline", action="store_true",
                        help="never touch the network: run the branches whose weights are on disk "
                             "(also HF_HUB_OFFLINE=1)")
    names = [entry.name for entry in BRANCHES]
    research = [entry.name for entry in BRANCHES if not entry.default]
    parser.add_argument("--skip-branch", action="append", default=[], metavar="NAME", choices=names,
                        help=f"do not run this branch (repeatable): {', '.join(names)}")
    parser.add_argument("--branch", action="append", default=[], metavar="NAME", dest="extra_branch", choices=research,
                        help="also run this research-only branch, outside the default set because its held-out "
                             f"skill misleads (repeatable): {', '.join(research)}")


def config_from_args(args: argparse.Namespace, **overrides: Any) -> PipelineConfig:
    """The PipelineConfig the pipeline flags describe; `overrides` set fields the program decides itself."""
    import pipeline  # here, not at the top: programs that only train import this module without the pipeline

    apply_runtime(args)
    options: dict[str, dict[str, Any]] = {"fingerprint_net": {"weights": str(args.fingerprint)}}
    if args.attribution:
        options["latent_svm"] = {"artifact": str(args.attribution)}
    if args.c2pa_trust:
        if not os.path.isfile(args.c2pa_trust):
            raise InputError(f"--c2pa-trust {args.c2pa_trust}: no such file (give a PEM file of trust anchors)")
        options["provenance"] = {"trust": str(args.c2pa_trust)}
    offline = args.offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    settings = {"device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
                "branch_options": options, "disabled_branches": tuple(args.skip_branch),
                "extra_branches": tuple(args.extra_branch),
                "gate_attribution": args.gate_attribution, "download": not offline, "lanes": args.lanes}
    return pipeline.PipelineConfig(**{**settings, **overrides})


def run(body: Callable[[], int], errors: tuple[type[Exception], ...] = ()) -> int:
    """Run a program's body; InputError (and the program's own bad-input `errors`) become one line and exit 2."""
    try:
        return body()
    except (InputError, *errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
