"""Train FingerprintNet on labelled face images and write a report that shows what it learned.

The program is `runners/train_fingerprint.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.train_fingerprint import main

if __name__ == "__main__":
    sys.exit(main())
