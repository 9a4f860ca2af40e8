"""The Space bundle (space_bundle, behind scripts/publish_space.py): exactly the allow-listed files, a valid Space
front matter, nothing secret or large."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gradio
import pytest

from outputs import space_bundle as publish

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "publish_space.py"

SPACE_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


def parse_front_matter(text: str) -> dict:
    """The YAML subset the Space header uses: `key: value` and `key:` followed by `  - item` lines."""
    lines = text.splitlines()
    assert lines[0] == "---", "front matter must open the README"
    end = lines.index("---", 1)
    parsed: dict = {}
    key = None
    for line in lines[1:end]:
        if line.startswith("  - "):
            parsed[key].append(line[4:])
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        parsed[key] = [] if value == "" else value.strip('"')
    return parsed


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
                                           "numpy>=1.26\npytest>=8.0\n")
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


def test_front_matter_is_a_valid_gradio_space_header(fake_repo):
    header = parse_front_matter(publish.readme(publish.SpaceCard(), repo=fake_repo))
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
                                      "data/faces/a.webp", "artifacts/e4e.pt", "artifacts/token"])
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
    header = parse_front_matter(result.stdout)
    assert header["sdk_version"] == gradio.__version__
    listed = [line.split()[-1] for line in result.stdout.split("---\n", 2)[2].splitlines()
              if line.strip() and line.split()[0].replace(",", "").isdigit()]
    assert {"app.py", "pipeline/pipeline.py", "runners/cli.py", "README.md", "requirements.txt",
            "artifacts/weights.json"} <= set(listed)
    assert not any(p.startswith(("tests/", "scripts/", ".git")) or "__pycache__" in p for p in listed)
    assert "dry run: nothing uploaded" in result.stderr
