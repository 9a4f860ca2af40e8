"""runners.preflight: every script with --out refuses an unusable output in one line (exit 2) before loading a model,
and a branch the user asked for by a flag that cannot run is an error, not a note."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runners.preflight import OutputError, check_output, require_ready
from runners import batch_scan, evaluate, extract_latents, train_fingerprint, train_svm

UNWRITABLE = Path("/proc/gantrace-preflight-test")  # procfs refuses new files even to root


PROGRAMS = {"scan": batch_scan, "evaluate": evaluate, "extract_latents": extract_latents, "train_svm": train_svm,
            "train_fingerprint": train_fingerprint}


def _exit_code(name: str, argv: list[str]) -> int:
    try:
        return PROGRAMS[name].main(argv)
    except SystemExit as stop:
        return stop.code


# (script, arguments before --out, whether --out is a folder)
SCRIPT_OUTS = [("scan", ["face.png"], False), ("evaluate", ["dataset"], True),
               ("extract_latents", ["dataset"], True), ("train_svm", ["latents"], False),
               ("train_fingerprint", ["dataset"], True)]


@pytest.mark.parametrize("name, before, wants_folder", SCRIPT_OUTS)
def test_every_script_refuses_an_out_of_the_wrong_kind_in_one_line(name, before, wants_folder, tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataset").mkdir()
    wrong = tmp_path / "wrong"
    if wants_folder:
        wrong.write_text("a file where a folder is expected")
    else:
        wrong.mkdir()
    assert _exit_code(name, before + ["--out", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {wrong}: ") and "\n" not in err
    assert ("is a file, not a folder" if wants_folder else "is a folder, not a file") in err


@pytest.mark.parametrize("name, before, wants_folder", SCRIPT_OUTS)
def test_every_script_refuses_an_out_it_cannot_write(name, before, wants_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataset").mkdir()
    out = UNWRITABLE / ("run" if wants_folder else "out.csv")
    assert _exit_code(name, before + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out}: ") and "cannot write in /proc" in err and "\n" not in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write in read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot write in"):
            check_output(folder / "results.csv")
    finally:
        folder.chmod(0o755)


def test_a_new_file_in_a_new_folder_is_accepted_and_nothing_is_created(tmp_path):
    check_output(tmp_path / "new" / "deeper" / "results.csv")
    check_output(tmp_path / "run", folder=True)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_with_another_header_is_refused_untouched(tmp_path):
    other = tmp_path / "other.csv"
    other.write_bytes(b"name,score\nx,1")
    with pytest.raises(OutputError, match="does not start with the header"):
        check_output(other, csv_header=["file", "sha256"])
    assert other.read_bytes() == b"name,score\nx,1"
    check_output(other, csv_header=["name", "score"])


def test_an_output_that_is_its_own_companion_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with pytest.raises(OutputError, match="r.jsonl is also where"):
        check_output(out, companions=[out.with_suffix(".jsonl")])


class _Status:
    def __init__(self, branch: str, ready: bool | None, reason: str | None = None, fix: list[str] | None = None):
        self.branch, self.ready, self.reason, self.fix = branch, ready, reason, fix or []


def test_a_requested_branch_that_cannot_run_exits_2_with_its_reason_and_fix(capsys):
    statuses = [_Status("clip_probe", False, "weights missing"),
                _Status("latent_svm", False, "svm.joblib: refused", ["retrain with scripts/train_svm.py"])]
    require_ready(statuses, "clip_probe", "--attribution", None)
    with pytest.raises(SystemExit) as stop:
        require_ready(statuses, "latent_svm", "--attribution", Path("svm.joblib"))
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --attribution svm.joblib was given but the latent_svm branch cannot run: svm.joblib: "
                   "refused; to fix: retrain with scripts/train_svm.py")
    require_ready([_Status("latent_svm", True)], "latent_svm", "--attribution", Path("svm.joblib"))


def test_evaluate_exits_2_when_the_attribution_it_was_given_cannot_run(tmp_path, capsys, monkeypatch):
    import numpy as np
    from tiny_models import Missing, png_bytes, tiny_pipeline

    import pipeline

    for label in ("real", "stylegan2"):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "a.png").write_bytes(png_bytes(np.full((80, 80, 3), 99, np.uint8)))
    pipe = tiny_pipeline(tmp_path / "models", latent_svm=Missing("latent_svm", "latent-svm", level="face"))
    monkeypatch.setattr(pipeline, "Pipeline", lambda config: pipe)
    argv = [str(tmp_path / "data"), "--out", str(tmp_path / "report"), "--attribution", "svm.joblib",
            "--no-progress"]
    try:
        code = evaluate.main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --attribution svm.joblib was given but the latent_svm branch")
    assert not (tmp_path / "report").exists()
