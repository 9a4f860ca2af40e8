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
from detector.artifact_pair import read_artifact_pair
from core.atomic import atomic_path, write_json_atomic
from core.checkpoints import load_state_dict_strict
from detector.config_dicts import config_from_dict, config_to_dict
from core.probability import HeadEstimator, most_probable, recentred, shared_out
from core.weights import resolve_name_or_path
from detector.crops import fixed_crops

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
        self.classes_ = tuple(cfg.classes)
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
        self.class_head = nn.Linear(channels, len(cfg.classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.layers(self.stem(upsampling_residual(crops) * self.config.gain)).mean(dim=(2, 3))
        features = self.dropout(features)
        return self.fake_head(features)[:, 0], self.class_head(features)

    @classmethod
    def random_init(cls, config: ResidualConfig | None = None, seed: int = 0) -> ResidualNet:
        """The config's architecture with random weights drawn from `seed` (global RNG untouched), in eval mode:
        tests (`ResidualConfig.tiny()`) and benchmarks."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config).eval()

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def detector(self) -> HeadEstimator:
        """Real vs fake: classes_ ("real", "fake"), P(fake) re-centred on the held-out threshold (0.5 is its own
        decision point)."""
        return HeadEstimator(("real", "fake"), lambda images: shared_out(self._fake(self.head_probabilities(images)),
                                                                         None))

    @property
    def attributor(self) -> HeadEstimator:
        """Which architecture, given fake: classes_ the class head's non-real classes, P(architecture | fake)."""
        return HeadEstimator(self.classes_[1:], lambda images: self._architectures(self.head_probabilities(images)))

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, len(classes_)) float64: P(real), then the detector's P(fake) shared out by the attributor's
        P(architecture | fake), from one pass over the crops."""
        heads = self.head_probabilities(images)
        return shared_out(self._fake(heads), self._architectures(heads))

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """The most probable member of `classes_` per image."""
        return most_probable(self.classes_, self.predict_proba(images))

    def _fake(self, heads: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return recentred(heads[0], self.threshold)

    @staticmethod
    def _architectures(heads: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The class head's non-real probabilities renormalised to sum to 1, row by row."""
        rows = [np.asarray(row[1:], dtype=float) / max(float(np.sum(row[1:])), 1e-12) for row in heads[1]]
        return np.asarray(rows, dtype=float).reshape(len(heads[1]), heads[1].shape[1] - 1)

    @torch.inference_mode()
    def head_probabilities(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The two heads as trained, before the held-out threshold: (N,) float32 P(fake) and (N, K) float32
        P(class) over config.classes, each averaged over the fixed crops of the image's central window (what
        training measures its threshold and skill on)."""
        was_training = self.training
        self.eval()
        crops, owners = [], []
        for index, image in enumerate(check_rgb_batch(images, min_side=MIN_SIDE)):
            for crop in inference_crops(image, self.config):
                crops.append(crop)
                owners.append(index)
        fake = np.zeros(len(images))
        classes = np.zeros((len(images), len(self.config.classes)))
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
        return (fake / counts).astype(np.float32), (classes / counts[:, None]).astype(np.float32)

    def save(self, path: Path, metadata: dict | None = None) -> None:
        """Float32 weights as <path>.safetensors; config, classes, threshold, skill and metadata as <path>.json."""
        path = Path(path).with_suffix(".safetensors")
        tensors = {key: value.detach().float().cpu().contiguous() if value.is_floating_point() else value.cpu()
                   for key, value in self.state_dict().items()}
        with atomic_path(path) as temp:
            save_file(tensors, str(temp), metadata={"format": FILE_FORMAT, "version": str(FILE_VERSION)})
        write_json_atomic(path.with_suffix(".json"), {
            "format": FILE_FORMAT, "version": FILE_VERSION, "config": self.config.to_dict(),
            "classes": list(self.classes_), "threshold": self.threshold, "skill": self.skill,
            "metadata": {**self.metadata, **(metadata or {})}})

    def load_weights(self, path: Path) -> None:
        """Weights written by `save` into this model (same config); every key and shape must match."""
        load_state_dict_strict(self, load_file(str(path)), str(path), "ResidualNet weights")

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, download: bool = False) -> ResidualNet:
        """<path>.safetensors + <path>.json written by `save` (no pickle), by registry name (verified) or path, in
        eval mode."""
        path = resolve_name_or_path(name_or_path, download)
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


def inference_crops(image: np.ndarray, config: ResidualConfig) -> list[np.ndarray]:
    """The centre and (for 5) the four corners of the central window; window and crop sides are even, so the
    corner crops sit at even offsets and keep the image's own 2×2 grid."""
    window = central_window(image, config.window)
    return fixed_crops(window, min(config.crop, window.shape[0]), config.num_crops)


def to_tensor(crops: Sequence[np.ndarray]) -> torch.Tensor:
    """Equal-size H×W×3 uint8 crops → (B,3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
