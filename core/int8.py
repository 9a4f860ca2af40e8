"""int8 layers for CPUs without bf16: weights stored as int8 once, each sample's activation quantized per call.

Both layers call oneDNN's quantized kernels with an fp32 output: weights per output channel, activations per sample
(uint8, from each sample's own min and max, so no calibration set is needed). Per sample, not per tensor: a scale
taken over the whole batch would make a face's int8 verdict depend on its batch neighbours, `--batch-size` and the
lanes. oneDNN takes one activation scale per call (it refuses per-row scales: "act scale/zp size should be 1"), and
one call per sample was 3.6x slower on e4e (a call at a new scale took a 2x2 conv 1.3 ms, at the scale of the call
before 0.17 ms: oneDNN rebuilds its kernel for each scale). So the batch makes one call at scale 1 and zero point 0,
which returns the exact sums of q·w, and `rescaled` applies each sample's scale and zero point after it; the zero
point's share is the same call on an input of ones (zero padding included). An Int8Linear's activation is then one
pass over the rescaled output (a oneDNN post-op would act before the rescale).

Why not torch.ao's dynamic layers: its Conv2d re-quantizes its output to 8 bits on the *input's* scale and zero
point before returning it, so any output outside the input's range is clipped (44-53 % mean relative error on single
convs whose outputs exceed their inputs; torch warns that its accuracy is poor); and its Linear leaves CLIP's
QuickGELU to three more passes (15 % of int8 CLIP's time), which Int8Linear's factors turn into one silu.

Weights use 7 bits (±63): on CPUs without VNNI, oneDNN sums pairs of uint8 x int8 products in int16, and full 8-bit
weights overflowed it (a conv of 255s with weights of 127 returned half of the true sum on that EPYC; a Linear was
10 % off). With 7 bits no pair can overflow, and every CPU computes the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_LEVELS = 63
ACTIVATION_LEVELS = 255
# what an Int8Linear applies in place to its rescaled output (GELU exact, nn.GELU's default)
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": lambda y: y, "silu": lambda y: F.silu(y, inplace=True), "gelu": torch.ops.aten.gelu_}

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
        bias = torch.zeros(weight.shape[0]) if linear.bias is None else linear.bias.detach().float() * output_factor
        self.packed_weight = torch.ops.onednn.qlinear_prepack(int_weight, None)
        self.in_features, self.out_features, self.activation = linear.in_features, linear.out_features, activation
        self.weight_sums_and_bias = torch.stack([self._sums(torch.ones(1, self.in_features, dtype=torch.uint8))[0],
                                                 bias])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features), batch first (dim 0 is the sample; for CLIP's (B, T, C) tokens, each image's T)."""
        samples = x.reshape(x.shape[0] if x.dim() > 1 else 1, -1, self.in_features)
        quantized, scale, zero_point = quantized_samples(samples)
        sums = self._sums(quantized.view(-1, self.in_features)).view(len(samples), -1, self.out_features)
        out = rescaled(sums, scale, zero_point, self.weight_sums_and_bias, ACTIVATIONS[self.activation])
        return out.reshape(*x.shape[:-1], self.out_features)

    def _sums(self, quantized: torch.Tensor) -> torch.Tensor:
        """Σ q·w per row and output channel (the kernel at scale 1, zero point 0, no bias): `rescaled`'s input."""
        return torch.ops.onednn.qlinear_pointwise(quantized, 1.0, 0, self.packed_weight, self.weight_scale,
                                                  self.weight_zero_point, None, 1.0, 0, torch.float32, "none", [], "")

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
        self.bias = torch.zeros(conv.out_channels) if conv.bias is None else conv.bias.detach().float().clone()
        self.geometry = ([*conv.stride], [*conv.padding], [*conv.dilation], conv.groups)
        self.packed_weight = torch.ops.onednn.qconv_prepack(int_weight, self.weight_scale, 1.0, 0, *self.geometry,
                                                            None)
        self.in_channels, self.out_channels, self.kernel_size = conv.in_channels, conv.out_channels, conv.kernel_size
        self._sums_and_bias: dict[tuple[int, int], torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantized, scale, zero_point = quantized_samples(x.contiguous(memory_format=torch.channels_last))
        out = self._sums(quantized).contiguous(memory_format=torch.channels_last)  # a view of rows needs this layout
        rescaled(_channels_last_rows(out), scale, zero_point, self._weight_sums_and_bias(*x.shape[-2:]))
        return out

    def _sums(self, quantized: torch.Tensor) -> torch.Tensor:
        """Σ q·w per output position (the kernel at scale 1, zero point 0, no bias): `rescaled`'s input."""
        return torch.ops.onednn.qconv2d_pointwise(quantized, 1.0, 0, self.packed_weight, self.weight_scale,
                                                  self.weight_zero_point, None, *self.geometry, 1.0, 0, torch.float32,
                                                  "none", [], "")

    def _weight_sums_and_bias(self, height: int, width: int) -> torch.Tensor:
        """Σ w over each output's window inside the image (zero padding counts no weight) beside the bias, one row
        each in the output's channels-last order; once per input size."""
        if (height, width) not in self._sums_and_bias:
            ones = torch.ones(1, self.in_channels, height, width, dtype=torch.uint8)
            sums = _channels_last_rows(self._sums(ones.contiguous(memory_format=torch.channels_last)))[0]
            self._sums_and_bias[height, width] = torch.stack([sums, self.bias.repeat(len(sums) // len(self.bias))])
        return self._sums_and_bias[height, width]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, int8 weights"


def quantized_samples(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each sample of x (dim 0) as uint8 on its own range (`quantized_input`), in x's shape and memory layout, with
    the samples' scales and zero points (float32): a sample's int8 result then does not depend on its batch."""
    parts = [quantized_input(sample) for sample in x.split(1)]
    quantized = parts[0][0] if len(parts) == 1 else torch.cat([part[0] for part in parts])
    return quantized, torch.tensor([part[1] for part in parts]), torch.tensor([float(part[2]) for part in parts])


def rescaled(sums: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, weight_sums_and_bias: torch.Tensor,
             activation: Callable[[torch.Tensor], torch.Tensor] = ACTIVATIONS["none"]) -> torch.Tensor:
    """Σ q·w of each sample (dim 0 of `sums`, made at scale 1 and zero point 0) → Σ scale·(q − zero_point)·w + bias,
    in place, with the sample's own scale and zero point: bias + scale·Σ q·w − scale·zero_point·Σ w, then the
    in-place `activation`.

    One sample at a time: an op over the whole batch splits its work among threads at points that move with the
    batch size, and the elements at a split may be rounded differently (vector vs scalar code); per sample, every
    op sees the same shape alone or in any batch, so the sample's result is bit-identical."""
    weight_sums, bias = weight_sums_and_bias
    for block, sample_scale, sample_zero_point in zip(sums, scale.tolist(), zero_point.tolist()):
        torch.add(bias, block, alpha=sample_scale, out=block)
        activation(block.add_(weight_sums, alpha=-sample_scale * sample_zero_point))
    return sums


def _channels_last_rows(out: torch.Tensor) -> torch.Tensor:
    """A channels-last (B, C, H, W) tensor as the (B, H·W·C) view of its storage, one row per sample."""
    return out.permute(0, 2, 3, 1).reshape(out.shape[0], -1)


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
