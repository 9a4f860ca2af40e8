"""scripts/scan.py end to end (its `main`, in this process, so the models load once for the scans): with
--c2pa-trust the signed face is labelled generated in the CSV and the JSONL; without it the evidence says untrusted
and the verdict is exactly what the other branches decide."""

from __future__ import annotations

import json
import shutil

import pytest

from made_files import CHAIN
from program_runs import rows
from runners import batch_scan

# the heavy branches (CLIP, e4e) add minutes where their weights are cached and change nothing tested here
FLAGS = ["--offline", "--device", "cpu", "--dtype", "fp32", "--threads", "1", "--no-progress",
         "--skip-branch", "clip_probe", "--skip-branch", "latent_svm"]


@pytest.fixture
def folder(made, tmp_path, monkeypatch):
    monkeypatch.delenv("GANTRACE_C2PA_TRUST", raising=False)
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(made["signed"], images / "signed.jpg")
    return images


def jsonl(csv_path) -> list[dict]:
    return [json.loads(line) for line in csv_path.with_suffix(".jsonl").read_text().splitlines()]


def test_scan_with_the_anchor_labels_the_signed_face_generated(folder, tmp_path):
    out = tmp_path / "trusted.csv"
    assert batch_scan.main([str(folder), "--out", str(out), "--c2pa-trust", str(CHAIN), *FLAGS]) == 0
    row, = rows(out)
    assert (row["is_fake"], row["label"], row["provenance_validation"]) == ("true", "stylegan2", "trusted")
    record, = jsonl(out)
    assert record["is_fake"] is True and record["evidence"]["provenance"]["details"]["votes_fake"] is True


def test_scan_without_the_anchor_leaves_the_verdict_to_the_other_branches(folder, tmp_path):
    untrusted, skipped = tmp_path / "untrusted.csv", tmp_path / "skipped.csv"
    assert batch_scan.main([str(folder), "--out", str(untrusted), *FLAGS]) == 0
    assert batch_scan.main([str(folder), "--out", str(skipped), "--skip-branch", "provenance", *FLAGS]) == 0
    (with_branch,), (without,) = rows(untrusted), rows(skipped)
    assert with_branch["provenance_validation"] == "untrusted" and without["provenance_validation"] == ""
    for column in ("label", "is_fake", "fake_probability", "p_real", "p_stylegan2", "p_unknown"):
        assert with_branch[column] == without[column]
    record, = jsonl(untrusted)
    assert "signingCredential.untrusted" in record["evidence"]["provenance"]["details"]["content_credentials"][
        "status_codes"]


def test_a_missing_anchor_file_is_one_line_and_exit_2(folder, tmp_path, capsys):
    assert batch_scan.main([str(folder), "--out", str(tmp_path / "x.csv"), "--c2pa-trust",
                            str(tmp_path / "nowhere.pem"), *FLAGS]) == 2
    assert "--c2pa-trust" in capsys.readouterr().err
