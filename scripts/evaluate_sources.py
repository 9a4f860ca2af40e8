"""Leave-one-source-out evaluation of an offline branch on a labelled face folder: the per-source table.

The program is `runners/evaluate_sources.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.evaluate_sources import main

if __name__ == "__main__":
    sys.exit(main())
