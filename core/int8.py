"""int8 layers for CPUs without bf16: weights stored as int8 once, each sample's activation quantized per call.

Both layers call oneDNN's quantized kernels with an fp32 output: weights per output channel, activations per sample
(uint8, from each sample's own min and max, so no calibration set is needed). Per sample, not per tensor: a scale
taken over the whole batch would make a face's int8 verdict depend on its batch neighbours, `--batch-size` and the
lanes. oneDNN takes one activation scale per call (it refuses per-row scales: "act scale/zp size should be 1"), so
each sample along dim 0 is one kernel call.

Why not torch.ao's dynamic layers: its Conv2d re-quantizes its output to 8 bits on the *input's* scale and zero
point before returning it, so any output outside the input's range is clipped (44-53 % mean relative error on single
convs whose outputs exceed their inputs; torch warns that its accuracy is poor); and its Linear cannot fuse the
activation that follows (CLIP's QuickGELU, unfused, took 15 % of int8 CLIP's time; fused into c_fc, the pair ran
2.5x faster than in fp32 on a 2-core AVX2 EPYC).

Weights use 7 bits (±63): on CPUs without VNNI, oneDNN sums pairs of uint8 x int8 products in int16, and full 8-bit
weights overflowed it (a conv of 255s with weights of 127 returned half of the true sum on that EPYC; a Linear was
10 % off). With 7 bits no pair can overflow, and every CPU computes the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

WEIGHT_LEVELS = 63
ACTIVATION_LEVELS = 255
# oneDNN post-ops an Int8Linear can fuse: (post-op name, algorithm). oneDNN's "swish" is x * sigmoid(x), alpha 1.
ACTIVATIONS = {"none": ("none", ""), "silu": ("swish", ""), "gelu": ("gelu", "none")}

# torch's notice that quantized tensors move to torchao (not a dependency): `quantized_input` makes one only to
# reach the fastest float-to-uint8 conversion (3x a chain of float ops) and returns plain tensors.
warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")


def quantize_int8(model: nn.Module, names: Iterable[str]) -> nn.Module:
    """Replace, in place, the named nn.Linear / nn.Conv2d submodules of an fp32 CPU model by int8 layers.

    Each model picks its own layers by name (a layer whose weight the model reads directly must stay fp32).
    Returns the model for chaining.
    """
    modules = dict(model.named_modules())
    replacements = {}
    for name in names:
        layer = modules.get(name)
        if type(layer) is nn.Linear:
            replacements[name] = Int8Linear(layer)
        elif type(layer) is nn.Conv2d:
            replacements[name] = Int8Conv2d(layer)
        else:
            raise ValueError(f"{name!r} is a {type(layer).__name__}, not an nn.Linear or nn.Conv2d: no int8 layer")
    for name, replacement in replacements.items():
        parent, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(parent), attribute, replacement)
    return model


class Int8Linear(nn.Module):
    """activation(x W'^T + b') in int8 with an fp32 output, where W' = W * input_factor * output_factor and
    b' = b * output_factor.

    The factors let a model move a constant scale across a fused activation: CLIP's QuickGELU is
    x * sigmoid(1.702 x) = silu(1.702 x) / 1.702, so c_fc takes output_factor 1.702 with "silu" and c_proj takes
    input_factor 1 / 1.702 (detector.clip_probe). Per-channel weight scales absorb such factors exactly.
    """

    def __init__(self, linear: nn.Linear, activation: str = "none", input_factor: float = 1.0,
                 output_factor: float = 1.0):
        super().__init__()
        _require_onednn()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        weight = linear.weight.detach().float() * (input_factor * output_factor)
        self.weight_scale, int_weight = _per_channel_int8(weight)
        self.weight_zero_point = torch.zeros(weight.shape[0], dtype=torch.int64)
        self.bias = None if linear.bias is None else linear.bias.detach().float() * output_factor
        self.packed_weight = torch.ops.onednn.qlinear_prepack(int_weight, None)
        self.post_op, self.algorithm = ACTIVATIONS[activation]
        self.in_features, self.out_features, self.activation = linear.in_features, linear.out_features, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features), batch first (dim 0 is the sample; for CLIP's (B, T, C) tokens, each image's T)."""
        samples = x.reshape(x.shape[0] if x.dim() > 1 else 1, -1, self.in_features)
        out = per_sample(samples, lambda quantized, scale, zero_point: torch.ops.onednn.qlinear_pointwise(
            quantized, scale, zero_point, self.packed_weight, self.weight_scale, self.weight_zero_point, self.bias,
            1.0, 0, torch.float32, self.post_op, [], self.algorithm))
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, int8 weights, activation={self.activation}"


