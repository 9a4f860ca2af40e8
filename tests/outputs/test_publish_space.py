"""The Space bundle (space_bundle, behind scripts/publish_space.py): exactly the allow-listed files, a front matter
the Hub reads, nothing secret, pickled or test-only, and the attributor the publisher names, run by the staged app
from the staged folder alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gradio
import huggingface_hub.constants
import pytest
from huggingface_hub import SpaceCard
from loopback_hub import endpoint, serve_hub
from tiny_models import tiny_attributor

from core.weights import sha256_file
from outputs import space_bundle as publish
from runners import publish_space

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "publish_space.py"

SPACE_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
OUR_PACKAGES = ("app", "core", "detector", "encoder", "attribution", "pipeline", "outputs", "runners")

# Run inside the staged folder (cwd and PYTHONPATH): the app's own flags without --attribution, the tiny e4e encoder
# injected (the real one is 1.2 GB), the app's upload handler on the face; print what the test checks.
ANALYSE_IN_SPACE = f"""
import argparse, json, sys
import torch
import app, pipeline as P
from core.device import Precision
from encoder.e4e import E4EConfig, Encoder4Editing
from pipeline.branches import LatentBranch
from runners.cli import add_pipeline_arguments, config_from_args

parser = argparse.ArgumentParser()
add_pipeline_arguments(parser)
config = config_from_args(parser.parse_args(["--offline", "--dtype", "fp32", "--skip-branch", "clip_probe",
                                             "--skip-branch", "fingerprint_net"]))
encoder = Encoder4Editing.random_init(E4EConfig.tiny(), precision=Precision(torch.device("cpu"), torch.float32))
pipe = P.Pipeline(config, {{"latent_svm": LatentBranch(encoder=encoder)}})
pipe.load_all()
verdict, _ = app.analyze_upload(pipe, sys.argv[1])
modules = sorted({{m.__file__ for n, m in list(sys.modules.items())
                  if n.split(".")[0] in {OUR_PACKAGES!r} and getattr(m, "__file__", None)}})
print(json.dumps({{"models": verdict["models"], "latent": verdict["evidence"]["latent_svm"],
                  "status": app.status_markdown(pipe), "modules": modules}}))
