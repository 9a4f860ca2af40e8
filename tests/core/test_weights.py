"""core.weights: cache hits, downloads from a local HTTP server, checksum mismatches and offline misses."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
from loopback_hub import endpoint, refusing_port, serve_hub, silent_host

from core.weights import (REGISTRY_PATH, WeightSpec, WeightUnavailableError, download_timeout, load_registry,
                          registry_default, resolve, weight_sha256, weight_status)

PAYLOAD = b"pretend these are network weights" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("GANTRACE_DOWNLOAD_TIMEOUT", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, at its first import
    return tmp_path / "home"


@pytest.fixture()
def file_server(tmp_path):
    """A loopback HTTP server serving `tmp_path/served`, standing in for a weight's URL."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "probe.pth").write_bytes(PAYLOAD)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _url_registry(base: str, sha: str | None = PAYLOAD_SHA) -> dict[str, WeightSpec]:
    spec = WeightSpec(name="probe", kind="url", url=f"{base}/probe.pth", sha256=sha, licence="MIT")
    return {"probe": spec}


def test_url_weight_is_downloaded_verified_and_then_a_cache_hit(home, file_server):
    registry = _url_registry(file_server)
    assert weight_status("probe", registry) == "missing"
    path = resolve("probe", registry=registry)
    assert path == home / "weights" / "probe" / "probe.pth" and path.read_bytes() == PAYLOAD
    assert not list(path.parent.glob("*.part"))
    assert weight_status("probe", registry) == "present"
    broken = _url_registry("http://127.0.0.1:9")
    assert resolve("probe", registry=broken) == path


def test_download_with_wrong_checksum_is_rejected_and_leaves_nothing(home, file_server):
    registry = _url_registry(file_server, sha="0" * 64)
    with pytest.raises(WeightUnavailableError, match="checksum mismatch"):
        resolve("probe", registry=registry)
    assert not any((home / "weights" / "probe").iterdir())


def test_corrupted_cached_file_is_reported_as_checksum_mismatch(home, file_server):
    registry = _url_registry(file_server)
    path = resolve("probe", registry=registry)
    path.write_bytes(b"tampered")
    assert weight_status("probe", registry) == "checksum mismatch"
    with pytest.raises(WeightUnavailableError, match="delete it"):
        resolve("probe", registry=registry)


def test_unreachable_source_names_weight_source_and_fetch_command(home):
    registry = _url_registry("http://127.0.0.1:9")
    with pytest.raises(WeightUnavailableError) as info:
        resolve("probe", registry=registry)
    message = str(info.value)
    assert "'probe'" in message and "http://127.0.0.1:9/probe.pth" in message
    assert "python scripts/download_weights.py --name probe" in message


