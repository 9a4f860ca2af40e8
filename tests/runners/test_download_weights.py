"""scripts/download_weights.py: a table of every weight, a clear message (no traceback) when fetching fails, and
GANOrigin's pickles fetched from a loopback Hub, unpickled only with consent and converted to a safe artifact."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import joblib
import numpy as np
import pytest
from foreign_pickles import GANORIGIN_FILES, WritesFileWhenUnpickled, build_ganorigin_trio
from loopback_hub import endpoint, serve_hub

from attribution.ganorigin import convert_ganorigin
from attribution.latent_svm import UNKNOWN, ForeignArtifactError, LatentAttributor, default_attributor_path
from attribution.open_set import open_set_labels
from core.weights import WeightUnavailableError, load_registry
from runners import download_weights

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "download_weights.py"


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


def download(*args: str) -> int:
    """Run the script in this process (scikit-learn is already imported here; a subprocess would import it again)."""
    return download_weights.main(list(args))


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def trio(tmp_path_factory) -> tuple[dict[str, bytes], np.ndarray]:
    folder = tmp_path_factory.mktemp("ganorigin")
    *paths, features = build_ganorigin_trio(folder)
    return {path.name: path.read_bytes() for path in paths}, features


def test_ganorigin_pickles_are_not_even_fetched_without_consent(home, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "code-ran"
    canary = tmp_path / "canary.pkl"
    joblib.dump(WritesFileWhenUnpickled(marker), canary)
    files = dict.fromkeys(GANORIGIN_FILES, canary.read_bytes())
    with serve_hub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        assert download("--name", "ganorigin-svm") == 2
        assert hub.connections == 0
    assert "--trust-foreign-pickle" in capsys.readouterr().err
    assert not marker.exists() and not (home / "attribution").exists()


def test_conversion_without_consent_never_unpickles_the_canary(tmp_path):
    marker = tmp_path / "code-ran"
    canary = tmp_path / "canary.pkl"
    joblib.dump(WritesFileWhenUnpickled(marker), canary)
    with pytest.raises(ForeignArtifactError, match="trust_foreign"):
        convert_ganorigin(canary, canary, canary, tmp_path / "out.skops", origin="test")
    assert not marker.exists() and not (tmp_path / "out.skops").exists()


def test_consented_import_converts_ganorigin_into_a_default_attributor_with_identical_probabilities(
        home, trio, monkeypatch):
    files, features = trio
    with pytest.raises(WeightUnavailableError, match="--trust-foreign-pickle"):
        default_attributor_path()
    with serve_hub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        assert download("--name", "ganorigin-svm", "--trust-foreign-pickle") == 0
    path = default_attributor_path()
    assert path == home / "attribution" / "ganorigin-svm.skops"
    model = LatentAttributor.from_pretrained(path)
    svm, scaler = (joblib.load(io.BytesIO(files[name])) for name in GANORIGIN_FILES[:2])
    assert np.array_equal(model.predict_proba(features), svm.predict_proba(scaler.transform(features)))
    assert list(model.classes_) == ["progan", "stylegan2", "stylegan3"]
    far = np.full((1, 18, 512), 1e3)
    assert UNKNOWN not in open_set_labels(model, np.concatenate([features.reshape(-1, 18, 512), far]))
    source = model.metadata["source"]
    assert source["origin"] == "hf://HAMIwithHugs/gan-attribution-model@main"
    assert {entry["file"]: entry["sha256"] for entry in source["files"].values()} == {
        name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert model.metadata["feature_spec"]["latent_avg_added"] is False
    assert "closed set" in model.metadata["open_set"]["rule"]
    assert model.origin.startswith("GANOrigin") and "hf://HAMIwithHugs/gan-attribution-model@main" in model.origin
