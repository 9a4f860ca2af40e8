"""FingerprintNet: a CNN that reads a generator's fingerprint from native-resolution crops of a face image.

The GANFingerprint design (multi-scale ResNet features, a frequency path, self-attention, a fingerprint block
with a high-pass branch), with the defects of the published code fixed:

- A K-way head (default real, progan, stylegan2, stylegan3) that always returns (B, K) logits; P(fake) is
  1 − P(real). The embedding uses LayerNorm, so batch size 1 works in training too.
- Only the new layers are initialised; an ImageNet trunk, when requested and fetchable, is kept as loaded.
- The fingerprint block's spatial and high-pass branches have their own convolutions and BatchNorm statistics:
  they see signals of very different scale, so shared running statistics fit neither.
- No dead modules, no global re-seeding.
- The input never gets resized (resizing moves and blurs the very up-sampling peaks we look for). The network
  sees square crops at native resolution; `predict_proba` averages over fixed crops (centre + 4 corners).
- A fixed high-pass residual of the raw pixels enters the trunk beside the RGB channels, and the frequency path
  reads the centred, per-crop standardised log-magnitude spectrum of that residual (not of the normalised image,
  whose spectrum is dominated by content and DC). The spectrum is pooled to a coarse grid of frequency bands and
  flattened, so the position of a peak (its frequency) survives into the classifier instead of being averaged
  away on the spatial grid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models.resnet import BasicBlock

from core.arrays import check_rgb_batch
from core.atomic import atomic_path, write_json_atomic
from core.checkpoints import load_state_dict_strict
from detector.config_dicts import config_from_dict, config_to_dict
from core.device import Precision, prepare_model, select_precision
from core.probability import most_probable
from core.weights import resolve_name_or_path
from detector.crops import fixed_crops
from detector.spectrum import high_pass, log_spectrum

LOG = logging.getLogger(__name__)

DEFAULT_CLASSES = ("real", "progan", "stylegan2", "stylegan3")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HIGH_PASS_GAIN = 10.0
MIN_SIDE = 64
RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
TORCHVISION_WIDTHS = (64, 128, 256, 512)
FILE_FORMAT = "gantrace-fingerprintnet"
FILE_VERSION = 1


@dataclass(frozen=True)
class FingerprintConfig:
    """Everything that shapes a FingerprintNet; saved beside the weights so a checkpoint rebuilds itself.

    `rgb_input=False` feeds the trunk only the high-pass residual, so it cannot use colour or face content (the
    CelebA-HQ vs FFHQ look) to tell classes apart; the fine traces it keeps still include an image's JPEG history.
    """

    backbone: str = "resnet34"
    widths: tuple[int, int, int, int] = TORCHVISION_WIDTHS
    imagenet_init: bool = False
    high_pass_input: bool = True
    rgb_input: bool = True
    adapter_channels: int = 128
    fusion_channels: int = 256
    fusion_stride: int = 32
    attention: bool = True
    freq_channels: tuple[int, ...] = (32, 64, 128)
    freq_grid: int = 8
    freq_dim: int = 256
    embedding_dim: int = 512
    dropout: float = 0.4
    feature_dropout: float = 0.1
    crop_size: int = 256
    num_crops: int = 5
    batch_size: int = 16
    classes: tuple[str, ...] = DEFAULT_CLASSES

    def __post_init__(self) -> None:
        if self.backbone not in RESNET_BLOCKS:
            raise ValueError(f"backbone {self.backbone!r} is not one of {sorted(RESNET_BLOCKS)}")
        if self.imagenet_init and tuple(self.widths) != TORCHVISION_WIDTHS:
            raise ValueError(f"imagenet_init needs the torchvision widths {TORCHVISION_WIDTHS}, not {self.widths}")
        if not (self.rgb_input or self.high_pass_input):
            raise ValueError("the trunk needs an input: set rgb_input, high_pass_input or both")
        if self.imagenet_init and not self.rgb_input:
            raise ValueError("imagenet_init needs rgb_input: ImageNet stems are RGB filters")
        if self.fusion_stride not in (16, 32):
            raise ValueError(f"fusion_stride must be 16 (layer3 grid) or 32 (layer4 grid), not {self.fusion_stride}")
        if self.num_crops not in (1, 5):
            raise ValueError(f"num_crops must be 1 (centre) or 5 (centre + corners), not {self.num_crops}")
        if self.crop_size < MIN_SIDE:
            raise ValueError(f"crop_size must be at least {MIN_SIDE}, not {self.crop_size}")
        if "real" not in self.classes or len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError(f"classes must be distinct, at least two, and include 'real': {self.classes}")

    @classmethod
    def full(cls) -> FingerprintConfig:
        """The spec's model: ResNet34 trunk (ImageNet init when fetchable), 256 px crops, 512-d embedding."""
        return cls(imagenet_init=True)

    @classmethod
    def small(cls) -> FingerprintConfig:
        """ResNet18 layout at half width on 128 px crops: ~1/4 of ResNet18's compute, so ~30 CPU minutes train it.

        Our data is a few hundred images; a 21 M-parameter trunk would only memorise sources. Half width keeps the
        layout (and the code path) of the real thing while a 2-core CPU gets through enough epochs. The fusion grid
        is layer3's (stride 16, 8×8 per crop) so attention and Grad-CAM have more than 4×4 cells to work with.
        """
        return cls(backbone="resnet18", widths=(32, 64, 128, 256), adapter_channels=64, fusion_channels=128,
                   fusion_stride=16, freq_channels=(16, 32, 32), freq_grid=8, freq_dim=64, embedding_dim=128,
                   dropout=0.3, crop_size=128, batch_size=32)

    @classmethod
    def tiny(cls) -> FingerprintConfig:
        """A few thousand parameters through the same code, for tests."""
        return cls(backbone="resnet18", widths=(8, 8, 16, 16), adapter_channels=8, fusion_channels=16,
                   fusion_stride=16, freq_channels=(4, 8), freq_grid=4, freq_dim=16, embedding_dim=16, dropout=0.0,
                   feature_dropout=0.0, crop_size=64, batch_size=8)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FingerprintConfig:
        return config_from_dict(cls, values)


