"""List every registered weight with its state, and fetch the ones that are missing.

The program is `runners/download_weights.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.download_weights import main

if __name__ == "__main__":
    sys.exit(main())
