"""core.atomic, core.arrays, core.checkpoints, core.metrics and cli: the helpers every stage and script shares."""

from __future__ import annotations

import argparse
import json
import stat

import numpy as np
import pytest
import torch
from torch import nn

from runners import cli
from core.arrays import check_rgb, check_rgb_batch
from core.atomic import TEMP_PREFIX, atomic_path, write_json_atomic
from core.checkpoints import StateDictError, load_state_dict_strict
from core.errors import InputError
from core.metrics import classification_metrics


def test_atomic_write_replaces_the_file_whole_and_is_readable_by_others(tmp_path):
    target = tmp_path / "sub" / "doc.json"
    write_json_atomic(target, {"a": 1, "path": tmp_path})
    assert json.loads(target.read_text()) == {"a": 1, "path": str(tmp_path)}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "doc.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"version": 1}
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


def test_rgb_check_names_the_bad_item_of_a_batch_and_what_it_is():
    good = np.zeros((70, 80, 3), dtype=np.uint8)
    assert check_rgb_batch([good, good[::2]])[1].flags["C_CONTIGUOUS"]
    with pytest.raises(ValueError, match=r"^face 6: expected an H×W×3 uint8 RGB array .*got shape \(70, 80, 3\), "
                                         r"dtype float32$"):
        check_rgb_batch([good, good.astype(np.float32)], "face", first_index=5)
    with pytest.raises(ValueError, match="x.png: 80×70 is under the 96-pixel minimum"):
        check_rgb(good, "x.png", min_side=96)
    with pytest.raises(ValueError, match="got list"):
        check_rgb([[0, 0, 0]])


def test_strict_loading_names_the_earliest_wrong_layer_and_loads_nothing_on_error():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    state = {key: value.clone() for key, value in reversed(model.state_dict().items())}  # a file sorted otherwise
    state["1.weight"] = torch.zeros(2, 5)
    state["0.weight"] = torch.zeros(3, 7)
    before = model[0].weight.clone()
    with pytest.raises(StateDictError) as caught:
        load_state_dict_strict(model, state, "ckpt.safetensors")
    assert caught.value.key == "0.weight" and str(caught.value).startswith("ckpt.safetensors: ")
    assert "2 wrong shape(s), first 0.weight has [3, 7] where this architecture needs [3, 4]" in str(caught.value)
    assert torch.equal(model[0].weight, before)
    del state["1.bias"]
    with pytest.raises(StateDictError, match=r"1 missing key\(s\), first 1.bias \[2\]"):
        load_state_dict_strict(model, state, "ckpt")


def test_pipeline_flags_map_onto_the_config_with_device_auto_and_all_cores(monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    parser = argparse.ArgumentParser()
    cli.add_pipeline_arguments(parser)
    args = parser.parse_args(["--batch-size", "3", "--gate-attribution", "--fingerprint", "fp.safetensors",
                              "--attribution", "hf://me/svm@v1", "--skip-branch", "clip_probe"])
    assert args.device == "auto" and args.threads == cli.machine_threads() and not args.no_progress
    config = cli.config_from_args(args, find_faces=False)
    assert (config.batch_size, config.gate_attribution, config.find_faces) == (3, True, False)
    assert config.branch_options == {"fingerprint_net": {"weights": "fp.safetensors"},
                                     "latent_svm": {"artifact": "hf://me/svm@v1"}}
    assert config.disabled_branches == ("clip_probe",)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert cli.config_from_args(args).download is True
    assert cli.config_from_args(parser.parse_args(["--offline"])).download is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.config_from_args(args).download is False
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--batch-size", "0"])
    assert caught.value.code == cli.EXIT_BAD_INPUT


def test_bad_input_becomes_one_line_and_exit_2(capsys):
    def body() -> int:
        raise InputError("data.csv, line 3: expected path,label")

    assert cli.run(body) == 2
    assert capsys.readouterr().err == "error: data.csv, line 3: expected path,label\n"


def test_classification_metrics_do_not_depend_on_the_order_of_the_classes():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=40)
    truth = np.array(["real", "progan", "stylegan2"])[rng.integers(0, 3, 40)]
    unsorted = classification_metrics(truth, probabilities, ["real", "progan", "stylegan2"])
    reordered = classification_metrics(truth, probabilities[:, [1, 2, 0]], ["progan", "stylegan2", "real"])
    for key in ("accuracy", "ece", "brier", "log_loss"):
        assert unsorted[key] == pytest.approx(reordered[key]), key