class ResNetTrunk(nn.Module):
    """ResNet-18/34 made of torchvision's BasicBlock with configurable widths; parameter names match torchvision."""

    def __init__(self, blocks: tuple[int, ...], widths: tuple[int, ...], in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = widths[0]
        layers = []
        for index, (count, width) in enumerate(zip(blocks, widths)):
            layers.append(_resnet_layer(inplanes, width, count, stride=1 if index == 0 else 2))
            inplanes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def low(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))


def _resnet_layer(inplanes: int, planes: int, count: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
    blocks = [BasicBlock(inplanes, planes, stride, downsample)]
    blocks += [BasicBlock(planes, planes) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, stride: int = 1,
                  padding_mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False,
                                   padding_mode=padding_mode),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FrequencyEncoder(nn.Module):
    """Strided convs over the centred residual spectrum, pooled to a grid of frequency bands and flattened.

    Each band is summarised by its mean and its maximum: an up-sampling artefact is one sharp peak among
    thousands of bins, which a mean alone dilutes away. The convolutions pad circularly because the spectrum is
    periodic: after fftshift the Nyquist bins sit on the border and are each other's neighbours.
    """

    def __init__(self, channels: tuple[int, ...], grid: int, out_dim: int):
        super().__init__()
        stages, cin = [], 3
        for cout in channels:
            stages.append(_conv_bn_relu(cin, cout, kernel=3, stride=2, padding_mode="circular"))
            cin = cout
        self.convs = nn.Sequential(*stages)
        self.grid = grid
        self.project = nn.Sequential(nn.Linear(2 * cin * grid * grid, out_dim), nn.ReLU(inplace=True))

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        features = self.convs(spectrum)
        bands = torch.cat([F.adaptive_avg_pool2d(features, self.grid), F.adaptive_max_pool2d(features, self.grid)], 1)
        return self.project(bands.flatten(1))


class SelfAttention(nn.Module):
    """SAGAN self-attention over the fusion grid; γ starts at 0 so it begins as the identity and learns to mix."""

    def __init__(self, channels: int):
        super().__init__()
        self.query = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.key = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query = self.query(x).flatten(2)
        key = self.key(x).flatten(2)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)
        out = self.value(x).flatten(2) @ attention.transpose(1, 2)
        return self.gamma * out.view(batch, channels, height, width) + x


def _residual_pair(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels))


