"""Assemble GANTrace as a Hugging Face Space (Gradio SDK), with the attributor you name, and push it when asked.

The program is `runners/publish_space.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.publish_space import main

if __name__ == "__main__":
    sys.exit(main())
