"""Encoder4Editing (e4e; Tov et al., SIGGRAPH 2021): an FFHQ-aligned face -> StyleGAN2 W+ (18x512), in one file.

The network is the official `Encoder4Editing` (github.com/omertov/encoder4editing @99ea5057) rebuilt from its
description with the same module names, so the official checkpoint's
`encoder.*` weights load with a strict key and shape check and no custom CUDA ops are needed:

* trunk: the IR-SE-50 body of InsightFace (an input layer, then 3/4/14/3 `BottleneckIRSE` units of widths
  64/128/256/512; each stage's first unit downsamples by 2 in its *second* 3x3 conv);
* a small FPN: p2 = up(c3) + latlayer1(c2), p1 = up(p2) + latlayer2(c1), bilinear with `align_corners=True`;
* 18 `GradualStyleBlock` heads (strided 3x3 convs down to 1x1, then an `EqualLinear`): heads 0-2 read c3 (16x16),
  3-6 read p2 (32x32), 7-17 read p1 (64x64);
* W+ assembly: row 0 = w0 = styles[0](c3); row i >= 1 = w0 + styles[i](features). No normalisation.

The latent_avg convention (the question users ask most, e4e #57, pSp #70)
---------------------------------------------------------------------------
The encoder network never adds the average latent: `Encoder4Editing.forward(x)` returns *offsets* from it, exactly
like the official `net.encoder(x)`. StyleGAN2's synthesis network expects `offsets + latent_avg`, which is what
the official `pSp.forward` and `scripts/inference.py` feed the decoder when the checkpoint was trained with
`start_from_latent_avg` (the FFHQ release was).

* `encode(faces)` (default `add_latent_avg=True`) returns that final W+ = offsets + latent_avg: the latent that
  regenerates the face in StyleGAN2 and the one to use for editing or comparison with other W+ sources.
* `encode(faces, add_latent_avg=False)` returns the raw offsets, which is what GANOrigin extracted and trained its
  SVM on. The two differ by the same constant 18x512 array for every face, so a standardised linear model learns
  the same decision either way; but latents of the two kinds must never be mixed in one data set.
* `latent_avg` is a buffer of shape (n_styles, style_dim) = (18, 512). The release stores StyleGAN2's 512-d mean
  w repeated 18 times (all rows equal). It is zeros for `random_init` and for checkpoints trained without
  `start_from_latent_avg` (whose raw output already is W+). It is not part of `state_dict()`, because the official
  checkpoint keeps it outside the encoder's weights, and it stays float32 even when the weights are bf16 (bf16
  would round the mean latent by up to 0.4 %).

Preprocessing is the official test transform: resize to 256x256 with PIL bilinear (aspect not kept; torchvision's
`Resize` on a PIL image calls exactly this), scale to [0, 1], normalise with mean 0.5 / std 0.5 to [-1, 1]. The
face must already be FFHQ-aligned (`encoder.align`); unaligned crops invert badly (e4e #2, #70).

On CPU the weights are cast to bf16 (never autocast) and kept channels-last: oneDNN's channels-last bf16
convolutions are what make the 512-channel heads fast on CPUs with AMX / AVX512-BF16. With `--dtype int8` (CPUs
without bf16) every convolution but the squeeze-and-excitation gates runs in int8 (`quantize_e4e_int8`); batch
norms, PReLUs, the gates and the EqualLinear layers stay fp32.
"""

from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.arrays import check_rgb_batch
from core.checkpoints import StateDictError, check_state_dict, expected_shapes
from core.device import Precision, prepare_model, select_precision
from core.int8 import quantize_int8
from core.weights import load_registry, names_a_file, resolve, sha256_file, weight_sha256

REGISTRY_NAME = "e4e-ffhq"
CHECKPOINT_PREFIX = "encoder."
ENCODER_TYPE = "Encoder4Editing"


class CheckpointError(StateDictError):
    """Not an e4e checkpoint this architecture can load; the message names the source and the first bad key."""


