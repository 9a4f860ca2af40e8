"""attribution.workers: a pool worker exits when its parent is killed with SIGKILL, instead of living on as an orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARENT = textwrap.dedent("""
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from attribution.workers import exit_with_parent

    USE_HELPER = sys.argv[1] in ("helper", "poll")
    if sys.argv[1] == "poll":  # as on a system without prctl: only the polling thread is left
        import attribution.workers, types
        attribution.workers.sys = types.SimpleNamespace(platform="other")
    pool = ProcessPoolExecutor(1, initializer=exit_with_parent if USE_HELPER else None,
                               initargs=(os.getpid(),) if USE_HELPER else ())
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().split(") ")[1][0] != "Z"


def _orphan_outlives(mode: str, seconds: float) -> bool:
    """Start a parent with one pool worker, kill -9 the parent, and say whether the worker is still alive later."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    worker = int(parent.stdout.readline())
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        return _alive(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process state from /proc")
def test_pool_worker_exits_within_seconds_when_its_parent_is_killed():
    assert not _orphan_outlives("helper", 5.0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process state from /proc")
def test_the_portable_fallback_alone_also_ends_the_worker():
    assert not _orphan_outlives("poll", 5.0)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process state from /proc")
def test_without_the_helper_the_worker_is_orphaned():
    assert _orphan_outlives("plain", 2.0)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process state from /proc")
def test_extract_latents_workers_exit_when_the_script_is_killed(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("alpha", "beta"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for index in range(150):
            Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(
                tmp_path / "data" / label / f"{index:03d}.png")
    script = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "extract_latents.py"), str(tmp_path / "data"), "--out",
         str(tmp_path / "latents"), "--encoder", "tiny-random", "--workers", "2", "--copies", "1", "--shard-size",
         "16", "--device", "cpu", "--dtype", "fp32"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while len(_children(script.pid)) < 2 and time.monotonic() < deadline and script.poll() is None:
        time.sleep(0.05)
    workers = _children(script.pid)
    assert len(workers) >= 2, "the script never started its two workers"
    script.send_signal(signal.SIGKILL)
    script.wait(10)
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [w for w in workers if _alive(w)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived the killed script"
