"""Resolution augmentation: seeded, order-independent, within its ranges; inference has no randomness."""

from __future__ import annotations

import numpy as np
import pytest

from attribution.resolution import Augmentation, ResolutionAugmentConfig, apply_augmentation, augment_face, \
    augmentation_rng, draw_augmentation, prepare_for_inference


def _face(seed: int = 0, size: int = 256) -> np.ndarray:
    """A textured test picture: smooth gradients plus fine noise, so resizing visibly removes detail."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    base = ramp[None, :, None] * 0.5 + ramp[:, None, None] * 0.3
    noisy = base + rng.normal(0, 25, size=(size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _high_frequency_energy(image: np.ndarray) -> float:
    gray = image.astype(np.float64).mean(axis=2)
    return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())


def test_same_seed_image_and_copy_give_identical_augmented_faces():
    config = ResolutionAugmentConfig()
    first, drawn_first = augment_face(_face(), config, seed=7, image_index=3, copies=3)
    second, drawn_second = augment_face(_face(), config, seed=7, image_index=3, copies=3)
    assert drawn_first == drawn_second
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_draws_do_not_depend_on_the_order_copies_are_made_in():
    config = ResolutionAugmentConfig()
    keys = [(0, image, copy) for image in range(5) for copy in range(3)]
    forward = {key: draw_augmentation(augmentation_rng(*key), config) for key in keys}
    backward = {key: draw_augmentation(augmentation_rng(*key), config) for key in reversed(keys)}
    assert forward == backward


def test_seed_image_and_copy_each_change_the_draw():
    config = ResolutionAugmentConfig()

    def draws(seed: int, image: int) -> list[Augmentation]:
        return [draw_augmentation(augmentation_rng(seed, image, copy), config) for copy in range(8)]

    assert draws(0, 0) != draws(1, 0)
    assert draws(0, 0) != draws(0, 1)
    assert len(set(draws(0, 0))) > 1


def test_log_uniform_range_covers_every_octave_about_equally():
    config = ResolutionAugmentConfig(min_resolution=64, max_resolution=1024)
    sizes = np.array([draw_augmentation(augmentation_rng(0, i, 0), config).resolution for i in range(2000)])
    assert sizes.min() >= 64 and sizes.max() <= 1024
    shares = [np.mean((sizes >= low) & (sizes < 2 * low)) for low in (64, 128, 256, 512)]
    assert all(0.18 < share < 0.32 for share in shares), shares


def test_uniform_draw_puts_most_sizes_above_the_encoder_input():
    config = ResolutionAugmentConfig(log_uniform=False)
    sizes = np.array([draw_augmentation(augmentation_rng(0, i, 0), config).resolution for i in range(1000)])
    assert 0.7 < np.mean(sizes > 256) < 0.9


def test_fixed_resolution_set_and_jpeg_range_are_respected():
    config = ResolutionAugmentConfig(resolutions=(64, 512), jpeg_quality=(70, 75))
    drawn = [draw_augmentation(augmentation_rng(3, i, 1), config) for i in range(200)]
    assert {a.resolution for a in drawn} == {64, 512}
    assert all(70 <= a.jpeg_quality <= 75 for a in drawn)


def test_jpeg_probability_zero_never_reencodes():
    config = ResolutionAugmentConfig(jpeg_probability=0.0)
    assert all(draw_augmentation(augmentation_rng(0, i, 0), config).jpeg_quality is None for i in range(100))


def test_downscaling_to_64_removes_fine_detail_and_returns_encoder_size():
    face = _face()
    small = apply_augmentation(face, Augmentation(resolution=64, jpeg_quality=None))
    assert small.shape == (256, 256, 3) and small.dtype == np.uint8
    assert _high_frequency_energy(small) < 0.5 * _high_frequency_energy(face)


def test_jpeg_reencoding_changes_pixels_at_full_size():
    face = _face()
    encoded = apply_augmentation(face, Augmentation(resolution=256, jpeg_quality=60))
    assert not np.array_equal(encoded, face)
    assert np.abs(encoded.astype(int) - face.astype(int)).mean() < 20


def test_identity_augmentation_leaves_a_256_face_unchanged():
    face = _face()
    assert np.array_equal(apply_augmentation(face, Augmentation(resolution=256, jpeg_quality=None)), face)


def test_inference_path_is_deterministic_and_identity_at_encoder_size():
    face = _face()
    other = _face(seed=1, size=300)
    first = prepare_for_inference([face, other])
    second = prepare_for_inference([face, other])
    assert np.array_equal(first[0], face)
    assert first[1].shape == (256, 256, 3)
    assert np.array_equal(first[1], second[1])


@pytest.mark.parametrize("kwargs", [
    {"min_resolution": 512, "max_resolution": 256},
    {"jpeg_quality": (90, 60)},
    {"jpeg_quality": (0, 50)},
    {"resolutions": (4, 256)},
    {"jpeg_probability": 1.5},
])
def test_config_refuses_impossible_settings(kwargs):
    with pytest.raises(ValueError):
        ResolutionAugmentConfig(**kwargs)


def test_non_rgb_face_is_refused_with_its_shape():
    with pytest.raises(ValueError, match="shape"):
        prepare_for_inference([np.zeros((256, 256), dtype=np.uint8)])
