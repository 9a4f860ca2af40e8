"""core.int8: int8 layers that compute what their fp32 layers compute, within int8's rounding, on every CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.int8 import Int8Conv2d, Int8Linear, quantize_int8


def _relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    return ((found - expected).abs().mean() / expected.abs().mean()).item()


@pytest.mark.parametrize("stride, padding, kernel, bias", [(1, 1, 3, True), (2, 1, 3, True), (2, 0, 1, False)])
def test_int8_conv_matches_fp32_where_outputs_exceed_the_input_range(stride, padding, kernel, bias):
    """Rectified inputs in [0, ~4] and outputs spread far wider: torch.ao's dynamic conv clips such outputs to the
    input's range (53 % error on this kind of layer), so this is where an int8 conv must prove it returns fp32."""
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 48, kernel, stride=stride, padding=padding, bias=bias).eval()
    conv.weight.data *= 10
    x = torch.relu(torch.randn(2, 64, 20, 20))
    with torch.inference_mode():
        expected = conv(x)
        found = Int8Conv2d(conv)(x)
    assert found.dtype == torch.float32 and found.shape == expected.shape
    assert expected.abs().max() > 2 * x.max()
    assert _relative_error(found, expected) < 0.02


def test_int8_conv_cannot_overflow_on_cpus_without_vnni():
    """Every activation at its top level and every weight at its largest: with 8-bit weights, a pair of products
    overflows int16 on CPUs without VNNI (half the true sum came back on an AVX2 EPYC); 7-bit weights cannot."""
    conv = nn.Conv2d(256, 8, 3, padding=1, bias=False).eval()
    conv.weight.data.fill_(1.0)
    x = torch.ones(1, 256, 6, 6)
    with torch.inference_mode():
        expected, found = conv(x), Int8Conv2d(conv)(x)
    assert torch.allclose(found, expected, rtol=1e-3)
    assert found[0, 0, 3, 3].item() == pytest.approx(256 * 9, rel=1e-3)


def test_int8_conv_keeps_zero_padding_exact_for_negative_inputs():
    """The activation range always includes 0, so padded borders (zeros) quantize to exactly zero."""
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False).eval()
    conv.weight.data.fill_(0.5)
    x = torch.full((1, 8, 5, 5), -2.0)
    with torch.inference_mode():
        expected, found = conv(x), Int8Conv2d(conv)(x)
    assert torch.allclose(found, expected, rtol=1e-3)


def test_int8_conv_accepts_both_memory_layouts():
    torch.manual_seed(1)
    conv = nn.Conv2d(16, 16, 3, padding=1).eval()
    x = torch.randn(2, 16, 9, 9)
    layer = Int8Conv2d(conv)
    with torch.inference_mode():
        assert torch.equal(layer(x), layer(x.contiguous(memory_format=torch.channels_last)))


def test_quantize_int8_swaps_the_named_layers_only_and_refuses_other_kinds():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5),
                          nn.Linear(5, 2)).eval()
    x = torch.randn(3, 3, 4, 4)
    with torch.inference_mode():
        expected = model(x)
    quantize_int8(model, ["0", "3"])
    assert isinstance(model[0], Int8Conv2d) and type(model[3]) is not nn.Linear and type(model[4]) is nn.Linear
    with torch.inference_mode():
        assert _relative_error(model(x), expected) < 0.05
    with pytest.raises(ValueError, match="'1' is a ReLU"):
        quantize_int8(model, ["1"])


@pytest.mark.parametrize("activation, reference", [("none", lambda y: y), ("silu", F.silu), ("gelu", F.gelu)])
def test_int8_linear_matches_fp32_with_its_fused_activation_over_any_leading_dims(activation, reference):
    torch.manual_seed(2)
    linear = nn.Linear(96, 160).eval()
    x = torch.randn(2, 7, 96)
    with torch.inference_mode():
        expected = reference(linear(x))
        found = Int8Linear(linear, activation=activation)(x)
    assert found.shape == (2, 7, 160) and found.dtype == torch.float32
    assert _relative_error(found, expected) < 0.03


def test_int8_linear_factors_move_a_scale_across_the_activation():
    """QuickGELU(y) = silu(1.702 y) / 1.702: the factors must reproduce it exactly up to int8 rounding."""
    torch.manual_seed(3)
    first, second = nn.Linear(64, 256).eval(), nn.Linear(256, 64).eval()
    x = torch.randn(5, 64)
    with torch.inference_mode():
        hidden = first(x)
        expected = second(hidden * torch.sigmoid(1.702 * hidden))
        fused = Int8Linear(second, input_factor=1 / 1.702)(Int8Linear(first, "silu", output_factor=1.702)(x))
    assert _relative_error(fused, expected) < 0.03


def test_int8_linear_cannot_overflow_and_refuses_unknown_activations():
    linear = nn.Linear(512, 4, bias=False).eval()
    linear.weight.data.fill_(1.0)
    x = torch.ones(3, 512)
    with torch.inference_mode():
        assert torch.allclose(Int8Linear(linear)(x), torch.full((3, 4), 512.0), rtol=1e-3)
    with pytest.raises(ValueError, match="'tanh' is not one of"):
        Int8Linear(linear, activation="tanh")


@pytest.mark.parametrize("make_layer, shape", [(lambda: Int8Conv2d(nn.Conv2d(16, 24, 3, padding=1)), (1, 16, 12, 12)),
                                               (lambda: Int8Linear(nn.Linear(32, 40), "gelu"), (1, 9, 32))],
                         ids=["conv", "linear"])
def test_each_sample_is_quantized_on_its_own_range_whatever_its_batch_neighbours(make_layer, shape):
    """A neighbour 100x larger would set a batch-wide scale 100x coarser: the sample's result must not move at all."""
    torch.manual_seed(5)
    layer = make_layer().eval()
    sample = torch.randn(shape)
    neighbours = torch.cat([100 * torch.randn(shape), torch.relu(torch.randn(shape)), -3 * torch.rand(shape)])
    with torch.inference_mode():
        alone = layer(sample)
        first, in_batch = layer(torch.cat([sample, neighbours])), layer(torch.cat([neighbours, sample]))
    assert torch.equal(first[:1], alone) and torch.equal(in_batch[-1:], alone)
