"""Train the latent attribution SVM on extracted W+ shards and write the artifact plus a report folder.

The program is `runners/train_svm.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.train_svm import main

if __name__ == "__main__":
    sys.exit(main())
