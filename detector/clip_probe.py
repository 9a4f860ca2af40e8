"""UniversalFakeDetect-style detector: a frozen CLIP ViT-L/14 image embedding through a linear probe gives P(fake).

Parity with UFD (Ojha et al., CVPR 2023; github.com/WisconsinAIVision/UniversalFakeDetect) decides every choice
here:

* the feature is the 768-d *projected* CLIP image embedding, not L2-normalised, from OpenAI's weights built as
  open_clip `ViT-L-14-quickgelu` (plain `ViT-L-14` builds GELU and gives different features);
* the probe is `nn.Linear(768, 1)` loaded from UFD's `fc_weights.pth`; P(fake) = sigmoid(logit), real=0 / fake=1;
* preprocessing is UFD's evaluation transform: a centre crop of 224x224 at native resolution (no resize), then
  CLIP mean/std normalisation. The score therefore looks at the central 224 pixels only: a 1024-px face is judged
  on a nose-and-eyes patch, a 256-px face on almost all of it.

Images under 224 px on a side are zero-padded, as torchvision's CenterCrop does inside UFD: the border is black
(pixel 0) *before* normalisation, so it enters the network as strongly negative values. That keeps scores equal
to UFD's own evaluation, but the probe never saw such borders in training (UFD trains on 256-px resizes), so
scores of small images are less trustworthy. This module does not warn about it: the caller knows the image size
and decides what to tell the user.

Optional multi-crop (`num_crops` > 1) adds fixed windows (corners, then edge midpoints) for large images and
averages over them. Because the probe is linear, averaging the crops' logits equals the logit of the averaged
embedding, so `features` returns crop-averaged embeddings and both paths agree exactly.

Only the visual tower is kept: the text tower (about a third of CLIP) is dropped right after creation.
Weights are cast to the chosen dtype (bf16 on CPUs with AMX/AVX512-BF16: ~5x faster than fp32, measured 6.7 vs
1.35 img/s); the probe
itself stays in fp32 so the final 768-term dot product is not rounded to bf16's 8-bit mantissa.
Batch images where possible: with bf16 on CPU, oneDNN re-packs each weight matrix on every call, which at one
image (257 tokens) made a ViT-L linear layer ~4x slower per image than at eight.

With `--dtype int8` (CPUs without bf16) every Linear of the visual tower holds int8 weights, including the
attention projections: `nn.MultiheadAttention` uses its weights directly, so each one is first rebuilt as two
plain Linear layers around `scaled_dot_product_attention` (`quantize_visual_int8`), and each MLP's QuickGELU becomes
one silu pass of its first int8 layer (`_fuse_mlp_int8`). The patch embedding, the layer norms, the attention products and
the probe stay fp32.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn

from core.arrays import check_rgb
from core.checkpoints import StateDictError, check_state_dict, expected_shapes
from core.device import Precision, prepare_model, select_precision
from core.int8 import Int8Linear, quantize_int8
from core.probability import most_probable
from core.weights import names_a_file, resolve, sha256_file, weight_sha256
from detector.crops import ANCHORS, fixed_crops, pad_to

CLIP_WEIGHTS = "clip-vit-l14-openai"
PROBE_WEIGHTS = "ufd-probe"
CLASSES = ("real", "fake")

# OpenAI CLIP's training statistics, which UFD uses for CLIP backbones (ImageNet stats only for Imagenet:* archs).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
QUICK_GELU_SLOPE = 1.702  # QuickGELU(y) = y * sigmoid(1.702 y), OpenAI CLIP's activation

TINY_MODEL_NAME = "gantrace-tiny-vit"
# A real open_clip ViT, just small: 224 px in 32-px patches (49 tokens), 2 blocks of width 64, QuickGELU.
# The text tower is minimal because it is dropped after creation anyway.
TINY_MODEL_CONFIG = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


class ProbeFormatError(StateDictError):
    """A probe file that is not an `nn.Linear(D, 1)` state dict matching this backbone; names file and key."""


@dataclass(frozen=True)
class ClipProbeConfig:
    """How the detector is built and fed.

    `batch_size` counts crops per forward pass (so memory is bounded whatever `num_crops` is).
    `crop_size` other than the backbone's 224 makes open_clip interpolate the position embedding: allowed for
    experiments, but no longer UFD. `embed_dim` overrides the backbone's embedding width (None: its own), e.g.
    768 on the tiny ViT so that UFD's probe fits it.
    """

    model_name: str = "ViT-L-14-quickgelu"
    crop_size: int = 224
    num_crops: int = 1
    batch_size: int = 8
    embed_dim: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.num_crops <= len(ANCHORS):
            raise ValueError(f"num_crops must be between 1 and {len(ANCHORS)}, got {self.num_crops}")
        if self.crop_size < 1 or self.batch_size < 1:
            raise ValueError(f"crop_size and batch_size must be positive, got {self.crop_size}, {self.batch_size}")

    @classmethod
    def tiny(cls) -> ClipProbeConfig:
        """A 2-block ViT built by the same code as the real one, for tests (`replace(..., embed_dim=768)` fits
        UFD's probe)."""
        return cls(model_name=TINY_MODEL_NAME)


def normalise(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 crops → float32 N×3×H×W with CLIP mean/std, the same float ops as ToTensor + Normalize."""
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return pixels.sub(mean).div(std).contiguous()


class ClipProbe(nn.Module):
    """CLIP visual tower + linear probe; P(fake) for batches of RGB uint8 images."""

    def __init__(self, visual: nn.Module, config: ClipProbeConfig, precision: Precision):
        super().__init__()
        self.config = config
        self.precision = precision
        self.visual = prepare_model(visual, precision)
        if precision.quantized:
            self.visual = quantize_visual_int8(self.visual)
        self.fc = nn.Linear(visual.output_dim, 1).to(precision.device)
        self.weights_sha256: dict[str, str] = {}
        self.classes_ = CLASSES
        self.eval()

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = PROBE_WEIGHTS, precision: Precision | None = None,
                        download: bool = False, config: ClipProbeConfig | None = None) -> ClipProbe:
        """UFD's detector: the registry's OpenAI CLIP tower and a probe, by registry name (default: UFD's
        fc_weights.pth) or the path of a probe file of one's own; WeightUnavailableError when a weight is missing."""
        clip_path = resolve(CLIP_WEIGHTS, download=download)
        probe_path, probe_name = _probe_file(name_or_path, download)
        model = cls._build(config or ClipProbeConfig(), precision, pretrained=clip_path, seed=0)
        model.weights_sha256[CLIP_WEIGHTS] = weight_sha256(CLIP_WEIGHTS, clip_path)
        model.load_probe(probe_path, name=probe_name)
        return model

    @classmethod
    def random_init(cls, config: ClipProbeConfig | None = None, seed: int = 0,
                    precision: Precision | None = None) -> ClipProbe:
        """The config's architecture with seeded random weights: benchmarks, tests (`ClipProbeConfig.tiny()`) and
        the benchmark fallback when real weights are missing."""
        return cls._build(config or ClipProbeConfig(), precision, pretrained=None, seed=seed)

    @classmethod
    def _build(cls, config: ClipProbeConfig, precision: Precision | None, pretrained: Path | None,
               seed: int) -> ClipProbe:
        """Create the open_clip model, keep only its visual tower, add the probe; seeded without touching global RNG."""
        if config.model_name == TINY_MODEL_NAME:
            _register_tiny_config()
        model_kwargs = {} if config.embed_dim is None else {"embed_dim": config.embed_dim}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            clip = open_clip.create_model(config.model_name, pretrained=str(pretrained) if pretrained else None,
                                          force_image_size=config.crop_size, **model_kwargs)
            visual = clip.visual
            del clip
            return cls(visual, config, precision or select_precision())

    def load_probe(self, path: Path, name: str = PROBE_WEIGHTS) -> None:
        """Load a UFD-format probe (`{weight: (1, D), bias: (1,)}`, no `fc.` prefix), refusing anything else."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a probe file"
            raise ProbeFormatError(str(path), f"not a torch state-dict file ({type(err).__name__}: {err})") from None
        if not isinstance(state, dict):
            raise ProbeFormatError(str(path), f"expected a state dict of tensors, got {type(state).__name__}")
        try:
            check_state_dict(state, expected_shapes(self.fc), str(path), "probe weights", error=ProbeFormatError)
        except ProbeFormatError as err:
            if not any(str(key).startswith("fc.") for key in state):
                raise
            raise ProbeFormatError(err.source, f"{err.problem}; strip the 'fc.' prefix (save model.fc.state_dict())",
                                   err.key) from None
        with torch.no_grad():
            self.fc.weight.copy_(state["weight"])
            self.fc.bias.copy_(state["bias"])
        self.weights_sha256[name] = sha256_file(path)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """All crops of all images, image-major (N·num_crops)×3×crop×crop float32, as the network receives them."""
        batches = list(self._batches(images))
        if not batches:
            return torch.empty(0, 3, self.config.crop_size, self.config.crop_size)
        return torch.cat(batches)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (B,) for preprocessed crops; differentiable, so a new probe can be trained through it."""
        return self.head(self.embed(pixels))

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """The projected CLIP image embedding (B×D float32, not normalised) of preprocessed crops."""
        return self.visual(self.visual_input(pixels)).float()

    def visual_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed crops on the tower's device and in its weights' dtype: what `visual` itself takes (bf16
        weights refuse fp32 inputs), for every caller of the tower, not only `embed`."""
        return pixels.to(self.precision.device, self.precision.dtype)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The linear probe: w·f + b, in the probe's own (fp32) dtype."""
        return self.fc(features.to(self.fc.weight.device, self.fc.weight.dtype)).squeeze(-1)

    @torch.inference_mode()
    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Crop-averaged embeddings N×D float32: what the probe sees, kept so a probe can be retrained later."""
        num_crops = self.config.num_crops
        chunks = [self.embed(batch).cpu() for batch in self._batches(images)]
        dim = self.fc.in_features
        per_crop = torch.cat(chunks) if chunks else torch.empty(0, dim)
        return per_crop.view(-1, num_crops, dim).mean(dim=1).numpy()

    @torch.inference_mode()
    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """Probe logits (N,) for embeddings from `features`."""
        return self.head(torch.as_tensor(np.asarray(features, dtype=np.float32))).cpu().numpy()

    def logits(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Probe logits (N,), averaged over the fixed crops; positive means fake."""
        return self.logits_from_features(self.features(images))

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 2) float64 [P(real), P(fake)] in the order of `classes_`, P(fake) = sigmoid(logit) as in UFD."""
        fake = torch.sigmoid(torch.from_numpy(self.logits(images))).numpy().astype(np.float64)
        return np.stack([1.0 - fake, fake], axis=1)

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """"real" or "fake" per image (P(fake) over 0.5)."""
        return most_probable(self.classes_, self.predict_proba(images))

    def _batches(self, images: Sequence[np.ndarray]) -> Iterator[torch.Tensor]:
        """Normalised crops in batches of config.batch_size, built lazily so memory stays flat on long lists."""
        pending: list[np.ndarray] = []
        for index, image in enumerate(images):
            pending.extend(self._crops(image, index))
            while len(pending) >= self.config.batch_size:
                yield normalise(pending[:self.config.batch_size])
                pending = pending[self.config.batch_size:]
        if pending:
            yield normalise(pending)

    def _crops(self, image: np.ndarray, index: int) -> list[np.ndarray]:
        """The fixed crop_size² windows, a side shorter than crop_size zero-padded first (UFD's CenterCrop rule)."""
        crop = self.config.crop_size
        return fixed_crops(pad_to(check_rgb(image, f"image {index}"), crop), crop, self.config.num_crops,
                           torchvision_centre=True)


class SelfAttention(nn.Module):
    """`nn.MultiheadAttention` restricted to self-attention, with its projections as plain Linear layers.

    Same weights and the same arithmetic, but the projections are ordinary `nn.Linear` modules, so `core.int8` can
    replace them (it cannot reach the raw `in_proj_weight` of `nn.MultiheadAttention`).
    """

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        if not attention._qkv_same_embed_dim or attention.in_proj_bias is None:
            raise ValueError("SelfAttention needs equal query/key/value widths and projection biases")
        dim = attention.embed_dim
        self.num_heads = attention.num_heads
        self.batch_first = attention.batch_first
        # built on the meta device and handed the attention's own tensors: no copy, no draw from the global RNG
        self.in_proj = nn.Linear(dim, 3 * dim, device="meta")
        self.out_proj = nn.Linear(dim, dim, device="meta")
        self.in_proj.load_state_dict({"weight": attention.in_proj_weight, "bias": attention.in_proj_bias},
                                     assign=True)
        self.out_proj.load_state_dict(attention.out_proj.state_dict(), assign=True)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = False,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        """The signature open_clip calls; key and value must be the query itself and there is no mask."""
        if key is not query or value is not query or attn_mask is not None or need_weights:
            raise ValueError("SelfAttention supports unmasked self-attention without attention weights only")
        tokens = query if self.batch_first else query.transpose(0, 1)
        batch, length, dim = tokens.shape
        q, k, v = self.in_proj(tokens).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, dim)
        out = self.out_proj(mixed)
        return (out if self.batch_first else out.transpose(0, 1)), None


def quantize_visual_int8(visual: nn.Module) -> nn.Module:
    """The fp32 visual tower with every Linear (MLP and attention projections) in int8, each MLP's activation taken
    into its first layer as one pass: as its own module, QuickGELU's three passes took 15 % of int8 CLIP's time."""
    for block in visual.modules():
        attention = getattr(block, "attn", None)
        if isinstance(attention, nn.MultiheadAttention):
            block.attn = SelfAttention(attention)
    mlps = [block.mlp for block in visual.modules() if hasattr(getattr(block, "mlp", None), "c_fc")]
    for mlp in mlps:
        _fuse_mlp_int8(mlp)
    quantize_int8(visual, [name for name, layer in visual.named_modules() if type(layer) is nn.Linear])
    for mlp in mlps:
        mlp.c_fc.int8_original_dtype = torch.float32  # open_clip reads the cast dtype off c_fc.weight
    return visual


def _fuse_mlp_int8(mlp: nn.Module) -> None:
    """c_fc -> activation -> c_proj as two int8 layers, the activation inside the first.

    QuickGELU(y) = y * sigmoid(1.702 y) = silu(1.702 y) / 1.702: c_fc's output is scaled by 1.702 into its silu
    and c_proj's input by 1 / 1.702, both folded into the per-channel weight scales. Any other activation than
    QuickGELU or exact GELU leaves the MLP to plain int8 Linears.
    """
    activation = mlp.gelu
    if isinstance(activation, QuickGELU):
        fused = {"activation": "silu", "output_factor": QUICK_GELU_SLOPE}, {"input_factor": 1 / QUICK_GELU_SLOPE}
    elif type(activation) is nn.GELU and activation.approximate == "none":
        fused = {"activation": "gelu"}, {}
    else:
        return
    mlp.c_fc = Int8Linear(mlp.c_fc, **fused[0])
    mlp.gelu = nn.Identity()
    mlp.c_proj = Int8Linear(mlp.c_proj, **fused[1])


def _register_tiny_config() -> None:
    """Make the tiny test ViT known to open_clip once per process.

    open_clip reads configs only from JSON files but keeps them in memory once read, so a temporary file suffices.
    """
    if TINY_MODEL_NAME in open_clip.list_models():
        return
    with tempfile.TemporaryDirectory(prefix="gantrace-open-clip-") as folder:
        path = Path(folder) / f"{TINY_MODEL_NAME}.json"
        path.write_text(json.dumps(TINY_MODEL_CONFIG), encoding="utf-8")
        open_clip.add_model_config(path)


def _probe_file(name_or_path: str | Path, download: bool) -> tuple[Path, str]:
    """(file, name it is recorded under): a registry name resolved (verified) or a path of one's own."""
    if names_a_file(name_or_path):
        return Path(name_or_path), Path(name_or_path).name
    return resolve(str(name_or_path), download=download), str(name_or_path)
