"""Train the spectral branch (DCT log-spectrum + linear heads), judged leave-one-source-out, and ship it.

The program is `runners/train_spectral.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.train_spectral import main

if __name__ == "__main__":
    sys.exit(main())
