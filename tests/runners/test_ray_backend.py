"""--ray gives the local backend's outputs: the same scan rows, byte-identical shards, failures, resume after a kill.

One local Ray (2 CPUs, no dashboard) serves the whole module; scan.py runs in this process against it, and the
extraction and the interrupted scan run in subprocesses that join it by address. Both backends run torch on one
thread (each 1-CPU actor does), so the same numerics give the same bits.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from runners import batch_scan
from core.weights import WeightUnavailableError
from runners.ray_backend import RayOptions, RayWorkerError, map_ordered, ray_session
from program_runs import FAST, SCAN, extract, rows, shard_bytes
from tiny_models import png_bytes

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")

SCAN_FLAGS = ["--batch-size", "2", "--device", "cpu", "--dtype", "fp32", "--threads", "1", "--offline", "--no-progress"]


@pytest.fixture(scope="module")
def ray_address():
    threads = torch.get_num_threads()  # scan.py --threads 1 sets this process's torch threads; put them back
    with ray_session(RayOptions(local_cpus=2)):
        yield ray.get_runtime_context().gcs_address
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Twenty faceless 320² pictures and a corrupt .jpg in the middle of the list."""
    root = tmp_path_factory.mktemp("ray-scan") / "case"
    root.mkdir()
    rng = np.random.default_rng(1)
    for index in range(20):
        (root / f"img{index:02d}.png").write_bytes(png_bytes(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)))
    (root / "img05-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    return root


@pytest.fixture(scope="module")
def local_scan(ray_address, images, tmp_path_factory) -> Path:
    """The local backend's uninterrupted scan, which every Ray run is compared with."""
    out = tmp_path_factory.mktemp("local") / "results.csv"
    assert batch_scan.main([str(images), "--out", str(out), *SCAN_FLAGS]) == 0
    return out


def _without_timings(jsonl: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "timings_ms"} for line in jsonl.read_text().splitlines()]


def test_scan_on_ray_writes_the_local_backends_rows_and_verdicts(ray_address, images, local_scan, tmp_path):
    out = tmp_path / "ray.csv"
    assert batch_scan.main([str(images), "--out", str(out), *SCAN_FLAGS, "--ray", "--ray-actors", "2"]) == 0
    assert out.read_bytes() == local_scan.read_bytes()
    assert _without_timings(out.with_suffix(".jsonl")) == _without_timings(local_scan.with_suffix(".jsonl"))
    broken = [row for row in rows(out) if row["file"].endswith("img05-broken.jpg")]
    assert len(broken) == 1 and broken[0]["error"].startswith(str(images / "img05-broken.jpg"))


def test_extraction_on_ray_writes_byte_identical_shards_and_the_same_failures(ray_address, face_classes, tmp_path):
    inputs = face_classes(tmp_path / "faces", 2)
    (inputs / "beta" / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    local = extract(inputs, "--out", tmp_path / "local", *FAST)
    assert local.returncode == 0, local.stderr
    on_ray = extract(inputs, "--out", tmp_path / "ray", *FAST, "--ray", ray_address, "--ray-actors", "2")
    assert on_ray.returncode == 0, on_ray.stderr
    shards = shard_bytes(tmp_path / "local")
    assert len(shards) == 3 and shard_bytes(tmp_path / "ray") == shards
    failures = json.loads((tmp_path / "ray" / "failures.json").read_text())
    assert failures == json.loads((tmp_path / "local" / "failures.json").read_text())
    assert [f["path"] for f in failures] == ["beta/zz-broken.jpg"]


def test_interrupted_ray_scan_resumes_to_one_row_per_file_with_the_same_verdicts(ray_address, images,
                                                                                 local_scan, tmp_path):
    out = tmp_path / "resumed.csv"
    command = [sys.executable, str(SCAN), str(images), "--out", str(out), *SCAN_FLAGS, "--batch-size", "1",
               "--ray", ray_address, "--ray-actors", "1"]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # a guard against a hang, not a speed test: Ray starts slowly on a busy CPU
    while not (out.is_file() and len(out.read_bytes().splitlines()) >= 2) and first.poll() is None:
        assert time.monotonic() < deadline, "the Ray scan wrote no row within five minutes"
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert len(rows(out)) < len(rows(local_scan))
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert rows(out) == rows(local_scan)


def _node_without_weights():
    raise WeightUnavailableError("e4e-ffhq", "it is not in this node's cache and downloads are disabled")


def test_a_node_that_cannot_load_fails_with_its_one_line_reason(ray_address):
    with pytest.raises(RayWorkerError, match=r"^a Ray actor could not start on .*: weight 'e4e-ffhq' is unavail"):
        list(map_ordered(_node_without_weights, [1, 2], RayOptions(actors=1)))
