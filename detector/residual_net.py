"""ResidualNet: real/fake and which-GAN from the up-sampling residual of native-resolution crops (NPR-style).

A generator builds its image by up-sampling feature maps ×2 several times, so neighbouring pixels of a generated
image are tied together in a way a camera's pixels are not. Tan et al. (CVPR 2024, "Neighboring Pixel
Relationships") expose that tie with a residual: the image minus the nearest-neighbour up-sample of its ×2
nearest-neighbour down-sample. Inside every 2×2 block the residual is each pixel minus the block's top-left pixel:
zero for an image made by nearest-neighbour up-sampling, small and structured for learned up-sampling, and the
camera's own fine texture for a photo. A small CNN reads that residual instead of the image, so face content and
colour (CelebA-HQ vs FFHQ look) reach it only faintly.

Resizing re-mixes pixels across block borders and wipes the trace, so the residual is always taken on native
pixels: the model never resizes its input. It reads fixed crops (the centre and four corners of the image's
central window, where the face is) and averages their probabilities, so inference is deterministic.

Two heads share the trunk: P(fake) (trained on every generator, including those outside the known classes) and
P(real | progan | stylegan2 | stylegan3). Weights are safetensors; config, classes, threshold and measured skill
a JSON beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torchvision.models.resnet import BasicBlock

from core.arrays import check_rgb_batch
from core.artifact_pair import read_artifact_pair
from core.atomic import atomic_path, write_json_atomic
from core.checkpoints import load_state_dict_strict
from core.config_dicts import config_from_dict, config_to_dict

CLASSES = ("real", "progan", "stylegan2", "stylegan3")
MIN_SIDE = 64
FILE_FORMAT = "gantrace-residualnet"
FILE_VERSION = 1


@dataclass(frozen=True)
class ResidualConfig:
    """Everything that shapes a ResidualNet; saved beside the weights so a checkpoint rebuilds itself.

    `crop` is the side of each crop the trunk reads (training and inference alike); `window` is the central
    region the fixed inference crops are spread over; `gain` scales the residual (a few grey levels) towards unit
    size so the first BatchNorm starts in a sensible range.
    """

    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    crop: int = 64
    window: int = 128
    num_crops: int = 5
    gain: float = 8.0
    dropout: float = 0.2
    batch_size: int = 64
    classes: tuple[str, ...] = CLASSES

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks):
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} must have the same length")
        if self.crop < 8 or self.crop % 2 or self.window < self.crop:
            raise ValueError(f"crop must be even and ≥ 8 and window ≥ crop, not crop {self.crop}, "
                             f"window {self.window}")
        if self.num_crops not in (1, 5):
            raise ValueError(f"num_crops must be 1 (centre) or 5 (centre + corners), not {self.num_crops}")
        if self.classes[0] != "real" or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct and start with 'real': {self.classes}")

    @classmethod
    def small(cls) -> ResidualConfig:
        """~1.2 M parameters on 64-pixel crops: the shipped size, trainable on a 2-core CPU in minutes per fold."""
        return cls()

    @classmethod
    def tiny(cls) -> ResidualConfig:
        """A few thousand parameters through the same code, for tests."""
        return cls(widths=(8, 16), blocks=(1, 1), crop=32, window=64, dropout=0.0, batch_size=32)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ResidualConfig:
        return config_from_dict(cls, values)


def upsampling_residual(x: torch.Tensor) -> torch.Tensor:
    """x − nearest_up(nearest_down_×2(x)) for (B,C,H,W) with even H, W: each pixel minus its 2×2 block's top-left.

    Zero wherever the image was made by ×2 nearest-neighbour up-sampling aligned with the crop's grid, and
    always zero at even-row, even-column positions.
    """
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"the residual needs even height and width, got {tuple(x.shape[-2:])}")
    anchors = x[..., ::2, ::2]
    return x - anchors.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


class ResidualNet(nn.Module):
    """Crops (B,3,H,W) in [0,1] → (fake logit (B,), class logits (B,K)); `predict_proba` takes RGB uint8 images."""

    def __init__(self, config: ResidualConfig | None = None):
        super().__init__()
        self.config = config or ResidualConfig.small()
        cfg = self.config
        self.classes = tuple(cfg.classes)
        self.threshold = 0.5
        self.skill: dict | None = None
        self.metadata: dict = {}
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(cfg.widths[0]),
                                  nn.ReLU(inplace=True))
        layers, channels = [], cfg.widths[0]
        for width, count in zip(cfg.widths, cfg.blocks):
            downsample = nn.Sequential(nn.Conv2d(channels, width, 1, stride=2, bias=False), nn.BatchNorm2d(width))
            layers.append(nn.Sequential(BasicBlock(channels, width, 2, downsample),
                                        *[BasicBlock(width, width) for _ in range(count - 1)]))
            channels = width
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fake_head = nn.Linear(channels, 1)
        self.class_head = nn.Linear(channels, len(self.classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.layers(self.stem(upsampling_residual(crops) * self.config.gain)).mean(dim=(2, 3))
        features = self.dropout(features)
        return self.fake_head(features)[:, 0], self.class_head(features)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.inference_mode()
    def predict_proba(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """{'fake': (N,) P(fake), 'classes': (N,K) P(real | progan | stylegan2 | stylegan3)}, averaged over the
        fixed crops of each image's central window."""
        was_training = self.training
        self.eval()
        crops, owners = [], []
        for index, image in enumerate(check_rgb_batch(images, min_side=MIN_SIDE)):
            for crop in fixed_crops(image, self.config):
                crops.append(crop)
                owners.append(index)
        fake = np.zeros(len(images))
        classes = np.zeros((len(images), len(self.classes)))
        counts = np.zeros(len(images))
        owners = np.asarray(owners)
        by_size: dict[int, list[int]] = {}
        for position, crop in enumerate(crops):
            by_size.setdefault(crop.shape[0], []).append(position)
        for positions in by_size.values():
            for start in range(0, len(positions), self.config.batch_size):
                chosen = positions[start:start + self.config.batch_size]
                fake_logit, class_logits = self(to_tensor([crops[i] for i in chosen]))
                np.add.at(fake, owners[chosen], torch.sigmoid(fake_logit).numpy())
                np.add.at(classes, owners[chosen], torch.softmax(class_logits, dim=1).numpy())
                np.add.at(counts, owners[chosen], 1.0)
        self.train(was_training)
        return {"fake": (fake / counts).astype(np.float32), "classes": (classes / counts[:, None]).astype(np.float32)}

    def save(self, path: Path, metadata: dict | None = None) -> None:
        """Float32 weights as <path>.safetensors; config, classes, threshold, skill and metadata as <path>.json."""
        path = Path(path).with_suffix(".safetensors")
        tensors = {key: value.detach().float().cpu().contiguous() if value.is_floating_point() else value.cpu()
                   for key, value in self.state_dict().items()}
        with atomic_path(path) as temp:
            save_file(tensors, str(temp), metadata={"format": FILE_FORMAT, "version": str(FILE_VERSION)})
        write_json_atomic(path.with_suffix(".json"), {
            "format": FILE_FORMAT, "version": FILE_VERSION, "config": self.config.to_dict(),
            "classes": list(self.classes), "threshold": self.threshold, "skill": self.skill,
            "metadata": {**self.metadata, **(metadata or {})}})

    def load_weights(self, path: Path) -> None:
        """Weights written by `save` into this model (same config); every key and shape must match."""
        load_state_dict_strict(self, load_file(str(path)), str(path), "ResidualNet weights")

    @classmethod
    def from_pretrained(cls, path: Path) -> ResidualNet:
        """Load <path>.safetensors + <path>.json written by `save` (no pickle), in eval mode."""
        path, document = read_artifact_pair(path, ".safetensors", FILE_FORMAT, FILE_VERSION, "a ResidualNet")
        model = cls(ResidualConfig.from_dict(document["config"]))
        model.load_weights(path)
        model.threshold = float(document.get("threshold", 0.5))
        model.skill = document.get("skill")
        model.metadata = document.get("metadata") or {}
        return model.eval()


