"""core.device: explicit choices win, bad ones are refused, models are cast (never autocast)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.device import cpu_supports_bf16, prepare_model, select_precision


def test_explicit_cpu_fp32_is_honoured():
    precision = select_precision("cpu", "fp32")
    assert precision.device.type == "cpu" and precision.dtype == torch.float32 and precision.dtype_name == "fp32"


def test_environment_overrides_auto(monkeypatch):
    monkeypatch.setenv("GANTRACE_DEVICE", "cpu")
    monkeypatch.setenv("GANTRACE_DTYPE", "bf16")
    assert select_precision() == select_precision("cpu", "bf16")


def test_auto_on_cpu_picks_bf16_exactly_where_this_cpu_computes_it_natively(monkeypatch):
    monkeypatch.delenv("GANTRACE_DEVICE", raising=False)
    monkeypatch.delenv("GANTRACE_DTYPE", raising=False)
    precision = select_precision("cpu")
    assert precision.device.type == "cpu" and not precision.quantized
    assert precision.dtype == (torch.bfloat16 if cpu_supports_bf16() else torch.float32)


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="fp8"):
        select_precision("cpu", "fp8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        select_precision("cuda", "fp32")


def test_prepare_model_casts_weights_and_sets_eval():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    prepared = prepare_model(model, select_precision("cpu", "bf16"))
    assert not prepared.training and prepared[0].weight.dtype == torch.bfloat16
