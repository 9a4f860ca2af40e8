"""Soak the app: N requests from fresh clients on loopback, valid and malformed mixed; one JSON line of results.

Starts `app.py` (the offline default: whatever weights are on disk) on 127.0.0.1 in a subprocess, or uses --url,
then sends --requests calls to /analyze, each from a new gradio_client Client (a new session, as a new visitor
would be). Every --malformed-every-th file is malformed (truncated, random bytes, empty, text, a decompression bomb,
too small) and must be refused with its one-line '<file>: <problem>' message; the others are valid images
(synthetic ones, plus faces from --faces) and must get a verdict. The server's RSS is read from /proc before the
first request, after --warmup requests and at the end; growth is measured from the warm-up point, so model
warm-up and first-call caches do not count. Bounded by --requests and --time-limit-s.

    OMP_NUM_THREADS=1 python scripts/soak.py --requests 500 --faces ../shared/data/faces
    python scripts/soak.py --requests 50 --url http://127.0.0.1:7860 --pid 12345      # an app already running

Output: {"requests", "valid", "malformed", "failed_valid", "failed_malformed", "rss_start_mb", "rss_warm_mb",
"rss_end_mb", "rss_growth_mb", "latency_ms": {"p50", "p95", "p99", "max"}, "seconds", "errors": [first few]}.
Exit status 0 when no valid request failed and every malformed one got its message, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
FACE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def synthetic_images(folder: Path, faces: Path | None, max_faces: int = 8) -> tuple[list[Path], list[Path]]:
    """Valid files (synthetic pictures in several formats and sizes, plus up to `max_faces` faces) and malformed
    ones, written into `folder`."""
    rng = np.random.default_rng(0)
    valid = []
    for index, (size, fmt) in enumerate([(96, "PNG"), (256, "JPEG"), (512, "WEBP"), (1024, "JPEG"), (300, "PNG")]):
        y, x = np.mgrid[0:size, 0:size]
        pixels = np.stack([x * 255 // size, y * 255 // size, rng.integers(0, 255, (size, size))], axis=2)
        path = folder / f"synthetic{index}.{fmt.lower()}"
        Image.fromarray(pixels.astype(np.uint8)).save(path, format=fmt)
        valid.append(path)
    if faces is not None:
        found = sorted(p for p in faces.rglob("*") if p.suffix.lower() in FACE_SUFFIXES)
        picks = [found[int(i)] for i in np.linspace(0, len(found) - 1, min(max_faces, len(found)))] if found else []
        valid += picks
    jpeg = valid[1].read_bytes()
    malformed = {"truncated.jpg": jpeg[: len(jpeg) // 3], "random.png": rng.bytes(5000), "empty.webp": b"",
                 "notes.jpg": b"this is a text file, not a picture\n", "bomb.png": _bomb_png(),
                 "tiny.png": _png_bytes(np.zeros((10, 10, 3), np.uint8))}
    bad = []
    for name, data in malformed.items():
        (folder / name).write_bytes(data)
        bad.append(folder / name)
    return valid, bad


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(side: int = 30_000) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + \
        chunk(b"IEND", b"")


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MB, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def soak(url: str, pid: int, valid: list[Path], malformed: list[Path], requests: int, warmup: int = 20,
         malformed_every: int = 5, time_limit_s: float = 3600.0, progress: bool = False) -> dict:
    """Send `requests` calls from fresh clients and measure the server `pid`; the summary as a dict."""
    from gradio_client import Client, handle_file

    started = time.monotonic()
    summary = {"requests": 0, "valid": 0, "malformed": 0, "failed_valid": 0, "failed_malformed": 0,
               "rss_start_mb": round(rss_mb(pid), 1)}
    latencies, errors = [], []
    rss_warm = summary["rss_start_mb"]
    for index in tqdm(range(requests), unit="req", desc="soak", disable=not progress):
        if time.monotonic() - started > time_limit_s:
            errors.append(f"stopped at the {time_limit_s:.0f} s time limit after {index} requests")
            break
        bad = malformed_every > 0 and index % malformed_every == malformed_every - 1
        pool = malformed if bad else valid
        path = pool[index % len(pool)]
        began = time.perf_counter()
        try:
            verdict = Client(url, verbose=False, analytics_enabled=False).predict(handle_file(str(path)),
                                                                                   api_name="/analyze")
            outcome = None if not bad and isinstance(verdict, dict) and "label" in verdict else \
                f"{path.name}: {'accepted a malformed file' if bad else 'no verdict'}"
        except Exception as err:  # noqa: BLE001 - every failure is counted and reported, none stops the soak
            message = " ".join(str(err).split())
            outcome = None if bad and f"{path.name}: " in message else f"{path.name}: {type(err).__name__}: " \
                f"{message[:200]}"
        latencies.append((time.perf_counter() - began) * 1000)
        summary["requests"] += 1
        summary["malformed" if bad else "valid"] += 1
        if outcome is not None:
            summary["failed_malformed" if bad else "failed_valid"] += 1
            errors.append(outcome)
        if index + 1 == warmup:
            rss_warm = round(rss_mb(pid), 1)
    summary["rss_warm_mb"] = rss_warm
    summary["rss_end_mb"] = round(rss_mb(pid), 1)
    summary["rss_growth_mb"] = round(summary["rss_end_mb"] - rss_warm, 1)
    values = np.array(latencies or [0.0])
    summary["latency_ms"] = {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)}
    summary["latency_ms"]["max"] = round(float(values.max()), 1)
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["errors"] = errors[:10]
    return summary


def start_app(port: int, app_args: list[str], startup_timeout_s: float) -> subprocess.Popen:
    """app.py on 127.0.0.1:`port` in a subprocess; returns once it answers, raises if it dies or never does."""
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port),
                                *app_args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with status {process.returncode}: "
                               f"{' '.join(process.stderr.read().split())[-300:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"app.py did not answer on port {port} within {startup_timeout_s:.0f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="number of requests (default 100)")
    parser.add_argument("--warmup", type=int, default=20, help="requests before the RSS baseline (default 20)")
    parser.add_argument("--malformed-every", type=int, default=5, help="every K-th file is malformed (0: none)")
    parser.add_argument("--faces", type=Path, default=None, help="folder of face images to add to the valid files")
    parser.add_argument("--url", default=None, help="soak an app already running here (needs --pid)")
    parser.add_argument("--pid", type=int, default=None, help="process id of the app at --url, for its RSS")
    parser.add_argument("--time-limit-s", type=float, default=3600.0, help="stop after this long (default 3600)")
    parser.add_argument("--startup-timeout-s", type=float, default=600.0)
    parser.add_argument("--app-arg", action="append", default=[], help="extra argument for app.py (repeatable)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or args.warmup >= args.requests:
        parser.error("--requests must be at least 1 and --warmup between 0 and --requests - 1")
    if (args.url is None) != (args.pid is None):
        parser.error("--url and --pid go together")
    if args.faces is not None and not args.faces.is_dir():
        parser.error(f"--faces {args.faces}: not a folder")
    server = None
    try:
        if args.url is None:
            port = _free_port()
            server = start_app(port, args.app_arg, args.startup_timeout_s)
            url, pid = f"http://127.0.0.1:{port}/", server.pid
        else:
            url, pid = args.url, args.pid
        with tempfile.TemporaryDirectory(prefix="gantrace-soak-") as folder:
            valid, malformed = synthetic_images(Path(folder), args.faces)
            summary = soak(url, pid, valid, malformed, args.requests, args.warmup, args.malformed_every,
                           args.time_limit_s, progress=not args.no_progress)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(json.dumps(summary))
    return 0 if summary["failed_valid"] == 0 and summary["failed_malformed"] == 0 else 1