"""


def front_matter(text: str) -> dict:
    """The README's front matter as the Hub reads it (huggingface_hub's own card parser)."""
    assert text.startswith("---\n"), "front matter must open the README"
    return SpaceCard(text).data.to_dict()


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """A repository with the files a Space needs and every kind of file it must never get."""
    repo = tmp_path / "repo"
    for relative in ("app.py", "runners/__init__.py", "runners/cli.py", "runners/batch_scan.py",
                     "pipeline/__init__.py", "pipeline/fusion.py", "outputs/__init__.py",
                     "outputs/evidence_report.py", "outputs/evidence_report.css", "core/__init__.py", "core/images.py",
                     "detector/__init__.py", "encoder/__init__.py", "attribution/__init__.py",
                     "tests/app/test_app.py", "scripts/scan.py", "core/__pycache__/images.cpython-311.pyc",
                     ".git/config", "runs/log.txt", "artifacts/fingerprintnet-small.safetensors",
                     "artifacts/fingerprintnet-small.json", "artifacts/fingerprintnet-small.md",
                     "artifacts/other-experiment.safetensors", "README.md", ".env"):
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(f"# {relative}\n")
    (repo / "requirements.txt").write_text("torch==2.14.1\n# comment\ngradio>=6.0,<7\ngradio-client>=2.0\n"
                                           "numpy>=1.26\npytest>=8.0  # misplaced: requirements-test.txt has it\n")
    (repo / "requirements-test.txt").write_text("-r requirements.txt\npytest>=8.0\nplaywright>=1.45\n")
    registry = {"weights": [
        {"name": "clip", "kind": "hub", "repo_id": "org/clip", "filename": "model.safetensors", "revision": "abc123"},
        {"name": "probe", "kind": "url", "url": "https://example.org/fc.pth", "filename": "fc.pth"},
        {"name": "fingerprintnet-small", "kind": "local", "path": "artifacts/fingerprintnet-small.safetensors"},
    ]}
    (repo / "artifacts" / "weights.json").write_text(json.dumps(registry))
    return repo


def test_staging_copies_exactly_the_allow_list(fake_repo, tmp_path):
    staged, missing = publish.stage(tmp_path / "space", publish.SpaceCard(), repo=fake_repo)
    assert [str(p) for p in staged] == sorted([
        "README.md", "app.py", "runners/__init__.py", "runners/cli.py", "pipeline/__init__.py", "pipeline/fusion.py",
        "outputs/__init__.py", "outputs/evidence_report.py", "outputs/evidence_report.css", "requirements.txt",
        "artifacts/weights.json", "artifacts/fingerprintnet-small.json", "artifacts/fingerprintnet-small.md",
        "artifacts/fingerprintnet-small.safetensors", "attribution/__init__.py", "core/__init__.py",
        "core/images.py", "detector/__init__.py", "encoder/__init__.py"])
    assert missing == []
    assert (tmp_path / "space" / "requirements.txt").read_text() == "torch==2.14.1\nnumpy>=1.26\n"


def test_staging_takes_the_provenance_package_and_the_c2pa_trust_list_but_no_other_pem(fake_repo, tmp_path):
    for relative in ("provenance/__init__.py", "artifacts/c2pa-trust-list.pem", "artifacts/c2pa-trust-list.md",
                     "artifacts/signing.pem"):
        (fake_repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (fake_repo / relative).write_text(f"# {relative}\n")
    staged = {str(p) for p in publish.stage(tmp_path / "space", publish.SpaceCard(), repo=fake_repo)[0]}
    assert {"provenance/__init__.py", "artifacts/c2pa-trust-list.pem", "artifacts/c2pa-trust-list.md"} <= staged
    assert "artifacts/signing.pem" not in staged


def test_front_matter_is_a_valid_gradio_space_header(fake_repo):
    header = front_matter(publish.readme(publish.SpaceCard(), repo=fake_repo))
    assert header["sdk"] == "gradio" and header["sdk_version"] == gradio.__version__
    assert header["app_file"] == "app.py" and header["python_version"] == "3.11"
    assert header["colorFrom"] in SPACE_COLOURS and header["colorTo"] in SPACE_COLOURS
    assert header["title"] and header["emoji"] and 0 < len(header["short_description"]) <= 60
    assert header["models"] == ["org/clip"]
    assert header["preload_from_hub"] == ["org/clip model.safetensors abc123"]
    assert "hardware" not in header


def test_missing_registered_artifact_is_reported(fake_repo, tmp_path):
    (fake_repo / "artifacts" / "fingerprintnet-small.safetensors").unlink()
    _, missing = publish.stage(tmp_path / "space", publish.SpaceCard(), repo=fake_repo)
    assert missing == ["fingerprintnet-small (artifacts/fingerprintnet-small.safetensors)"]


@pytest.mark.parametrize("relative", [".git/config", "tests/test_app.py", "runs/x.txt", "artifacts/.env",
                                      "data/faces/a.webp", "artifacts/e4e.pt", "artifacts/token", "artifacts/svm.joblib"])
def test_secrets_data_and_repo_internals_are_refused(relative, tmp_path):
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(ValueError, match="must never be uploaded"):
        publish.check_allowed(Path(relative), source)


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "MAX_FILE_MB", 0.000001)
    source = tmp_path / "big.safetensors"
    source.write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="over the"):
        publish.check_allowed(Path("artifacts/big.safetensors"), source)


def test_push_creates_a_gradio_space_and_uploads_the_staged_folder(fake_repo, tmp_path, monkeypatch):
    calls = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls["create"] = (repo_id, kwargs)
            return type("RepoUrl", (), {"url": f"https://huggingface.co/spaces/{repo_id}"})()

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs
            calls["uploaded"] = sorted(str(p.relative_to(kwargs["folder_path"]))
                                       for p in Path(kwargs["folder_path"]).rglob("*") if p.is_file())

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    staged, _ = publish.stage(tmp_path / "space", publish.SpaceCard(), repo=fake_repo)
    url = publish.push(tmp_path / "space", "someone/gantrace", private=False)
    assert url == "https://huggingface.co/spaces/someone/gantrace"
    assert calls["create"] == ("someone/gantrace", {"repo_type": "space", "space_sdk": "gradio", "exist_ok": True,
                                                    "private": False})
    assert calls["upload"]["repo_type"] == "space" and calls["uploaded"] == [str(p) for p in staged]


def test_dry_run_of_this_repository_prints_the_header_and_only_allowed_files():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    header = front_matter(result.stdout)
    assert header["sdk_version"] == gradio.__version__
    listed = [line.split()[-1] for line in result.stdout.split("---\n", 2)[2].splitlines()
              if line.strip() and line.split()[0].replace(",", "").isdigit()]
    assert {"app.py", "pipeline/pipeline.py", "runners/cli.py", "README.md", "requirements.txt",
            "artifacts/weights.json"} <= set(listed)
    assert not any(p.startswith(("tests/", "scripts/", ".git")) or "__pycache__" in p for p in listed)
    assert "dry run: nothing uploaded" in result.stderr
    assert "the Space will have NO attribution model" in result.stderr and "--attribution" in result.stderr


def test_registered_pickle_is_refused_even_as_a_weight(tmp_path):
    source = tmp_path / "svm.joblib"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="must never be uploaded"):
        publish.check_allowed(Path("artifacts/svm.joblib"), source, registered=True)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> tuple[Path, Path]:
    """This repository staged with a tiny .skops attributor: (staged folder, the attributor file given)."""
    root = tmp_path_factory.mktemp("publish")
    attributor = tiny_attributor(root / "tiny-svm.skops")
    result = subprocess.run([sys.executable, str(SCRIPT), "--attribution", str(attributor), "--stage-dir",
                             str(root / "space"), "--attribution-licence", "mit"],
                            capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "attribution: tiny-svm (artifacts/tiny-svm.skops)" in result.stdout
    assert "NO attribution model" not in result.stderr
    return root / "space", attributor


def test_staged_app_runs_the_staged_attributor_by_default_from_the_staged_folder_alone(space, real_face, tmp_path):
    folder, attributor = space
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GANTRACE_ATTRIBUTION")}
    env.update(PYTHONPATH=str(folder), GANTRACE_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False")
    result = subprocess.run([sys.executable, "-c", ANALYSE_IN_SPACE, str(real_face)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    staged_sha = sha256_file(folder / "artifacts" / "tiny-svm.skops")
    assert staged_sha == sha256_file(attributor)
    assert out["latent"]["probabilities"] is not None, out["latent"]["reason"]
    assert out["models"]["tiny-svm"] == staged_sha
    assert f"**Attribution model:** tiny-svm (sha256 {staged_sha[:12]}…)" in out["status"]
    assert out["modules"] and all(Path(module).is_relative_to(folder) for module in out["modules"]), \
        [module for module in out["modules"] if not Path(module).is_relative_to(folder)]


def test_staged_registry_pins_the_attributor_and_names_it_the_default(space):
    folder, attributor = space
    registry = json.loads((folder / "artifacts" / "weights.json").read_text())
    entry = next(spec for spec in registry["weights"] if spec["name"] == "tiny-svm")
    assert registry["defaults"] == {"attributor": "tiny-svm"}
    assert entry["kind"] == "local" and entry["path"] == "artifacts/tiny-svm.skops" and entry["licence"] == "mit"
    assert entry["sha256"] == sha256_file(attributor) and "tiny-svm.skops" in entry["origin"]
    assert json.loads((REPO / "artifacts" / "weights.json").read_text())["defaults"] == {"attributor": "ganorigin-svm"}


def test_space_card_names_the_attributor_its_origin_licence_skill_and_closed_set(space):
    folder, attributor = space
    text = (folder / "README.md").read_text()
    header = front_matter(text)
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py" and "hardware" not in header
    section = text[text.index("## Attribution model"):text.index("| weight |")]
    assert "**`tiny-svm`**" in section and sha256_file(attributor) in section
    assert "where it came from: the publisher's file tiny-svm.skops" in section and "licence: mit" in section
    assert "measured skill: accuracy 0.500" in section and "closed set: it knows only `progan`" in section
    assert "open-set rule answers `unknown`" in section


def test_no_pickle_and_no_test_only_package_is_staged(space):
    folder, _ = space
    staged = [path.relative_to(folder) for path in folder.rglob("*") if path.is_file()]
    assert not [path for path in staged if path.suffix.lower() in publish.PICKLE_SUFFIXES | {".pyc"}]
    requirements = (folder / "requirements.txt").read_text().split()
    test_only = {"pytest", "playwright"} | {line.split(">")[0].split("=")[0] for line in
                                             (REPO / "requirements-test.txt").read_text().splitlines()
                                             if line and not line.startswith(("#", "-"))}
    assert requirements and not [line for line in requirements if line.split(">")[0].split("=")[0] in test_only]
    assert not [path for path in staged if path.parts[0] in ("tests", "scripts")]


def test_pickled_attributor_is_refused_in_one_line(tmp_path, capsys):
    pickle = tiny_attributor(tmp_path / "svm.joblib")
    assert publish_space.main(["--attribution", str(pickle)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "pickles are never staged" in error


def test_unconverted_ganorigin_is_refused_naming_the_conversion_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    assert publish_space.main(["--attribution", "ganorigin-svm", "--stage-dir", str(tmp_path / "space")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "not converted on this machine" in error
    assert "python scripts/download_weights.py --name ganorigin-svm --trust-foreign-pickle" in error
    assert not (tmp_path / "space").exists()


def test_converted_ganorigin_replaces_its_registry_entry_with_the_staged_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    converted = tiny_attributor(tmp_path / "attribution" / "ganorigin-svm.skops")
    chosen = publish_space.attributor_for_space("ganorigin-svm")
    assert chosen.name == "ganorigin-svm" and chosen.file == converted
    assert chosen.hub_repo == "HAMIwithHugs/gan-attribution-model" and "not stated" in chosen.licence
    registry = publish.staged_registry(attributor=chosen)
    entries = [spec for spec in registry["weights"] if spec["name"] == "ganorigin-svm"]
    assert [(e["kind"], e["path"], e["sha256"]) for e in entries] == [
        ("local", "artifacts/ganorigin-svm.skops", sha256_file(converted))]
    assert "HAMIwithHugs/gan-attribution-model" in entries[0]["origin"]
    assert "HAMIwithHugs/gan-attribution-model" in front_matter(publish.front_matter(publish.SpaceCard(),
                                                                                     attributor=chosen))["models"]


@pytest.mark.parametrize("skill, text", [
    ({"attribution": {"accuracy": None, "protocol": "not measured by GANTrace"}},
     "not measured (not measured by GANTrace)"),
    (None, "not measured"),
    ({"attribution": {"accuracy": 0.9, "balanced_accuracy": 0.85, "n": 40, "protocol": "held-out"}},
     "accuracy 0.900, balanced accuracy 0.850, on 40 latents (held-out)")])
def test_skill_is_the_artifacts_record_or_not_measured(skill, text):
    assert publish_space.skill_text({"skill": skill} if skill else {}) == text


def test_hub_attributor_is_fetched_and_staged_under_its_repo_name(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read at import; CI sets it
    data = tiny_attributor(tmp_path / "latent_svm.skops").read_bytes()
    with serve_hub({"latent_svm.skops": data}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", endpoint(hub))
        chosen = publish_space.attributor_for_space("hf://me/Face-SVM@v1")
    assert chosen.name == "face-svm" and chosen.file.read_bytes() == data and chosen.hub_repo == "me/Face-SVM"
    assert chosen.origin.startswith("hf://me/Face-SVM@v1") and "revision v1" in chosen.origin
    staged, _ = publish.stage(tmp_path / "space", publish.SpaceCard(), attributor=chosen)
    assert Path("artifacts/face-svm.skops") in staged
    assert "me/Face-SVM" in front_matter((tmp_path / "space" / "README.md").read_text())["models"]


def test_attributor_has_its_own_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "MAX_ATTRIBUTOR_MB", 0.0001)
    chosen = publish.StagedAttributor(name="svm", file=tiny_attributor(tmp_path / "svm.skops"), origin="o",
                                      licence="mit", skill="not measured", open_set="none", description="d",
                                      classes=("progan",))
    with pytest.raises(ValueError, match="over the 0.0001 MB limit"):
        publish.stage(tmp_path / "space", publish.SpaceCard(), attributor=chosen)
