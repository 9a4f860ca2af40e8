"""Source-grouped 5-fold cross-validation of candidate real/fake + which-GAN branches: one protocol, one table.

The program is `runners/source_cv.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.source_cv import main

if __name__ == "__main__":
    sys.exit(main())
