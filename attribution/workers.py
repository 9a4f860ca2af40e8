"""Worker processes that die with their parent.

A pool worker holds a model (hundreds of MB); if the parent is killed hard (kill -9, the OOM killer), Python's
pool machinery never runs and the workers live on, orphaned, until someone finds them. Call `exit_with_parent`
first thing in every worker initializer.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0


def exit_with_parent(parent_pid: int | None = None) -> None:
    """Make this process exit when its parent dies.

    On Linux the kernel delivers SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG); everywhere, a daemon thread
    polls os.getppid() as a fallback. `parent_pid` (the parent's os.getpid(), passed through initargs) also covers a
    parent that died before this ran.
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)
