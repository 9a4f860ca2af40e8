"""int8 layers for CPUs without bf16: weights stored as int8 once, each activation quantized per call from its range.

Linear layers use torch.ao's dynamic int8 Linear, packed for oneDNN where this torch has it (its kernel ran the
CLIP MLP 1.9x faster than fp32 against 1.75x for fbgemm's, on a 2-core AVX2 EPYC). Its output is fp32.

Conv2d layers do NOT use torch.ao's dynamic Conv2d: that kernel re-quantizes its output to 8 bits on the *input's*
scale and zero point before returning it, so any output outside the input's range is clipped (53 % mean relative
error on one 512-channel 3x3 conv of rectified noise; torch warns that its accuracy is poor). `Int8Conv2d` instead
calls oneDNN's quantized convolution with an fp32 output: weights per output channel, activations per tensor.
Weights use 7 bits (±63): on CPUs without VNNI, oneDNN sums pairs of uint8 x int8 products in int16, and full
8-bit weights overflowed it (a conv of 255s with weights of 127 returned half of the true sum on that EPYC). With 7
bits no pair can overflow, and every CPU computes the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

WEIGHT_LEVELS = 63
ACTIVATION_LEVELS = 255

# torch.ao's notices that quantized tensors and its API move to torchao (not a dependency). `Int8Conv2d` makes a
# quantized tensor only to reach the fastest uint8 conversion (3x a chain of float ops) and returns to plain tensors.
warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")


def quantize_int8(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Replace, in place, the named nn.Linear / nn.Conv2d submodules of an fp32 CPU model by int8 layers.

    Each model picks its own layers by name (a layer whose weight the model reads directly must stay fp32).
    No calibration set is needed: activations are quantized per call. Returns the model for chaining.
    """
    modules = dict(model.named_modules())
    linears, convs = [], []
    for name in names:
        layer = modules.get(name)
        if type(layer) is nn.Linear:
            linears.append(name)
        elif type(layer) is nn.Conv2d:
            convs.append(name)
        else:
            raise ValueError(f"{name!r} is a {type(layer).__name__}, not an nn.Linear or nn.Conv2d: no int8 layer")
    for name in convs:
        parent, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent), attribute, Int8Conv2d(modules[name]))
    if linears:
        _quantize_linears(model, linears)
    return model


class Int8Conv2d(nn.Module):
    """A Conv2d computed in int8 with an fp32 output (see the module docstring for why not torch.ao's)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not onednn_int8_available():
            raise RuntimeError("int8 convolutions need a torch built with oneDNN (x86 CPUs); use --dtype fp32")
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("Int8Conv2d takes convs with explicit zero padding only")
        weight = conv.weight.detach().float()
        tiny = torch.finfo(torch.float32).tiny
        self.weight_scale = (weight.abs().amax(dim=(1, 2, 3)) / WEIGHT_LEVELS).clamp_min(tiny)
        int_weight = torch.round(weight / self.weight_scale[:, None, None, None]).to(torch.int8)
        self.weight_zero_point = torch.zeros(weight.shape[0], dtype=torch.int64)
        self.bias = None if conv.bias is None else conv.bias.detach().float().clone()
        self.geometry = ([*conv.stride], [*conv.padding], [*conv.dilation], conv.groups)
        self.packed_weight = torch.ops.onednn.qconv_prepack(int_weight, self.weight_scale, 1.0, 0, *self.geometry,
                                                            None)
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, conv.out_channels, conv.kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        scale, zero_point = _activation_range(x)
        quantized = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8).int_repr()
        return torch.ops.onednn.qconv2d_pointwise(
            quantized, scale, zero_point, self.packed_weight, self.weight_scale, self.weight_zero_point, self.bias,
            *self.geometry, 1.0, 0, torch.float32, "none", [], "")

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, int8 weights"


def onednn_int8_available() -> bool:
    """True when this torch has oneDNN's quantized convolution (x86 builds do; some ARM builds do not)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def _activation_range(x: torch.Tensor) -> tuple[float, int]:
    """uint8 scale and zero point covering x and 0 (so zero padding is exact).

    The min/max runs on a flat view of the channels-last storage: on the 4-D channels-last tensor the same
    reduction took 18x longer.
    """
    low, high = torch.aminmax(x.permute(0, 2, 3, 1).reshape(-1))
    low, high = min(low.item(), 0.0), max(high.item(), 0.0)
    scale = (high - low) / ACTIVATION_LEVELS or 1.0
    return scale, int(round(-low / scale))


def _quantize_linears(model: nn.Module, names: list[str]) -> None:
    from torch.ao.nn.quantized import dynamic
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with _packing_engine(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig),
                         mapping={nn.Linear: dynamic.Linear}, inplace=True)


@contextmanager
def _packing_engine() -> Iterator[None]:
    """Pack Linear weights for oneDNN when torch has it; the packed weights choose the kernel at run time."""
    engines = torch.backends.quantized.supported_engines
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "onednn" if "onednn" in engines else previous
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous
