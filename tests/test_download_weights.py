"""scripts/download_weights.py: a table of every weight, and a clear message (no traceback) when fetching fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.weights import load_registry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "download_weights.py"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GANTRACE_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_table_lists_every_registered_weight_with_its_state(tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    for name in load_registry():
        assert name in result.stdout
    assert "missing" in result.stdout and "present" in result.stdout


def test_impossible_download_exits_nonzero_with_one_clear_line(tmp_path):
    result = _run(tmp_path, "--name", "ufd-probe")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "error: weight 'ufd-probe' is unavailable" in result.stderr


def test_unknown_weight_name_is_a_usage_error(tmp_path):
    result = _run(tmp_path, "--name", "nope")
    assert result.returncode == 2 and "unknown weight nope" in result.stderr