def central_window(image: np.ndarray, side: int) -> np.ndarray:
    """The central square of `side` pixels (or the largest even square the image holds), native pixels."""
    side = min(side, image.shape[0], image.shape[1]) // 2 * 2
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top:top + side, left:left + side]


def fixed_crops(image: np.ndarray, config: ResidualConfig) -> list[np.ndarray]:
    """The inference crops: the centre and (for 5) the four corners of the central window, at even offsets so
    every crop keeps the image's own 2×2 grid."""
    window = central_window(image, config.window)
    side = min(config.crop, window.shape[0])
    if config.num_crops == 1:
        return [central_window(window, side)]
    far = (window.shape[0] - side) // 2 * 2
    return [central_window(window, side)] + [window[top:top + side, left:left + side]
                                             for top in (0, far) for left in (0, far)]


def residual_picture(image: np.ndarray, window: int = 256) -> np.ndarray:
    """RGB uint8 evidence picture: the magnitude of the up-sampling residual of the central window, contrast-
    stretched, so an analyst sees the texture the branch reads (a regular 2×2 pattern is a generator's trace)."""
    pixels = torch.from_numpy(np.ascontiguousarray(central_window(check_rgb_batch([image])[0], window)))
    residual = upsampling_residual(pixels.permute(2, 0, 1)[None].float())[0].abs().mean(dim=0).numpy()
    scale = max(float(np.percentile(residual, 99)), 1.0)
    grey = np.round(np.clip(residual / scale, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def to_tensor(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """Equal-size H×W×3 uint8 crops → (B,3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
