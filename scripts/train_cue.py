"""Ship a cue (face geometry, colour statistics, spectral DCT) with the skill its source-grouped CV measured.

The program is `runners/train_cue.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.train_cue import main

if __name__ == "__main__":
    sys.exit(main())
