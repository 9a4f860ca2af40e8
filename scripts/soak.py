"""Soak the app: N requests from fresh clients on loopback, valid and malformed mixed; one JSON line of results.

The program is `runners/soak.py` (importable, so tests call its `main`); `--help` for usage.
"""

import sys

from runners.soak import main

if __name__ == "__main__":
    sys.exit(main())