@dataclass(frozen=True)
class E4EConfig:
    """Architecture of the encoder; `ffhq()` is the released model, `tiny()` the same code path for tests.

    The three feature maps the heads read are the outputs of stages 2, 3 and 4, so there are always four stages.
    Heads [0, coarse_ind) read c3, [coarse_ind, middle_ind) read p2, the rest read p1; a head reading an S x S map
    has log2(S) strided convs (4/5/6 at 256 input).
    """

    stage_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    stage_units: tuple[int, int, int, int] = (3, 4, 14, 3)
    se_reduction: int = 16
    head_channels: int = 512
    style_dim: int = 512
    n_styles: int = 18
    coarse_ind: int = 3
    middle_ind: int = 7
    input_size: int = 256

    def __post_init__(self) -> None:
        if len(self.stage_channels) != 4 or len(self.stage_units) != 4 or min(self.stage_units) < 1:
            raise ValueError("E4EConfig needs exactly four stages, each with at least one unit")
        if any(width % self.se_reduction for width in self.stage_channels):
            raise ValueError(f"every stage width must be divisible by se_reduction={self.se_reduction}")
        if not 1 <= self.coarse_ind < self.middle_ind < self.n_styles:
            raise ValueError("E4EConfig needs 1 <= coarse_ind < middle_ind < n_styles")
        coarse_size = self.input_size // 16
        if self.input_size % 16 or coarse_size < 2 or coarse_size & (coarse_size - 1):
            raise ValueError("input_size must be 16 times a power of two (the heads halve the maps down to 1x1)")

    @classmethod
    def ffhq(cls) -> E4EConfig:
        """The released FFHQ encoder: IR-SE-50, 18 heads of width 512 (267,136,704 parameters)."""
        return cls()

    @classmethod
    def tiny(cls) -> E4EConfig:
        """A few-second test model: 5 narrow units, 32-wide heads, 16-d styles.

        It keeps all 18 heads and the 256 input, so the head split (3/4/11), the conv counts (4/5/6), the FPN and
        the checkpoint's `stylegan_size=1024` rule are exercised exactly as in the full model. Stage widths are all
        different so every stage starts with a conv shortcut except the first, as in the full model.
        """
        return cls(stage_channels=(16, 32, 48, 64), stage_units=(1, 1, 2, 1), head_channels=32, style_dim=16)

    @property
    def tap_units(self) -> tuple[int, int, int]:
        """Body indices whose outputs are c1, c2, c3: the last unit of stages 2, 3 and 4 (6, 20, 23 in IR-SE-50)."""
        ends = np.cumsum(self.stage_units) - 1
        return int(ends[1]), int(ends[2]), int(ends[3])

    def head_spatial(self, index: int) -> int:
        """Side of the feature map head `index` reads: c3, p2 or p1."""
        if index < self.coarse_ind:
            return self.input_size // 16
        if index < self.middle_ind:
            return self.input_size // 8
        return self.input_size // 4


class SEModule(nn.Module):
    """Squeeze-and-excitation: rescales each channel by a gate computed from all channels' global averages.

    fc1/fc2 are bias-free 1x1 convs, as in the checkpoint; on the pooled 1x1 map they are linear layers, so they
    run as `F.linear` on the same weights (a oneDNN 1x1-conv call on a 1x1 map cost 2-50x the matmul here).
    """

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3))
        hidden = torch.relu(F.linear(squeezed, self.fc1.weight.flatten(1)))
        gate = torch.sigmoid(F.linear(hidden, self.fc2.weight.flatten(1)))
        return x * gate[:, :, None, None]


