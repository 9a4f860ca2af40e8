"""RecipeTrainer: each (fake, real) pair of a batch goes through one processing draw."""

from __future__ import annotations

import numpy as np

from detector.codec_blind import CodecBlindRecipe
from detector.recipe_training import RecipeTrainer
from detector.residual_net import ResidualConfig, ResidualNet
from detector.residual_training import AugmentSettings, TrainSettings, residual_loss


def test_a_made_from_real_fake_and_its_twin_get_the_same_draw_in_every_batch():
    """Give the fake exactly its twin's pixels: any difference between the pair's two views would be a different
    draw (place, erase, codec, crop or flip)."""
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (160, 176, 3), dtype=np.uint8) for _ in range(3)]
    regions = [*photos, photos[0].copy(), photos[1].copy()]
    labels = ["real", "real", "real", "made_from_real", "made_from_real"]
    sources = ["r", "r", "r", "made_from_real", "made_from_real"]
    trainer = RecipeTrainer(ResidualNet(ResidualConfig.tiny()), residual_loss, regions, labels, sources,
                            64, TrainSettings(steps=2, batch_size=16, progress=False,
                                                                      augment=AugmentSettings.none()),
                            CodecBlindRecipe(lossless_prob=0.3, erase_prob=0.5), twins={3: 0, 4: 1})
    for step in range(3):
        crops, names = trainer.batch(step)
        assert names == ["made_from_real", "real"] * 8
        assert all(crops[i].equal(crops[i + 1]) for i in range(0, 16, 2))
        # the draws vary across pairs, so equal pairs are not a constant view
        assert not all(crops[0].equal(crops[i]) for i in range(2, 16, 2))
    assert trainer.describe()["made_from_real"] == 2 and "augment" not in trainer.describe()["settings"]
