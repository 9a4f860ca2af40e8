"""Evaluate GANTrace on a labelled image set, per branch and fused, clean and under perturbations.

The program is `runners/evaluate.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