class FrequencyAwareness(nn.Module):
    """Spatial branch on the features plus a separately-weighted branch on their local high-pass residual."""

    def __init__(self, channels: int):
        super().__init__()
        self.spatial = _residual_pair(channels)
        self.high = _residual_pair(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local_mean = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return F.relu(self.spatial(x) + self.high(x - local_mean))


class FingerprintBlock(nn.Module):
    """FrequencyAwareness, then a learned per-position gate (spatial attention), then channel dropout."""

    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.frequency_awareness = FrequencyAwareness(channels)
        self.spatial_gate = nn.Conv2d(channels, 1, 1)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.frequency_awareness(x)
        return self.dropout(features * torch.sigmoid(self.spatial_gate(features)))


class FingerprintNet(nn.Module):
    """Crops (B,3,H,W) in [0,1] → (B,K) class logits; `predict_proba` takes whole RGB uint8 images."""

    def __init__(self, config: FingerprintConfig | None = None):
        super().__init__()
        self.config = config or FingerprintConfig.small()
        cfg = self.config
        self.classes_ = tuple(cfg.classes)
        self.metadata: dict = {}
        self.trunk = ResNetTrunk(RESNET_BLOCKS[cfg.backbone], cfg.widths,
                                 3 * int(cfg.rgb_input) + 3 * int(cfg.high_pass_input))
        self.adapt_low = _conv_bn_relu(cfg.widths[0], cfg.adapter_channels)
        self.adapt_mid = _conv_bn_relu(cfg.widths[1], cfg.adapter_channels)
        self.adapt_high = _conv_bn_relu(cfg.widths[3], cfg.adapter_channels)
        self.fusion = _conv_bn_relu(3 * cfg.adapter_channels, cfg.fusion_channels, kernel=3)
        self.attention = SelfAttention(cfg.fusion_channels) if cfg.attention else nn.Identity()
        self.fingerprint_block = FingerprintBlock(cfg.fusion_channels, cfg.feature_dropout)
        self.freq_encoder = FrequencyEncoder(cfg.freq_channels, cfg.freq_grid, cfg.freq_dim) if cfg.freq_dim else None
        self.embedding = nn.Sequential(nn.Linear(cfg.fusion_channels + cfg.freq_dim, cfg.embedding_dim),
                                       nn.LayerNorm(cfg.embedding_dim), nn.ReLU(inplace=True),
                                       nn.Dropout(cfg.dropout))
        self.classifier = nn.Linear(cfg.embedding_dim, len(self.classes_))
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for module in self.modules():
            _init_module(module)
        for block in self.trunk.modules():
            if isinstance(block, BasicBlock):
                nn.init.zeros_(block.bn2.weight)
        nn.init.normal_(self.classifier.weight, std=0.01)

    @classmethod
    def for_training(cls, config: FingerprintConfig) -> FingerprintNet:
        """Build a model to train: with the ImageNet trunk when requested and fetchable, else from scratch."""
        model = cls(config)
        if config.imagenet_init:
            model.load_imagenet_trunk()
        return model

    def load_imagenet_trunk(self) -> bool:
        """Copy torchvision's ImageNet weights into the trunk (high-pass input channels start at zero).

        Returns False, with a log line, when the weights cannot be fetched (offline): training then starts from
        scratch rather than failing.
        """
        from torchvision.models import get_model_weights

        weights = get_model_weights(self.config.backbone).IMAGENET1K_V1
        try:
            state = weights.get_state_dict(progress=True)
        except Exception as err:  # noqa: BLE001 - any download/cache failure means "train from scratch"
            LOG.warning("ImageNet weights for %s unavailable (%s: %s); training the trunk from scratch",
                        self.config.backbone, type(err).__name__, err)
            return False
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        if self.config.high_pass_input:
            stem = torch.zeros_like(self.trunk.conv1.weight)
            stem[:, :3] = state["conv1.weight"]
            state["conv1.weight"] = stem
        self.trunk.load_state_dict(state, strict=True)
        LOG.info("trunk initialised from torchvision %s ImageNet weights", self.config.backbone)
        return True

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.logits_and_map(crops)[0]

    def logits_and_map(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B,K) and the last spatial feature map (B,C,h,w) that they are pooled from (for Grad-CAM)."""
        dtype = self.classifier.weight.dtype
        pixels = crops.to(self.classifier.weight.device, torch.float32)
        residual = high_pass(pixels)
        parts = []
        if self.config.rgb_input:
            parts.append((pixels - self.pixel_mean.float()) / self.pixel_std.float())
        if self.config.high_pass_input:
            parts.append(residual * HIGH_PASS_GAIN)
        stem = torch.cat(parts, dim=1)
        low = self.trunk.low(stem.to(dtype))
        mid = self.trunk.layer2(low)
        layer3 = self.trunk.layer3(mid)
        high = self.trunk.layer4(layer3)
        grid = (layer3 if self.config.fusion_stride == 16 else high).shape[-2:]
        fused = self.fusion(torch.cat([_to_grid(self.adapt_low(low), grid), _to_grid(self.adapt_mid(mid), grid),
                                       _to_grid(self.adapt_high(high), grid)], dim=1))
        feature_map = self.fingerprint_block(self.attention(fused))
        pooled = feature_map.mean(dim=(2, 3))
        if self.freq_encoder is not None:
            spectrum = _standardise(log_spectrum(residual)).to(dtype)
            pooled = torch.cat([pooled, self.freq_encoder(spectrum)], dim=1)
        return self.classifier(self.embedding(pooled)), feature_map

    @torch.inference_mode()
    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, len(classes_)) float32 P(class) per image: softmax averaged over the fixed native-resolution crops."""
        was_training = self.training
        self.eval()
        crops_by_size: dict[int, list[np.ndarray]] = {}
        owners_by_size: dict[int, list[int]] = {}
        for index, image in enumerate(check_rgb_batch(images, min_side=MIN_SIDE)):
            size = min(self.config.crop_size, image.shape[0], image.shape[1])
            for crop in fixed_crops(image, size, self.config.num_crops):
                crops_by_size.setdefault(size, []).append(crop)
                owners_by_size.setdefault(size, []).append(index)
        sums = np.zeros((len(images), len(self.classes_)), dtype=np.float64)
        counts = np.zeros(len(images), dtype=np.float64)
        for size, crops in crops_by_size.items():
            owners = np.asarray(owners_by_size[size])
            for start in range(0, len(crops), self.config.batch_size):
                batch = to_tensor(crops[start:start + self.config.batch_size])
                probabilities = torch.softmax(self(batch).float(), dim=1).cpu().numpy()
                np.add.at(sums, owners[start:start + len(probabilities)], probabilities)
                np.add.at(counts, owners[start:start + len(probabilities)], 1.0)
        self.train(was_training)
        return (sums / counts[:, None]).astype(np.float32)

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """The most probable member of `classes_` per image."""
        return most_probable(self.classes_, self.predict_proba(images))

    def save(self, path: Path, metadata: dict | None = None) -> None:
        """Write float32 weights as safetensors and the config (plus optional metadata) as JSON with the same stem."""
        path = Path(path)
        tensors = {key: (value.float() if value.is_floating_point() else value).detach().cpu().contiguous()
                   for key, value in self.state_dict().items()}
        with atomic_path(path) as temp:
            save_file(tensors, str(temp), metadata={"format": FILE_FORMAT, "version": str(FILE_VERSION)})
        write_json_atomic(path.with_suffix(".json"), {"format": FILE_FORMAT, "version": FILE_VERSION,
                                                      "config": self.config.to_dict(), "metadata": metadata or {}})

    def load_weights(self, path: Path) -> None:
        """Load weights written by `save` into this model (same config): resuming or picking the best epoch."""
        load_state_dict_strict(self, load_file(str(path)), str(path), "FingerprintNet weights")

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, precision: Precision | None = None,
                        download: bool = False) -> FingerprintNet:
        """A checkpoint written by `save`, by registry name (checksum-verified; WeightUnavailableError when absent)
        or path; every key and shape must match (no pickle anywhere)."""
        path = resolve_name_or_path(name_or_path, download)
        config_path = path.with_suffix(".json")
        if not config_path.is_file():
            raise FileNotFoundError(f"{path}: its config {config_path.name} is missing beside it")
        document = json.loads(config_path.read_text(encoding="utf-8"))
        if document.get("format") != FILE_FORMAT or document.get("version") != FILE_VERSION:
            raise ValueError(f"{config_path}: not a {FILE_FORMAT} v{FILE_VERSION} config")
        model = cls(FingerprintConfig.from_dict(document["config"]))
        model.metadata = document.get("metadata", {})
        model.load_weights(path)
        return prepare_model(model, precision or select_precision())

    @classmethod
    def random_init(cls, config: FingerprintConfig | None = None, seed: int = 0,
                    precision: Precision | None = None) -> FingerprintNet:
        """The config's architecture with random weights drawn from `seed` (global RNG untouched): tests
        (`FingerprintConfig.tiny()`) and benchmarks."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
        return prepare_model(model, precision or select_precision())


def to_tensor(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """Equal-size H×W×3 uint8 crops → (B,3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def _to_grid(features: torch.Tensor, grid: torch.Size) -> torch.Tensor:
    """Average-pool finer maps down to the fusion grid; bilinearly up-sample the coarser layer4 map to it."""
    if features.shape[-2:] == grid:
        return features
    if features.shape[-2] >= grid[0] and features.shape[-1] >= grid[1]:
        return F.adaptive_avg_pool2d(features, grid)
    return F.interpolate(features, size=tuple(grid), mode="bilinear", align_corners=False)


def _standardise(spectrum: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per crop and channel: keeps the spectrum's shape, drops its overall level."""
    mean = spectrum.mean(dim=(2, 3), keepdim=True)
    std = spectrum.std(dim=(2, 3), keepdim=True)
    return (spectrum - mean) / (std + 1e-6)


def _init_module(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        nn.init.zeros_(module.bias)
