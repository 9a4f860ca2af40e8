"""Extract resolution-augmented e4e W+ latents from labelled face images into resumable shards.

The program is `runners/extract_latents.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.extract_latents import main

if __name__ == "__main__":
    sys.exit(main())