class Subsample(nn.Module):
    """The official shortcut `MaxPool2d(kernel_size=1, stride)` when widths match: identity or every 2nd pixel."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.stride == 1 else x[:, :, ::self.stride, ::self.stride]


class BottleneckIRSE(nn.Module):
    """InsightFace's improved residual unit with SE: BN-conv-PReLU-conv(stride)-BN-SE, plus a shortcut.

    The stride sits on the second 3x3 conv. The shortcut is parameter-free (the official MaxPool(1, stride): identity or
    2x subsampling) when the width does not change, else a strided 1x1 conv + BN. No activation after the sum.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, se_reduction: int):
        super().__init__()
        if in_channels == out_channels:
            self.shortcut_layer = Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            SEModule(out_channels, se_reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class EqualLinear(nn.Module):
    """StyleGAN2's equalised-learning-rate linear layer: the stored weight is scaled by lr_mul/sqrt(in_dim) at run time.

    The scale is a Python float, not a checkpoint entry; the stored weights are ~N(0, 1), so loading them into a
    plain `nn.Linear` would give outputs sqrt(512) = 22.6x too large. It is applied to the input, (x*s)W^T = x(sW)^T,
    which scales B x 512 values per call instead of the 512 x 512 weight.
    """

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.scale, self.weight, self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    """One W+ row: log2(spatial) stride-2 3x3 convs (LeakyReLU 0.01) shrink the map to 1x1, an EqualLinear maps it."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, spatial: int):
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(int(math.log2(spatial))):
            layers += [
                nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, stride=2, padding=1),
                nn.LeakyReLU(negative_slope=0.01, inplace=True),
            ]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_channels, style_dim, lr_mul=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).flatten(1))


def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: resize `x` to the lateral map's size (bilinear, align_corners=True as e4e) and add it."""
    return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class Encoder4Editing(nn.Module):
    """The e4e encoder: a normalised 256x256 face -> W+ offsets from latent_avg (see the module docstring)."""

    def __init__(self, config: E4EConfig | None = None):
        super().__init__()
        self.config = config = config or E4EConfig.ffhq()
        widths = config.stage_channels
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.PReLU(widths[0]),
        )
        units = []
        in_channels = widths[0]
        for out_channels, num_units in zip(widths, config.stage_units):
            for index in range(num_units):
                units.append(BottleneckIRSE(in_channels, out_channels, 2 if index == 0 else 1, config.se_reduction))
                in_channels = out_channels
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(
            GradualStyleBlock(widths[3], config.head_channels, config.style_dim, config.head_spatial(index))
            for index in range(config.n_styles)
        )
        self.latlayer1 = nn.Conv2d(widths[2], widths[3], kernel_size=1)
        self.latlayer2 = nn.Conv2d(widths[1], widths[3], kernel_size=1)
        self.register_buffer("latent_avg", torch.zeros(config.n_styles, config.style_dim), persistent=False)
        self.weights_sha256: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x 256 x 256 in [-1, 1] -> B x n_styles x style_dim offsets (latent_avg NOT added, as officially)."""
        taps = self.config.tap_units
        x = self.input_layer(x)
        tapped = []
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in taps:
                tapped.append(x)
        c1, c2, c3 = tapped
        w0 = self.styles[0](c3)
        rows = [w0]
        features = c3
        for index in range(1, self.config.n_styles):
            if index == self.config.coarse_ind:
                p2 = _upsample_add(c3, self.latlayer1(c2))
                features = p2
            elif index == self.config.middle_ind:
                features = _upsample_add(p2, self.latlayer2(c1))
            rows.append(w0 + self.styles[index](features))
        return torch.stack(rows, dim=1)

    def encode(self, faces: Sequence[np.ndarray], batch_size: int = 8, add_latent_avg: bool = True) -> np.ndarray:
        """Aligned RGB uint8 faces (any size) -> float32 N x n_styles x style_dim; W+ by default, offsets if not."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        config = self.config
        outputs = [np.zeros((0, config.n_styles, config.style_dim), dtype=np.float32)]
        with torch.inference_mode():
            for start in range(0, len(faces), batch_size):
                batch = preprocess(faces[start:start + batch_size], config.input_size, first_index=start)
                w = self(self.network_input(batch)).float()
                if add_latent_avg:
                    w = w + self.latent_avg.float()
                outputs.append(w.cpu().numpy())
        return np.concatenate(outputs)

    def network_input(self, batch: np.ndarray) -> torch.Tensor:
        """A `preprocess`ed batch as `forward` takes it: on the weights' device, in their dtype (bf16 weights refuse
        fp32 inputs), channels-last like the weights; for every caller of the network, not only `encode`."""
        parameter = next(self.parameters())
        x = torch.from_numpy(batch).to(parameter.device, parameter.dtype)
        return x.contiguous(memory_format=torch.channels_last)

    @classmethod
    def random_init(cls, config: E4EConfig | None = None, seed: int = 0,
                    precision: Precision | None = None) -> Encoder4Editing:
        """Random weights (PyTorch's default init, N(0,1) EqualLinear), reproducible from `seed`: tests
        (`E4EConfig.tiny()`), benchmarks; the FFHQ architecture by default."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config or E4EConfig.ffhq())
        return _prepared(model, precision)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = REGISTRY_NAME, precision: Precision | None = None,
                        download: bool = False, config: E4EConfig | None = None) -> Encoder4Editing:
        """The encoder from an official-layout e4e training checkpoint (e.g. e4e_ffhq_encode.pt): by registry name
        (default: the released FFHQ encoder, verified; WeightUnavailableError when missing) or path.

        `config` is the architecture the file must match exactly (default: the FFHQ release).
        """
        config = config or E4EConfig.ffhq()
        if not names_a_file(name_or_path):
            path = resolve(str(name_or_path), download=download)
            return cls._from_file(path, precision, config, weight_sha256(str(name_or_path), path))
        path = Path(name_or_path)
        if not path.is_file():
            raise CheckpointError(str(path), "no such checkpoint file")
        return cls._from_file(path, precision, config, sha256_file(path))

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: Mapping, precision: Precision | None = None,
                             config: E4EConfig | None = None, source: str = "<checkpoint dict>",
                             weights_sha256: str | None = None) -> Encoder4Editing:
        """Build the encoder from an already-loaded checkpoint dict; the one loader behind every entry point."""
        config = config or E4EConfig.ffhq()
        state, latent_avg = encoder_weights_from_checkpoint(checkpoint, config, source)
        with torch.device("meta"):
            model = cls(config)
        model.load_state_dict(state, strict=True, assign=True)
        model.latent_avg = latent_avg
        model.weights_sha256 = weights_sha256
        return _prepared(model, precision)

    @classmethod
    def _from_file(cls, path: Path, precision: Precision | None, config: E4EConfig, sha256: str) -> Encoder4Editing:
        checkpoint = _load_checkpoint_file(path, sha256)
        return cls.from_checkpoint_dict(checkpoint, precision, config, source=str(path), weights_sha256=sha256)


def preprocess(faces: Sequence[np.ndarray], input_size: int = 256, first_index: int = 0) -> np.ndarray:
    """The official e4e test transform on a batch: PIL bilinear resize, /255, (x - 0.5)/0.5 -> N x 3 x S x S float32."""
    faces = check_rgb_batch(faces, "face", first_index=first_index)
    batch = np.empty((len(faces), 3, input_size, input_size), dtype=np.float32)
    for offset, face in enumerate(faces):
        if face.shape[:2] != (input_size, input_size):
            face = np.asarray(Image.fromarray(face).resize((input_size, input_size), Image.Resampling.BILINEAR))
        scaled = face.astype(np.float32) / np.float32(255)
        batch[offset] = ((scaled - np.float32(0.5)) / np.float32(0.5)).transpose(2, 0, 1)
    return batch


def encoder_weights_from_checkpoint(checkpoint: Mapping, config: E4EConfig,
                                    source: str = "<checkpoint dict>") -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Check an official-layout checkpoint and return (encoder state dict without prefix, latent_avg float32).

    The layout is the e4e trainer's: `state_dict` with `encoder.*` and `decoder.*` keys (the decoder is ignored),
    `opts` (the training options) and `latent_avg`. Keys and shapes must match `config` exactly; the error names
    the first missing, unexpected and wrong-shaped key.
    """
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        found = list(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(source, "not an e4e training checkpoint: expected a dict with 'state_dict', 'opts' "
                                      f"and 'latent_avg', found {found}")
    start_from_latent_avg = _check_opts(checkpoint.get("opts"), config, source)
    state = {key[len(CHECKPOINT_PREFIX):]: value for key, value in checkpoint["state_dict"].items()
             if key.startswith(CHECKPOINT_PREFIX)}
    with torch.device("meta"):
        expected = expected_shapes(Encoder4Editing(config))
    check_state_dict(state, expected, source, "encoder weights", CHECKPOINT_PREFIX, CheckpointError)
    if start_from_latent_avg:
        latent_avg = _checked_latent_avg(checkpoint.get("latent_avg"), config, source)
    else:
        latent_avg = torch.zeros(config.n_styles, config.style_dim)
    return state, latent_avg


def _check_opts(opts: object, config: E4EConfig, source: str) -> bool:
    """Refuse checkpoints of other encoders or generator sizes; return opts.start_from_latent_avg."""
    if not isinstance(opts, Mapping):
        raise CheckpointError(source, "has no 'opts' dict (the training options), so it cannot be confirmed to be "
                                      "an e4e checkpoint")
    missing = [name for name in ("encoder_type", "stylegan_size", "start_from_latent_avg") if name not in opts]
    if missing:
        raise CheckpointError(source, f"opts lacks {', '.join(missing)}; not an e4e training checkpoint")
    if opts["encoder_type"] != ENCODER_TYPE:
        raise CheckpointError(source, f"opts.encoder_type is {opts['encoder_type']!r}, but this module implements "
                                      f"{ENCODER_TYPE!r} (a pSp or ReStyle checkpoint?); use e4e_ffhq_encode.pt")
    size = opts["stylegan_size"]
    if not isinstance(size, int) or size < 4 or 2 * math.log2(size) - 2 != config.n_styles:
        raise CheckpointError(source, f"opts.stylegan_size is {size!r}, but this encoder has {config.n_styles} "
                                      "styles, which needs a StyleGAN2 of size 2^((n_styles + 2) / 2) "
                                      "(1024 for 18 styles)")
    return bool(opts["start_from_latent_avg"])


def _checked_latent_avg(latent_avg: object, config: E4EConfig, source: str) -> torch.Tensor:
    """latent_avg as (n_styles, style_dim) float32; a single 512-d row is repeated, as pSp does when it builds it."""
    rows, dim = config.n_styles, config.style_dim
    if not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(source, "opts.start_from_latent_avg is true but the checkpoint has no 'latent_avg' "
                                      "tensor; it cannot be recomputed without running StyleGAN2's mapping network")
    if tuple(latent_avg.shape) in ((dim,), (1, dim)):
        warnings.warn(f"{source}: latent_avg has shape {list(latent_avg.shape)}; repeating it to [{rows}, {dim}]",
                      stacklevel=3)
        latent_avg = latent_avg.reshape(1, dim).repeat(rows, 1)
    if tuple(latent_avg.shape) != (rows, dim):
        raise CheckpointError(source, f"latent_avg has shape {list(latent_avg.shape)}, expected [{rows}, {dim}]")
    return latent_avg.detach().to(torch.float32).clone()


def _load_checkpoint_file(path: Path, sha256: str) -> dict:
    """torch.load with weights_only=True; full unpickling only for the registry-pinned release file.

    The e4e trainer saves tensors, dicts and plain option values, which the safe loader reads. If a file needs
    arbitrary Python objects, unpickling it could run code, so that is allowed only when its sha256 is the one the
    registry pins for e4e-ffhq (a known file); any other such file is refused with the reason.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise CheckpointError(str(path), f"cannot be read as a PyTorch checkpoint ({err})") from None
        lines = [line for line in str(err).splitlines() if "WeightsUnpickler error:" in line]
        reason = lines[0].split("WeightsUnpickler error:")[1].split(". ")[0].strip() if lines else "unknown object"
    except Exception as err:  # noqa: BLE001 - torch.load reports corrupt files with many exception types
        raise CheckpointError(str(path), f"cannot be read as a PyTorch checkpoint ({type(err).__name__}: {err}); "
                                         "is the download truncated?") from None
    if sha256 != load_registry()[REGISTRY_NAME].sha256:
        raise CheckpointError(str(path), f"holds Python objects beyond tensors and plain values ({reason}); "
                                         "refusing to unpickle an unverified file, because unpickling can run code")
    warnings.warn(f"{path}: safe (weights_only) loading failed ({reason}); the file's sha256 is the one pinned "
                  f"for {REGISTRY_NAME}, so it is unpickled fully", stacklevel=3)
    return torch.load(path, map_location="cpu", weights_only=False)


def _prepared(model: Encoder4Editing, precision: Precision | None) -> Encoder4Editing:
    """Cast to the chosen device/dtype in channels-last layout, keeping latent_avg float32."""
    precision = precision or select_precision()
    latent_avg = model.latent_avg.to(torch.float32)
    model = prepare_model(model, precision, channels_last=True)
    model.latent_avg = latent_avg.to(precision.device)
    return quantize_e4e_int8(model) if precision.quantized else model


def quantize_e4e_int8(model: Encoder4Editing) -> Encoder4Editing:
    """The fp32 encoder with every convolution in int8 (`core.int8.Int8Conv2d`), except the SE gates' 1x1 convs.

    The gates run as `F.linear` on their conv weights (SEModule), so they stay fp32; they are < 0.01 % of the FLOPs.
    On the closed-form fixture weights (tests/data) this moves W+ by 3.5 % of its scale on average (max 21 %),
    against 0.6 % (max 4.9 %) for the fine heads alone; but the fine heads are 48.9 % of e4e's 145 GFLOP per face,
    which caps their gain under 1.96x on any CPU, and all convs ran 1.6x faster than fp32 on a 2-core AVX2 EPYC
    against 1.3x for the fine heads (README, "Measured").
    """
    return quantize_int8(model, int8_conv_names(model))


def int8_conv_names(model: Encoder4Editing) -> list[str]:
    """The convs `quantize_e4e_int8` makes int8: all but the SE gates' 1x1 convs, which SEModule reads directly."""
    gates = {name for name, layer in model.named_modules() if isinstance(layer, SEModule)}
    return [name for name, layer in model.named_modules()
            if isinstance(layer, nn.Conv2d) and name.rpartition(".")[0] not in gates]