def test_offline_hub_weight_is_a_clear_miss(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry = {"clip": WeightSpec(name="clip", kind="hub", repo_id="someone/model", filename="w.safetensors",
                                   revision="main")}
    with pytest.raises(WeightUnavailableError) as info:
        resolve("clip", registry=registry)
    assert "HF_HUB_OFFLINE" in str(info.value) and "someone/model" in str(info.value)
    assert weight_status("clip", registry) == "missing"


def test_manually_placed_hub_file_is_found_offline(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry = {"clip": WeightSpec(name="clip", kind="hub", repo_id="someone/model", filename="sub/w.bin",
                                   sha256=PAYLOAD_SHA)}
    target = home / "weights" / "clip" / "w.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert resolve("clip", registry=registry) == target


def test_project_registry_lists_required_weights_with_sources_and_licences():
    registry = load_registry()
    for name in ("clip-vit-l14-openai", "ufd-probe", "e4e-ffhq", "dlib-landmarks-68"):
        assert registry[name].licence and registry[name].used_by and registry[name].source
    assert registry["ufd-probe"].sha256 == "477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847"
    assert registry["e4e-ffhq"].revision


def test_dlib_landmark_model_resolves_from_installed_package():
    path = resolve("dlib-landmarks-68", download=False)
    assert path.name == "shape_predictor_68_face_landmarks.dat" and path.stat().st_size > 50_000_000


def test_registry_rejects_unknown_fields(tmp_path):
    path = tmp_path / "weights.json"
    entries = json.loads(REGISTRY_PATH.read_text())
    entries["weights"][0]["shasum"] = "typo"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="shasum"):
        load_registry(path)


def test_registry_names_the_default_attributor_and_refuses_an_unregistered_one(tmp_path):
    assert registry_default("attributor") == "ganorigin-svm"
    path = tmp_path / "weights.json"
    entries = json.loads(REGISTRY_PATH.read_text())
    path.write_text(json.dumps({**entries, "defaults": {"attributor": "nowhere"}}))
    with pytest.raises(ValueError, match="the default attributor 'nowhere' is not a registered weight"):
        registry_default("attributor", path)
    path.write_text(json.dumps({"weights": entries["weights"]}))
    assert registry_default("attributor", path) is None


def test_weight_sha256_names_the_pin_without_rehashing_and_hashes_unpinned_files(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(PAYLOAD)
    pinned = {"w": WeightSpec(name="w", kind="url", url="http://127.0.0.1:9/w.bin", sha256="f" * 64)}
    unpinned = {"w": WeightSpec(name="w", kind="url", url="http://127.0.0.1:9/w.bin")}
    assert weight_sha256("w", path, pinned) == "f" * 64
    assert weight_sha256("w", path, unpinned) == PAYLOAD_SHA


def _hub_registry(sha: str | None = PAYLOAD_SHA) -> dict[str, WeightSpec]:
    spec = WeightSpec(name="clip", kind="hub", repo_id="someone/model", filename="w.safetensors", revision="main",
                      sha256=sha)
    return {"clip": spec}


def _assert_fails_within(registry: dict[str, WeightSpec], seconds: float) -> str:
    started = time.monotonic()
    with pytest.raises(WeightUnavailableError) as info:
        resolve(next(iter(registry)), registry=registry)
    assert time.monotonic() - started < seconds
    message = str(info.value)
    assert "\n" not in message and "python scripts/download_weights.py --name" in message
    return message


def test_hub_weight_is_fetched_from_the_endpoint_then_found_offline(home, monkeypatch):
    with serve_hub({"w.safetensors": PAYLOAD}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        path = resolve("clip", registry=_hub_registry())
        assert path.read_bytes() == PAYLOAD and hub.connections > 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve("clip", download=False, registry=_hub_registry()) == path


@pytest.mark.parametrize("kind", ["hub", "url"])
def test_silent_host_fails_within_the_download_timeout_with_one_line(home, monkeypatch, kind):
    monkeypatch.setenv("GANTRACE_DOWNLOAD_TIMEOUT", "1")
    with silent_host() as host:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(host))
        registry = _hub_registry() if kind == "hub" else _url_registry(endpoint(host))
        message = _assert_fails_within(registry, seconds=6)
    assert "no answer within 1 s" in message and "GANTRACE_DOWNLOAD_TIMEOUT" in message


@pytest.mark.parametrize("kind", ["hub", "url"])
def test_refusing_host_fails_at_once(home, monkeypatch, kind):
    base = f"http://127.0.0.1:{refusing_port()}"
    monkeypatch.setenv("HF_ENDPOINT", base)
    registry = _hub_registry() if kind == "hub" else _url_registry(base)
    assert "download failed" in _assert_fails_within(registry, seconds=3)


@pytest.mark.parametrize("kind", ["hub", "url"])
def test_offline_resolve_never_connects(home, monkeypatch, kind):
    with serve_hub({"w.safetensors": PAYLOAD, "probe.pth": PAYLOAD}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        registry = _hub_registry() if kind == "hub" else _url_registry(endpoint(hub))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(WeightUnavailableError, match="HF_HUB_OFFLINE"):
            resolve(next(iter(registry)), registry=registry)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        with pytest.raises(WeightUnavailableError, match="downloads are disabled"):
            resolve(next(iter(registry)), download=False, registry=registry)
        assert hub.connections == 0


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_download_timeout_must_be_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("GANTRACE_DOWNLOAD_TIMEOUT", value)
    with pytest.raises(ValueError, match="GANTRACE_DOWNLOAD_TIMEOUT"):
        download_timeout()


def test_converted_weight_is_never_fetched_by_resolve_and_names_the_consent_command(home):
    registry = load_registry()
    with pytest.raises(WeightUnavailableError) as info:
        resolve("ganorigin-svm", registry=registry)
    assert "--name ganorigin-svm --trust-foreign-pickle" in str(info.value)
    spec = registry["ganorigin-svm"]
    assert spec.files == ("gan_attribution_model.pkl", "gan_scaler.pkl", "gan_label_encoder.pkl")
    assert "not pinned" in spec.description.lower() and spec.repo_id == "HAMIwithHugs/gan-attribution-model"
