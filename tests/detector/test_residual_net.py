"""ResidualNet on synthetic images: the residual's theory, learning an up-sampling trace, and the artifact format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from core.augment import AugmentSettings
from detector.residual_net import ResidualConfig, ResidualNet, inference_crops, upsampling_residual
from detector.residual_training import TrainSettings, balanced_draws, train_residual, training_view


def _texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A natural-looking image: blurred noise plus fine sensor-like noise, every pixel independent of its block."""
    coarse = Image.fromarray(rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def _upsampled(rng: np.random.Generator, side: int, kernel: Image.Resampling) -> np.ndarray:
    """A half-size texture up-sampled ×2: the trace a generator's up-sampling layers leave."""
    return np.asarray(Image.fromarray(_texture(rng, side // 2)).resize((side, side), kernel))


def test_residual_of_nearest_upsampled_image_is_exactly_zero():
    image = _upsampled(np.random.default_rng(0), 64, Image.Resampling.NEAREST)
    residual = upsampling_residual(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float())
    assert torch.count_nonzero(residual) == 0


def test_residual_is_zero_at_block_anchors_and_nonzero_elsewhere_for_bicubic_and_natural_images():
    rng = np.random.default_rng(1)
    for image in (_texture(rng, 64), _upsampled(rng, 64, Image.Resampling.BICUBIC)):
        residual = upsampling_residual(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float())[0]
        assert torch.count_nonzero(residual[:, ::2, ::2]) == 0
        assert residual[:, 1::2, :].abs().mean() > 1.0 and residual[:, :, 1::2].abs().mean() > 1.0


def test_residual_refuses_odd_sides():
    with pytest.raises(ValueError, match="even"):
        upsampling_residual(torch.zeros(1, 3, 33, 32))


def test_fixed_crops_sit_at_even_offsets_and_keep_the_nearest_neighbour_grid():
    image = _upsampled(np.random.default_rng(2), 200, Image.Resampling.NEAREST)
    crops = inference_crops(image, ResidualConfig.tiny())
    assert len(crops) == 5 and all(crop.shape == (32, 32, 3) for crop in crops)
    for crop in crops:
        assert torch.count_nonzero(upsampling_residual(torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float())) == 0


def test_balanced_draws_give_real_photos_half_the_batch():
    labels = ["real"] * 90 + ["progan"] * 5 + ["stylegan2"] * 5
    draws = balanced_draws(labels, ["a"] * 100, 4000, np.random.default_rng(0))
    assert 0.45 < np.mean(np.asarray(labels)[draws] == "real") < 0.55


@pytest.fixture
def one_thread():
    """Tiny convolutions run ~20x slower when two threads fight over a busy 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiny_branch_learns_an_upsampling_trace_on_held_out_synthetic_images(one_thread):
    rng = np.random.default_rng(3)
    kernels = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR)

    def make(count: int) -> tuple[list[np.ndarray], list[str]]:
        images, labels = [], []
        for index in range(count):
            fake = index % 2 == 1
            images.append(_upsampled(rng, 64, kernels[index // 2 % 2]) if fake else _texture(rng, 64))
            labels.append("progan" if fake else "real")
        return images, labels

    train_images, train_labels = make(64)
    test_images, test_labels = make(40)
    torch.manual_seed(0)
    settings = TrainSettings(steps=60, batch_size=16, lr=3e-3, warmup_steps=5, augment=AugmentSettings.none(),
                             progress=False)
    model, _ = train_residual(train_images, train_labels, ["synthetic"] * 64, ResidualConfig.tiny(), settings)
    fake = model.detector.predict_proba(test_images)[:, 1]
    assert roc_auc_score(np.asarray(test_labels) != "real", fake) > 0.9


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    model = ResidualNet.random_init(ResidualConfig.tiny())
    model.threshold, model.skill = 0.42, {"protocol": "test"}
    images = [_texture(np.random.default_rng(4), 96), _texture(np.random.default_rng(5), 70)]
    model.save(tmp_path / "residual")
    loaded = ResidualNet.from_pretrained(tmp_path / "residual")
    assert np.array_equal(model.predict_proba(images), loaded.predict_proba(images))
    assert loaded.threshold == 0.42 and loaded.skill == {"protocol": "test"} and loaded.classes_ == model.classes_


def test_prediction_is_deterministic_and_shaped_per_image():
    model = ResidualNet.random_init(ResidualConfig.tiny())
    images = [_texture(np.random.default_rng(6), 80)] * 3
    first, second = model.predict_proba(images), model.predict_proba(images)
    assert first.shape == (3, 4) and np.array_equal(first, second)
    assert np.allclose(first.sum(axis=1), 1.0)
    assert model.detector.predict_proba(images).shape == (3, 2) and model.attributor.predict_proba(images).shape == (3, 3)


def test_the_held_out_threshold_is_applied_inside_the_detector():
    model = ResidualNet.random_init(ResidualConfig.tiny())
    images = [_texture(np.random.default_rng(6), 80)]
    raw = float(model.head_probabilities(images)[0][0])
    model.threshold = raw
    assert model.detector.predict_proba(images)[0, 1] == pytest.approx(0.5)
    model.threshold = raw - 0.05
    assert model.detector.predict(images) == ["fake"]


def test_the_four_columns_share_p_fake_out_by_p_architecture_given_fake():
    model = ResidualNet.random_init(ResidualConfig.tiny())
    images = [_texture(np.random.default_rng(6), 80)]
    fake = model.detector.predict_proba(images)[:, 1]
    np.testing.assert_allclose(model.predict_proba(images)[:, 1:], fake[:, None] * model.attributor.predict_proba(images))
    assert model.attributor.classes_ == ("progan", "stylegan2", "stylegan3")


def test_training_view_is_a_crop_of_the_asked_size_under_every_augmentation():
    region = _texture(np.random.default_rng(7), 128)
    rng = np.random.default_rng(8)
    heavy = AugmentSettings(jpeg_prob=1.0, resize_prob=1.0, blur_prob=1.0)
    assert all(training_view(region, 48, rng, heavy).shape == (48, 48, 3) for _ in range(20))



def test_small_preset_stays_under_two_million_parameters():
    assert ResidualNet(ResidualConfig.small()).num_parameters <= 2_000_000
