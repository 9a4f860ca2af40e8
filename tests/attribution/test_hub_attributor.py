"""Attributors shared through the Hub: --attribution hf://OWNER/NAME[@REVISION] read through huggingface_hub's own
cache code offline, and the staged upload folder (the .skops file and its model card)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest
from loopback_hub import COMMIT, endpoint, serve_hub

from attribution.latent_svm import HUB_FILENAME, ForeignArtifactError, LatentAttributor, resolve_attributor
from attribution.share import stage_attributor
from core.weights import WeightUnavailableError


@pytest.fixture(scope="module")
def attributor_file(tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    labels = np.repeat(["progan", "stylegan2", "stylegan3"], 12)
    latents = rng.normal(0, 1, size=(36, 18, 4)) + (np.arange(36) % 3 == 0)[:, None, None] * 3.0
    latents[labels == "stylegan2"] -= 3.0
    model = LatentAttributor(calibration_folds=2).fit(latents, labels, np.arange(36),
                                                      feature_spec={"latent_avg_added": False})
    path = tmp_path_factory.mktemp("svm") / "svm.skops"
    model.save(path)
    return path, latents


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch, attributor_file) -> Path:
    """A Hugging Face cache holding me/svm at COMMIT (refs/main → COMMIT), in the documented snapshot layout,
    with the Hub unreachable: HF_HUB_OFFLINE set, and huggingface_hub's import-time copy of it too."""
    home = tmp_path / "home"
    monkeypatch.setenv("GANTRACE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    repo = home / "hub" / "models--me--svm"
    data = attributor_file[0].read_bytes()
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snapshot), snapshot / HUB_FILENAME)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return home / "hub"


def test_prefilled_cache_is_one_huggingface_hub_itself_recognises(offline_cache):
    repos = huggingface_hub.scan_cache_dir(offline_cache).repos
    assert [(repo.repo_id, [rev.commit_hash for rev in repo.revisions]) for repo in repos] == [("me/svm", [COMMIT])]


@pytest.mark.parametrize("uri", ["hf://me/svm", f"hf://me/svm@{COMMIT}", f"hf://me/svm/{HUB_FILENAME}@main"])
def test_hf_uri_loads_the_cached_attributor_offline_without_any_connection(offline_cache, attributor_file,
                                                                           monkeypatch, uri):
    original, latents = attributor_file
    with serve_hub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        path = resolve_attributor(uri)
        assert hub.connections == 0
    assert path.parent.name == COMMIT and path.read_bytes() == original.read_bytes()
    assert np.array_equal(LatentAttributor.from_pretrained(path).predict_proba(latents),
                          LatentAttributor.from_pretrained(original).predict_proba(latents))


def test_hf_uri_of_an_uncached_revision_offline_is_a_clear_miss(offline_cache):
    with pytest.raises(WeightUnavailableError) as info:
        resolve_attributor("hf://me/svm@v2")
    assert "hf://me/svm@v2" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)


@pytest.mark.parametrize("uri", ["hf://me/svm/model.pkl", "hf://me/svm/latent_svm.joblib"])
def test_hf_uri_of_a_pickle_is_refused_before_download(offline_cache, uri):
    with pytest.raises(ForeignArtifactError, match="only .skops"):
        resolve_attributor(uri)


@pytest.mark.parametrize("uri", ["hf://me", "hf:///svm", "hf://me/svm@"])
def test_malformed_hf_uri_is_refused(uri):
    with pytest.raises(ValueError, match="OWNER/NAME"):
        resolve_attributor(uri)


def test_plain_paths_pass_through(tmp_path):
    assert resolve_attributor(tmp_path / "svm.skops") == tmp_path / "svm.skops"


def test_staged_folder_holds_the_artifact_and_a_card_with_its_metadata(attributor_file, tmp_path):
    original, _ = attributor_file
    staged = stage_attributor(original, tmp_path / "hub", "me/svm", licence="mit")
    assert [path.name for path in staged] == ["README.md", HUB_FILENAME]
    assert (tmp_path / "hub" / HUB_FILENAME).read_bytes() == original.read_bytes()
    card = (tmp_path / "hub" / "README.md").read_text()
    metadata = LatentAttributor.from_pretrained(original).metadata
    assert card.startswith("---\nlicense: mit\n") and "hf://me/svm" in card
    assert "`progan`, `stylegan2`, `stylegan3`" in card
    assert "| stylegan2 | " + str(metadata["data"]["per_class"]["stylegan2"]["train_rows"]) in card
    assert f"- accuracy: {metadata['validation']['accuracy']:.4f}" in card
    assert "latent_avg added: False" in card and metadata["open_set"]["rule"] in card


def test_only_skops_artifacts_are_staged(tmp_path):
    with pytest.raises(ValueError, match="only .skops"):
        stage_attributor(tmp_path / "svm.joblib", tmp_path / "hub", "me/svm")
