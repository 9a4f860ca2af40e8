"""Training a crop classifier on codec-blind paired views (detector.codec_blind), optionally with fakes made from
the real training photos (detector.made_from_real).

Why a trainer of its own: the recipe draws one processing chain per (fake, real) pair, so a batch is built from
pairs, not from independent images; everything else — optimiser, schedule, checkpoints, resume — is
`CropTrainer`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from detector.codec_blind import CodecBlindRecipe, apply_draw, draw_processing, pair_batch, recipe_fingerprint
from detector.residual_net import to_tensor
from detector.residual_training import CropTrainer, LossFn, TrainSettings


class RecipeTrainer(CropTrainer):
    """`CropTrainer` whose batches are `batch_size // 2` (fake, real) pairs, each pair given one recipe draw.

    `twins` maps a made-from-real fake's index to its real photo's index (both in `regions`).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, regions: Sequence[np.ndarray], labels: Sequence[str],
                 sources: Sequence[str], crop: int, settings: TrainSettings, recipe: CodecBlindRecipe,
                 twins: Mapping[int, int] | None = None, out: Path | None = None):
        super().__init__(model, loss_fn, regions, labels, sources, crop, settings, out)
        self.recipe, self.twins = recipe, dict(twins or {})

    def batch(self, step: int) -> tuple[torch.Tensor, list[str]]:
        rng = np.random.default_rng([self.settings.seed, step])
        views, labels = [], []
        for fake, real in pair_batch(self.labels, self.sources, self.settings.batch_size // 2, rng, self.twins):
            draw = draw_processing(self.recipe, rng)
            views += [apply_draw(self.regions[fake], draw, self.crop), apply_draw(self.regions[real], draw, self.crop)]
            labels += [self.labels[fake], self.labels[real]]
        return to_tensor(views), labels

    def describe(self) -> dict:
        described = super().describe()
        described["settings"].pop("augment")
        return {**described, "recipe": asdict(self.recipe), "recipe_fingerprint": recipe_fingerprint(self.recipe),
                "made_from_real": len(self.twins)}
