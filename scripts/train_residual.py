"""Train the shipped ResidualNet on every source of the face set, with the recipe that won source-grouped CV.

The program is `runners/train_residual.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.train_residual import main

if __name__ == "__main__":
    sys.exit(main())