class Int8Conv2d(nn.Module):
    """A Conv2d computed in int8 with an fp32 output (see the module docstring for why not torch.ao's)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        _require_onednn()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("Int8Conv2d takes convs with explicit zero padding only")
        self.weight_scale, int_weight = _per_channel_int8(conv.weight.detach().float())
        self.weight_zero_point = torch.zeros(conv.out_channels, dtype=torch.int64)
        self.bias = None if conv.bias is None else conv.bias.detach().float().clone()
        self.geometry = ([*conv.stride], [*conv.padding], [*conv.dilation], conv.groups)
        self.packed_weight = torch.ops.onednn.qconv_prepack(int_weight, self.weight_scale, 1.0, 0, *self.geometry,
                                                            None)
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, conv.out_channels, conv.kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_sample(x.contiguous(memory_format=torch.channels_last),
                          lambda quantized, scale, zero_point: torch.ops.onednn.qconv2d_pointwise(
                              quantized, scale, zero_point, self.packed_weight, self.weight_scale,
                              self.weight_zero_point, self.bias, *self.geometry, 1.0, 0, torch.float32, "none", [], ""))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, int8 weights"


def per_sample(x: torch.Tensor, kernel: Callable[[torch.Tensor, float, int], torch.Tensor]) -> torch.Tensor:
    """`kernel(uint8, scale, zero_point)` on each sample (dim 0) of x quantized on its own range, concatenated:
    a sample's result is then the same whatever else is in its batch."""
    outputs = [kernel(*quantized_input(sample)) for sample in x.split(1)]
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs)


def quantized_input(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """x as uint8 with the scale and zero point that cover its range and 0 (so zero padding stays exact).

    The min/max runs on the flat storage: on a 4-D channels-last tensor the same reduction took 18x longer. Copying
    the quantized values out (int_repr) took 2-4x as long as quantizing them, so they are viewed instead.
    """
    flat = x.permute(0, 2, 3, 1).reshape(-1) if x.dim() == 4 else x.reshape(-1)
    low, high = torch.aminmax(flat)
    low, high = min(low.item(), 0.0), max(high.item(), 0.0)
    scale = (high - low) / ACTIVATION_LEVELS or 1.0
    zero_point = int(round(-low / scale))
    quantized = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)
    # the quint8 storage already is the uint8 tensor the kernels take: view it instead of copying (int_repr)
    as_uint8 = torch.empty(0, dtype=torch.uint8).set_(quantized.untyped_storage(), quantized.storage_offset(),
                                                      quantized.size(), quantized.stride())
    return as_uint8, scale, zero_point


def onednn_int8_available() -> bool:
    """True when this torch has oneDNN's quantized kernels (x86 builds do; some ARM builds do not)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def _require_onednn() -> None:
    if not onednn_int8_available():
        raise RuntimeError("int8 layers need a torch built with oneDNN (x86 CPUs); use --dtype fp32")


def _per_channel_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 7-bit weights, one scale per output channel (dimension 0)."""
    peak = weight.abs().amax(dim=tuple(range(1, weight.dim())))
    scale = (peak / WEIGHT_LEVELS).clamp_min(torch.finfo(torch.float32).tiny)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return scale, torch.round(weight / scale.reshape(shape)).to(torch.int8)
