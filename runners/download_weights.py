"""List every registered weight with its state, and fetch the ones that are missing.

    python scripts/download_weights.py            # table of weights and their state
    python scripts/download_weights.py --fetch    # download every missing weight
    python scripts/download_weights.py --name ufd-probe
    python scripts/download_weights.py --name ganorigin-svm --trust-foreign-pickle

A "converted" weight (GANOrigin's classifier) is published as pickles, which run code when loaded: it is fetched,
unpickled once and converted into a safe .skops artifact only with --trust-foreign-pickle. Downloads give up after
GANTRACE_DOWNLOAD_TIMEOUT seconds without an answer (default 10); --offline (or HF_HUB_OFFLINE=1) uses only what
is cached.

Exit status: 0 every asked-for weight is present; 1 some download failed (each failure is one line on stderr);
2 bad input (an unknown --name, a converted weight asked for by name without --trust-foreign-pickle).
"""

from __future__ import annotations

import argparse
import sys

from runners.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNUSABLE
from core.weights import WeightSpec, converted_path, fetch_files, load_registry, resolve, weight_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", action="append", help="fetch only this weight (repeatable); implies --fetch")
    parser.add_argument("--fetch", action="store_true", help="download every missing weight")
    parser.add_argument("--trust-foreign-pickle", action="store_true",
                        help="consent to unpickle a converted weight's third-party pickles once, to convert them")
    parser.add_argument("--offline", action="store_true", help="never touch the network; use cached files only")
    args = parser.parse_args(argv)

    registry = load_registry()
    unknown = [name for name in args.name or [] if name not in registry]
    if unknown:
        parser.error(f"unknown weight {', '.join(unknown)}; known: {', '.join(registry)}")
    print(f"{'weight':<22} {'state':<18} {'licence':<34} source")
    for spec in registry.values():
        print(f"{spec.name:<22} {weight_status(spec.name, registry):<18} {spec.licence[:33]:<34} {spec.source}")

    wanted = args.name or (list(registry) if args.fetch else [])
    failures = 0
    for name in wanted:
        if weight_status(name, registry) == "present":
            continue
        spec = registry[name]
        if spec.kind == "converted" and not args.trust_foreign_pickle:
            print(f"{'error' if args.name else 'skipped'}: {name} is made from the pickles "
                  f"{', '.join(spec.files or ())} of {spec.repo_id}, and unpickling runs any code they hold: rerun "
                  "with --trust-foreign-pickle if you trust that repo", file=sys.stderr)
            if args.name:
                return EXIT_BAD_INPUT
            continue
        try:
            path = _convert(spec, registry, args.offline) if spec.kind == "converted" else \
                resolve(name, download=not args.offline, registry=registry)
            print(f"fetched {name}: {path}")
        except (RuntimeError, ValueError, TypeError) as err:  # WeightUnavailableError, ForeignArtifactError, bad files
            print(f"error: {err}", file=sys.stderr)
            failures += 1
    return EXIT_UNUSABLE if failures else EXIT_OK


def _convert(spec: WeightSpec, registry: dict[str, WeightSpec], offline: bool) -> str:
    """Fetch a converted weight's source files, unpickle them once (the user consented) and write the .skops."""
    sources = fetch_files(spec.name, download=not offline, registry=registry)
    from attribution.ganorigin import convert_ganorigin  # scikit-learn and skops only once there is work for them

    target = converted_path(spec)
    model = convert_ganorigin(*sources, out=target, origin=f"hf://{spec.repo_id}@{spec.revision}",
                              trust_foreign=True)
    return f"{target} (classes {', '.join(model.classes_)}; closed set; converted from {sources[0].parent})"
