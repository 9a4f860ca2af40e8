"""List every registered weight with its state, and fetch the ones that are missing.

    python scripts/download_weights.py            # table of weights and their state
    python scripts/download_weights.py --fetch    # download every missing weight
    python scripts/download_weights.py --name ufd-probe

Exit status: 0 every asked-for weight is present; 1 some download failed (each failure is one line on stderr);
2 bad input (an unknown --name).
"""

from __future__ import annotations

import argparse
import sys

from cli import EXIT_OK, EXIT_UNUSABLE
from core.weights import WeightUnavailableError, load_registry, resolve, weight_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", action="append", help="fetch only this weight (repeatable); implies --fetch")
    parser.add_argument("--fetch", action="store_true", help="download every missing weight")
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
        try:
            path = resolve(name, download=True, registry=registry)
            print(f"fetched {name}: {path}")
        except WeightUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            failures += 1
    return EXIT_UNUSABLE if failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
