"""Scanning (batch_scan, behind scripts/scan.py): inputs expand as asked, one row per file (errors too), and an
interrupted scan resumes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runners import batch_scan as scan
import pipeline as P
from program_runs import SCAN, rows
from tiny_models import _tiny_models, png_bytes, tiny_branches, tiny_pipeline, unskilled_pipeline

@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return tiny_pipeline(tmp_path_factory.mktemp("tiny-models"), batch_size=2)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five small images (two in a sub-folder), one corrupt .jpg and a text file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "case"
    (root / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png", "sub/d.png", "sub/e.png"):
        (root / name).write_bytes(png_bytes(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    (root / "notes.txt").write_text("not an image")
    return root


def test_folders_globs_and_files_expand_without_duplicates(folder):
    flat = scan.expand_inputs([str(folder)], recursive=False)
    assert [p.name for p in flat] == ["a.png", "b.png", "broken.jpg", "c.png"]
    deep = scan.expand_inputs([str(folder), str(folder / "a.png")], recursive=True)
    assert [p.name for p in deep] == ["a.png", "b.png", "broken.jpg", "c.png", "d.png", "e.png"]
    globbed = scan.expand_inputs([str(folder / "**" / "*.png"), str(folder / "notes.txt")], recursive=False)
    assert {p.name for p in globbed} == {"a.png", "b.png", "c.png", "d.png", "e.png", "notes.txt"}
    with pytest.raises(FileNotFoundError, match="absent.png"):
        scan.expand_inputs([str(folder / "a.png"), str(folder / "absent.png")], recursive=False)


def test_every_file_gets_a_row_and_a_full_verdict_line_errors_included(pipe, folder, tmp_path):
    files = scan.expand_inputs([str(folder), str(folder / "notes.txt")], recursive=False)
    out = tmp_path / "out" / "results.csv"
    counts, finished = scan.scan(files, out, pipe, progress=False)
    written = rows(out)
    assert finished and [r["file"] for r in written] == [str(f) for f in files]
    by_name = {Path(r["file"]).name: r for r in written}
    assert by_name["broken.jpg"]["error"].startswith(f"{folder / 'broken.jpg'}:")
    assert by_name["notes.txt"]["error"].endswith("not an image file Pillow can read (JPEG, PNG, WebP, BMP, GIF, TIFF)")
    assert by_name["a.png"]["label"] in P.LABELS and by_name["a.png"]["error"] == ""
    assert "no face found" in by_name["a.png"]["warnings"]
    verdicts = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [v["file"] for v in verdicts] == [str(f) for f in files]
    assert "evidence" in verdicts[0] and verdicts[2] == {"schema_version": 2, "file": str(folder / "broken.jpg"),
                                                          "error": by_name["broken.jpg"]["error"]}
    assert counts["error"] == 2


class _StopAfterFirstBatch(scan.StopFlag):
    """Behaves as if Ctrl-C came while the first batch was running."""

    def __init__(self, pipe: P.Pipeline):
        super().__init__()
        original = pipe.analyze

        def analyze(sources, names=None, with_pictures=False):
            self.requested = True
            return original(sources, names, with_pictures)

        self.analyze = analyze


@pytest.mark.parametrize("per_face", [False, True])
def test_a_real_face_no_skilled_branch_votes_on_is_undecided_in_the_csv_the_jsonl_and_the_counts(real_face, tmp_path,
                                                                                               per_face):
    out = tmp_path / "scan.csv"
    counts, finished = scan.scan([real_face], out, unskilled_pipeline(tmp_path / "models"), progress=False,
                                 per_face=per_face)
    assert finished and counts == {"skipped": 0, "undecided": 1}
    [row] = rows(out)
    assert row["label"] == "undecided" and row["is_fake"] == "" and row["p_unknown"] == ""
    assert row["face"] == "0" and "no real-vs-fake detector with the skill to vote ran" in row["warnings"]
    [line] = [json.loads(text) for text in out.with_suffix(".jsonl").read_text().splitlines()]
    assert line["schema_version"] == 2 and line["label"] == "undecided" and line["is_fake"] is None
    assert line["uncertain"][0].startswith("nothing voted on real vs fake")


def test_interrupted_scan_leaves_a_valid_csv_and_resumes_without_redoing_rows(pipe, folder, tmp_path, monkeypatch):
    files = scan.expand_inputs([str(folder)], recursive=True)
    out = tmp_path / "results.csv"
    stop = _StopAfterFirstBatch(pipe)
    monkeypatch.setattr(pipe, "analyze", stop.analyze)
    _, finished = scan.scan(files, out, pipe, progress=False, stop=stop)
    monkeypatch.undo()
    assert not finished and len(rows(out)) == pipe.config.batch_size

    analysed = []
    original = pipe.analyze
    monkeypatch.setattr(pipe, "analyze", lambda sources, names=None, with_pictures=False:
                        analysed.extend(names) or original(sources, names, with_pictures))
    counts, finished = scan.scan(files, out, pipe, progress=False)
    assert finished and counts["skipped"] == pipe.config.batch_size
    assert analysed == [str(f) for f in files[pipe.config.batch_size:]]
    assert [r["file"] for r in rows(out)] == [str(f) for f in files]
    assert len(out.with_suffix(".jsonl").read_text().splitlines()) == len(files)


def test_half_written_last_row_and_orphan_verdict_are_dropped_then_redone(pipe, folder, tmp_path):
    files = scan.expand_inputs([str(folder)], recursive=False)
    out = tmp_path / "results.csv"
    scan.scan(files[:2], out, pipe, progress=False)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(f"{files[2]},deadbeef,rea")
    with open(out.with_suffix(".jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"file": str(files[2]), "error": "half"}) + "\n")
    scan.scan(files, out, pipe, progress=False)
    assert [r["file"] for r in rows(out)] == [str(f) for f in files]
    records = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == [str(f) for f in files]


def test_refuses_to_append_to_a_csv_that_is_not_a_scan(pipe, folder, tmp_path):
    out = tmp_path / "other.csv"
    out.write_text("name,score\nx,1\n")
    with pytest.raises(ValueError, match="does not start with the header"):
        scan.scan(scan.expand_inputs([str(folder)], False), out, pipe, progress=False)


def test_command_line_with_a_missing_path_exits_nonzero_with_one_clear_message(tmp_path):
    result = subprocess.run([sys.executable, str(SCAN), str(tmp_path / "nowhere"), "--out",
                             str(tmp_path / "r.csv")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "nothing to scan at" in result.stderr and "nowhere" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.csv").exists()


def _exit_code(argv: list[str]) -> int:
    try:
        return scan.main(argv)
    except SystemExit as stop:
        return stop.code


def test_an_out_that_is_its_own_jsonl_companion_is_refused_before_anything_is_written(pipe, folder, tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match="companion"):
        scan.scan(scan.expand_inputs([str(folder)], False), out, pipe, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("name, content", [("r.jsonl", None), ("r.jsonl", b"a scan's rows\n"),
                                           ("notes.csv", b"name,score\nx,1")])
def test_command_line_refuses_an_out_it_would_damage_and_leaves_it_untouched(folder, tmp_path, capsys, name,
                                                                               content):
    out = tmp_path / name
    if content is not None:
        out.write_bytes(content)
    assert _exit_code([str(folder / "a.png"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}: ") and "\n" not in err
    assert (out.read_bytes() if content is not None else out.exists()) == (content if content is not None else False)
    assert not out.with_suffix(".jsonl").exists() or out.suffix == ".jsonl"


def test_an_attribution_artifact_that_cannot_be_used_fails_the_run_with_a_real_remedy(folder, tmp_path, capsys,
                                                                                      monkeypatch):
    import joblib

    artifact = tmp_path / "downloaded.joblib"
    joblib.dump({"not": "ours"}, artifact)
    from pipeline.branches import LatentBranch

    encoder = _tiny_models(str(tmp_path / "models"))["e4e"]
    branches = tiny_branches(tmp_path / "models", latent_svm=LatentBranch(encoder=encoder))
    real_pipeline = P.Pipeline
    monkeypatch.setattr(P, "Pipeline", lambda config: real_pipeline(config, branches))
    out = tmp_path / "r.csv"
    assert _exit_code([str(folder / "a.png"), "--out", str(out), "--attribution", str(artifact),
                       "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --attribution {artifact} was given but the latent_svm branch cannot run")
    assert "\n" not in err and "scripts/train_svm.py" in err and not out.exists()
