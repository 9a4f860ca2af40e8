"""Training ResidualNet (and any crop classifier) on native-resolution regions: augment, balance, budget, resume.

Each image is decoded once and only its central region (≤ REGION pixels, native) is kept in memory: every crop
the network sees comes from there, so training spends its CPU on the model, not on decoding 1024-pixel files.

The augmentations imitate how a photo reaches an analyst — JPEG at quality 60–100, downscaling with whichever
kernel the uploader's software uses (nearest, bilinear, bicubic, Lanczos), a mild blur — and are applied the same
way to every class, so that codec, quality and size stop telling the classes apart. Sampling is balanced: half the
draws are real photos, the other half spread evenly over the generator labels, and inside a label evenly over its
sources, so a 300-image source does not drown a 20-image one (the model must learn the generator, not the source).

A run fits a time budget (the schedule is shortened once, after the speed is known), writes a checkpoint every
few minutes and resumes from it when started again with the same settings.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from core.augment import KERNELS, AugmentSettings
from detector.lr_schedule import lr_factor
from core.atomic import atomic_path, write_json_atomic
from core.checkpoints import load_state_dict_strict
from detector.fingerprint_data import downscale, jpeg_reencode
from detector.residual_net import ResidualConfig, ResidualNet, to_tensor

REGION = 256
REAL = "real"
SPEED_PROBE_STEPS = 10

LossFn = Callable[[nn.Module, torch.Tensor, Sequence[str]], torch.Tensor]


AUGMENTATIONS = {"none": AugmentSettings.none, "analyst": AugmentSettings.analyst,
                 "reencoded": AugmentSettings.reencoded}


@dataclass
class TrainSettings:
    """Everything that shapes a run; a resume with other settings is refused."""

    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    time_budget_s: float | None = None
    checkpoint_every_s: float = 120.0
    seed: int = 0
    augment: AugmentSettings = field(default_factory=AugmentSettings.analyst)
    progress: bool = True


def training_view(region: np.ndarray, crop: int, rng: np.random.Generator, augment: AugmentSettings) -> np.ndarray:
    """One crop×crop training view: random place, maybe downscaled (random kernel), blurred, JPEG-re-encoded.

    Only a patch a little larger than the crop is resized and re-encoded (same statistics, far less CPU).
    """
    height, width = region.shape[:2]
    factor = rng.uniform(*augment.scale) if rng.random() < augment.resize_prob else 1.0
    patch = min(math.ceil((crop + 16) / factor), height, width)
    top, left = int(rng.integers(0, height - patch + 1)), int(rng.integers(0, width - patch + 1))
    view = region[top:top + patch, left:left + patch]
    if factor < 1.0 and round(patch * factor) >= crop:
        kernel = KERNELS[augment.kernels[int(rng.integers(len(augment.kernels)))]]
        view = downscale(view, factor, kernel)
    if rng.random() < augment.blur_prob:
        view = np.asarray(Image.fromarray(view).filter(ImageFilter.GaussianBlur(rng.uniform(*augment.blur_sigma))))
    if rng.random() < augment.jpeg_prob:
        view = jpeg_reencode(view, int(rng.integers(augment.jpeg_quality[0], augment.jpeg_quality[1] + 1)))
    side = min(view.shape[0], view.shape[1])
    top, left = int(rng.integers(0, side - crop + 1)), int(rng.integers(0, side - crop + 1))
    view = view[top:top + crop, left:left + crop]
    if augment.flip and rng.random() < 0.5:
        view = view[:, ::-1]
    return np.ascontiguousarray(view)


def balanced_draws(labels: Sequence[str], sources: Sequence[str], count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices: half real photos, half spread evenly over the other labels, each label evenly over its
    sources (with replacement)."""
    labels, sources = np.asarray(labels), np.asarray(sources)
    fakes = sorted(set(labels.tolist()) - {REAL})
    pools = {label: [np.flatnonzero((labels == label) & (sources == source))
                     for source in sorted(set(sources[labels == label].tolist()))]
             for label in ([REAL] if REAL in labels else []) + fakes}
    weights = np.array([0.5 if label == REAL else 0.5 / len(fakes) for label in pools])
    names = list(pools)
    picks = rng.choice(len(names), size=count, p=weights / weights.sum())
    draws = []
    for pick in picks:
        per_source = pools[names[pick]]
        members = per_source[int(rng.integers(len(per_source)))]
        draws.append(int(members[int(rng.integers(len(members)))]))
    return np.asarray(draws)


