"""scripts/source_cv.py's learned candidates on a tiny synthetic face set: the codec-blind recipe with
made-from-real fakes runs every fold for its fixed steps, names its result after the recipe, and reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from runners.source_cv import main
from runners.train_cue import compared_with
from runners.train_residual import main as train_residual


@pytest.fixture()
def face_set(tmp_path):
    """Three sources: JPEG real photos, PNG StyleGAN2 fakes and a same-processing real/ProGAN pair."""
    rng = np.random.default_rng(0)
    rows = ["class,file,repo"]
    for label, repo, extension, count in (("real", "cam", "jpg", 4), ("stylegan2", "sg2", "png", 4),
                                          ("real", "pair", "jpg", 3), ("progan", "pair", "jpg", 3)):
        (tmp_path / label).mkdir(exist_ok=True)
        for index in range(count):
            name = f"{label}/{repo}{index}.{extension}"
            pixels = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name, **({"quality": 80} if extension == "jpg" else {}))
            rows.append(f"{label},{name},{repo}")
    (tmp_path / "provenance.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_codec_blind_candidate_with_made_from_real_runs_every_fold_and_reports(face_set, tmp_path, capsys):
    out = tmp_path / "cv"
    arguments = [str(face_set), "--out", str(out), "--folds", "2", "--steps", "2"]
    assert main([*arguments, "--candidate", "residual", "--recipe", "codec-blind", "--made-from-real"]) == 0
    folder = out / "residual-codecblind-mfr"
    assert sorted(p.name for p in folder.glob("fold-*.npz")) == ["fold-1.npz", "fold-2.npz"]
    state = json.loads((folder / "train-fold-1" / "state.json").read_text())
    assert state["step"] == 2 and state["run"]["made_from_real"] > 0
    assert dict(map(tuple, state["run"]["recipe"]["qualities"])) == {80: 1.0}
    finished = (folder / "fold-1.npz").read_bytes()
    rerun = [str(face_set), "--out", str(out), "--folds", "2", "--steps", "3", "--candidate", "residual",
             "--recipe", "codec-blind", "--made-from-real"]
    assert main(rerun) == 2, "folds trained for 2 steps are not passed off as a 3-step run"
    assert "steps 2 (now 3)" in capsys.readouterr().err and (folder / "fold-1.npz").read_bytes() == finished
    assert main([*arguments, "--report"]) == 0
    assert "| residual-codecblind-mfr (2 steps/fold) |" in (out / "comparison.md").read_text()
    # a shipped cue's model card carries the same side-by-side table
    assert any(line.startswith("| residual-codecblind-mfr (2 steps/fold) |") for line in compared_with(out))
    # the shipped model is the same recipe trained once on every source, for the CV folds' steps
    artifact = tmp_path / "artifact" / "residual-codecblind"
    assert train_residual([str(face_set), "--cv", str(out), "--recipe", "residual-codecblind-mfr",
                           "--out", str(artifact), "--workdir", str(tmp_path / "final")]) == 0
    meta = json.loads((tmp_path / "final" / "state.json").read_text())
    assert meta["step"] == 2 and meta["run"]["images"] == 14 + 7
    card = artifact.with_suffix(".md").read_text()
    assert "--recipe codec-blind --made-from-real --steps 2" in card and "made-from-real fakes" in card


def test_made_from_real_needs_the_codec_blind_recipe(face_set, tmp_path):
    with pytest.raises(SystemExit):
        main([str(face_set), "--out", str(tmp_path / "cv"), "--candidate", "residual", "--made-from-real"])
