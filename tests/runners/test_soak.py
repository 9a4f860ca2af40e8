"""scripts/soak.py: a handful of fresh-client requests against the app with tiny models gives one honest summary."""

from __future__ import annotations

import os

import pytest

import app
from tiny_models import tiny_pipeline

from runners import soak



@pytest.fixture(scope="module")
def url(tmp_path_factory):
    demo = app.build_demo(tiny_pipeline(tmp_path_factory.mktemp("models")))
    _, local_url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield local_url
    demo.close()


def test_soak_counts_valid_and_malformed_requests_and_measures_the_server(url, tmp_path):
    valid, malformed = soak.synthetic_images(tmp_path, faces=None)
    summary = soak.soak(url, os.getpid(), valid[:1] + valid[-1:], malformed, requests=8, warmup=2,
                        malformed_every=2)
    assert summary["requests"] == 8 and summary["valid"] == 4 and summary["malformed"] == 4
    assert summary["failed_valid"] == 0 and summary["failed_malformed"] == 0, summary["errors"]
    assert summary["rss_end_mb"] > 0 and summary["rss_growth_mb"] == pytest.approx(
        summary["rss_end_mb"] - summary["rss_warm_mb"], abs=0.2)
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] <= summary["latency_ms"]["p99"]


def test_soak_reports_a_malformed_file_that_is_accepted(url, tmp_path):
    valid, _ = soak.synthetic_images(tmp_path, faces=None)
    summary = soak.soak(url, os.getpid(), valid[:1], valid[:1], requests=2, warmup=0, malformed_every=2)
    assert summary["failed_malformed"] == 1 and "accepted a malformed file" in summary["errors"][0]


def test_command_line_rejects_contradictory_arguments(capsys):
    with pytest.raises(SystemExit) as stop:
        soak.main(["--requests", "50", "--url", "http://127.0.0.1:1/"])
    assert stop.value.code == 2 and "--url and --pid go together" in capsys.readouterr().err