def residual_loss(model: ResidualNet, crops: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
    """Binary cross-entropy on real/fake for every image, plus cross-entropy over the class head for images of a
    known class (generators outside it teach only the fake head)."""
    fake_logit, class_logits = model(crops)
    is_fake = torch.tensor([label != REAL for label in labels], dtype=torch.float32)
    loss = F.binary_cross_entropy_with_logits(fake_logit, is_fake)
    known = [i for i, label in enumerate(labels) if label in model.config.classes]
    if known:
        targets = torch.tensor([model.config.classes.index(labels[i]) for i in known])
        loss = loss + F.cross_entropy(class_logits[known], targets, label_smoothing=0.05)
    return loss


class CropTrainer:
    """Trains any crop classifier on in-memory regions with `loss_fn`; checkpoints to `out` and resumes."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, regions: Sequence[np.ndarray], labels: Sequence[str],
                 sources: Sequence[str], crop: int, settings: TrainSettings, out: Path | None = None):
        too_small = [i for i, region in enumerate(regions) if min(region.shape[:2]) < crop]
        if too_small:
            raise ValueError(f"region {too_small[0]} is {regions[too_small[0]].shape[:2]}, under the {crop}-pixel crop")
        self.model, self.loss_fn, self.crop, self.settings = model, loss_fn, crop, settings
        self.regions, self.labels, self.sources = list(regions), list(labels), list(sources)
        self.out = None if out is None else Path(out)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        self.state = {"step": 0, "total_steps": settings.steps, "elapsed_s": 0.0, "losses": []}

    def lr_factor(self, step: int) -> float:
        """The shared schedule, ending at the (possibly budget-shortened) last step."""
        return lr_factor(step, self.settings.warmup_steps, self.state["total_steps"])

    def run(self) -> dict:
        """Train to the planned step count or the time budget; returns the final state (step, losses, time)."""
        self.resume()
        settings = self.settings
        started, last_save = time.monotonic() - self.state["elapsed_s"], time.monotonic()
        self.model.train()
        bar = tqdm(total=self.state["total_steps"], initial=self.state["step"], desc="training", unit="step",
                   mininterval=10, disable=not settings.progress)
        while self.state["step"] < self.state["total_steps"]:
            step = self.state["step"]
            loss = self.train_step(step)
            self.state["step"] = step + 1
            self.state["losses"].append(round(loss, 4))
            elapsed = time.monotonic() - started
            self.state["elapsed_s"] = elapsed
            if step + 1 == SPEED_PROBE_STEPS and settings.time_budget_s:
                affordable = int(settings.time_budget_s / (elapsed / SPEED_PROBE_STEPS))
                self.state["total_steps"] = max(SPEED_PROBE_STEPS, min(self.state["total_steps"], affordable))
                bar.total = self.state["total_steps"]
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(self.state['losses'][-50:]):.3f}", refresh=False)
            if self.out is not None and time.monotonic() - last_save > settings.checkpoint_every_s:
                self.save_checkpoint()
                last_save = time.monotonic()
            if settings.time_budget_s and elapsed > settings.time_budget_s * 1.1:
                break
        bar.close()
        self.model.eval()
        if self.out is not None:
            self.save_checkpoint()
        return self.state

    def train_step(self, step: int) -> float:
        """One optimiser step on `batch(step)`."""
        crops, labels = self.batch(step)
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr * self.lr_factor(step)
        loss = self.loss_fn(self.model, crops, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def batch(self, step: int) -> tuple[torch.Tensor, list[str]]:
        """Crops and labels of one batch; draws and augmentations depend only on (seed, step), so a resumed run
        sees the same data. A subclass changes how views are made by overriding this."""
        rng = np.random.default_rng([self.settings.seed, step])
        draws = balanced_draws(self.labels, self.sources, self.settings.batch_size, rng)
        crops = to_tensor([training_view(self.regions[i], self.crop, rng, self.settings.augment) for i in draws])
        return crops, [self.labels[i] for i in draws]

    def describe(self) -> dict:
        settings = {key: value for key, value in asdict(self.settings).items()
                    if key not in ("progress", "time_budget_s", "checkpoint_every_s")}
        return {"settings": settings, "crop": self.crop, "images": len(self.regions)}

    def save_checkpoint(self) -> None:
        """Weights as safetensors, optimiser via torch.save (our own file, read back with weights_only)."""
        tensors = {key: value.detach().cpu().contiguous() for key, value in self.model.state_dict().items()}
        with atomic_path(self.out / "last.safetensors") as temp:
            save_file(tensors, str(temp))
        with atomic_path(self.out / "optimizer.pt") as temp:
            torch.save(self.optimizer.state_dict(), temp)
        write_json_atomic(self.out / "state.json", {**self.state, "run": self.describe()})

    def resume(self) -> None:
        """Continue from `out`'s checkpoint when there is one; refuse one written with other settings."""
        if self.out is None or not (self.out / "state.json").is_file():
            return
        saved = json.loads((self.out / "state.json").read_text(encoding="utf-8"))
        if saved["run"] != json.loads(json.dumps(self.describe())):
            raise ValueError(f"{self.out}: its checkpoint was written with other settings; delete it to start over")
        load_state_dict_strict(self.model, load_file(str(self.out / "last.safetensors")), str(self.out))
        self.optimizer.load_state_dict(torch.load(self.out / "optimizer.pt", weights_only=True))
        self.state = {key: saved[key] for key in self.state}


def train_residual(regions: Sequence[np.ndarray], labels: Sequence[str], sources: Sequence[str],
                   config: ResidualConfig, settings: TrainSettings,
                   out: Path | None = None) -> tuple[ResidualNet, dict]:
    """A ResidualNet trained on the regions (resuming from `out` when it holds a checkpoint) and its final state."""
    torch.manual_seed(settings.seed)
    model = ResidualNet(config)
    state = CropTrainer(model, residual_loss, regions, labels, sources, config.crop, settings, out).run()
    return model, state
