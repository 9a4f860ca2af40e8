"""The UFD-style CLIP detector: probe file fidelity, UFD preprocessing, precision, crops and determinism."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from torchvision import transforms

from core.device import select_precision
from core.weights import WeightUnavailableError, load_registry, sha256_file
from detector.clip_probe import CLIP_MEAN, CLIP_STD, TINY_MODEL_NAME, ClipProbe, ClipProbeConfig, ProbeFormatError
from detector.crops import fixed_crops

FP32 = select_precision("cpu", "fp32")
BF16 = select_precision("cpu", "bf16")
# bf16 keeps 8 mantissa bits (~0.4% relative per rounding). Through the tiny ViT, logits of order 1 moved by at
# most 0.004 over four seeds; the tolerance leaves 5x headroom. The full-size gap is reported by
# scripts/benchmark.py --stage detector (max_abs_logit_diff_bf16_vs_fp32).
BF16_LOGIT_TOLERANCE = 0.02


def gradient(height: int, width: int) -> np.ndarray:
    """A synthetic image whose every pixel is distinct enough to reveal a crop that is off by one."""
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    red = (rows + 2 * cols) % 256
    green = (3 * rows + cols) % 256
    blue = (rows * cols) % 256
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1).astype(np.uint8)


def noise_images(count: int, height: int = 300, width: int = 260, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def clip_normalised(pixels: np.ndarray) -> np.ndarray:
    """Hand-computed ToTensor + Normalize(CLIP mean/std) of an H×W×3 uint8 array, as 3×H×W float64."""
    scaled = pixels.astype(np.float64).transpose(2, 0, 1) / 255.0
    return (scaled - np.array(CLIP_MEAN)[:, None, None]) / np.array(CLIP_STD)[:, None, None]


@pytest.fixture(scope="module")
def tiny_fp32() -> ClipProbe:
    return ClipProbe.random_init(ClipProbeConfig.tiny(), precision=FP32)


@pytest.fixture(scope="module")
def ufd_probe(data_dir) -> ClipProbe:
    model = ClipProbe.random_init(replace(ClipProbeConfig.tiny(), embed_dim=768), precision=FP32)
    model.load_probe(data_dir / "ufd_fc_weights.pth")
    return model


def test_ufd_probe_file_is_the_one_pinned_in_the_registry(data_dir):
    assert sha256_file(data_dir / "ufd_fc_weights.pth") == load_registry()["ufd-probe"].sha256


def test_ufd_probe_loads_with_the_weights_listed_in_the_spec(ufd_probe):
    weight = ufd_probe.fc.weight.detach().numpy()[0]
    np.testing.assert_allclose(weight[:8], [-0.319579, -0.113311, -0.178390, 0.039692, 0.172399, 0.334971,
                                            0.052480, 0.085560], atol=1e-6)
    np.testing.assert_allclose(weight[-4:], [0.386820, 0.741866, -0.315304, 0.227282], atol=1e-6)
    assert np.linalg.norm(weight) == pytest.approx(6.20008, abs=1e-4)
    assert ufd_probe.fc.bias.item() == pytest.approx(-0.5166999, abs=1e-7)
    assert ufd_probe.weights_sha256["ufd-probe"] == load_registry()["ufd-probe"].sha256


def test_probe_logit_is_weight_dot_feature_plus_bias(ufd_probe, data_dir):
    state = torch.load(data_dir / "ufd_fc_weights.pth", map_location="cpu", weights_only=True)
    weight, bias = state["weight"].numpy().astype(np.float64)[0], state["bias"].numpy().astype(np.float64)[0]
    features = np.random.default_rng(1).normal(size=(5, 768)).astype(np.float32)
    expected = features.astype(np.float64) @ weight + bias
    np.testing.assert_allclose(ufd_probe.logits_from_features(features), expected, atol=1e-4)


def test_image_logits_are_the_probe_applied_to_image_features(ufd_probe):
    images = noise_images(3)
    expected = ufd_probe.logits_from_features(ufd_probe.features(images))
    np.testing.assert_array_equal(ufd_probe.logits(images), expected)
    np.testing.assert_allclose(ufd_probe.predict_proba(images)[:, 1], 1 / (1 + np.exp(-expected)), rtol=1e-6)
    assert ufd_probe.predict(images) == ["fake" if logit > 0 else "real" for logit in expected]


@pytest.mark.parametrize("name, state, message", [
    ("prefixed.pth", {"fc.weight": torch.zeros(1, 16), "fc.bias": torch.zeros(1)},
     r"prefixed\.pth: .*unexpected key\(s\), first fc\.weight.*strip the 'fc\.' prefix"),
    ("wide.pth", {"weight": torch.zeros(1, 768), "bias": torch.zeros(1)},
     r"wide\.pth: .*first weight has \[1, 768\] where this architecture needs \[1, 16\]"),
], ids=["fc-prefix", "wrong-shape"])
def test_probe_file_with_wrong_keys_or_shapes_is_refused_naming_file_key_and_remedy(tiny_fp32, tmp_path, name, state,
                                                                                   message):
    path = tmp_path / name
    torch.save(state, path)
    with pytest.raises(ProbeFormatError, match=message):
        tiny_fp32.load_probe(path)


def test_probe_file_that_is_not_a_torch_file_is_refused(tiny_fp32, tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(ProbeFormatError, match=r"notes\.pth: not a torch state-dict file"):
        tiny_fp32.load_probe(path)


def test_preprocessing_is_a_native_resolution_centre_crop_with_clip_normalisation(tiny_fp32):
    image = gradient(260, 300)
    pixels = tiny_fp32.preprocess([image])
    assert pixels.shape == (1, 3, 224, 224) and pixels.dtype == torch.float32
    expected = clip_normalised(image[18:242, 38:262])
    np.testing.assert_allclose(pixels[0].numpy(), expected, atol=1e-5)


def test_preprocessing_equals_ufd_torchvision_transform_exactly(tiny_fp32):
    ufd = transforms.Compose([transforms.CenterCrop(224), transforms.ToTensor(),
                              transforms.Normalize(mean=CLIP_MEAN, std=CLIP_STD)])
    for height, width in [(260, 300), (227, 229), (225, 226), (150, 200), (151, 401), (300, 203), (224, 224)]:
        image = gradient(height, width)
        reference = ufd(Image.fromarray(image)).unsqueeze(0)
        assert torch.equal(tiny_fp32.preprocess([image]), reference), (height, width)


def test_images_under_crop_size_are_zero_padded_black_before_normalisation(tiny_fp32):
    image = gradient(150, 200)
    pixels = tiny_fp32.preprocess([image])[0].numpy()
    top, left = (224 - 150) // 2, (224 - 200) // 2
    np.testing.assert_allclose(pixels[:, top:top + 150, left:left + 200], clip_normalised(image), atol=1e-5)
    black = clip_normalised(np.zeros((1, 1, 3), np.uint8))[:, 0, 0]
    for channel in range(3):
        assert np.allclose(pixels[channel, :top, :], black[channel], atol=1e-6)
        assert np.allclose(pixels[channel, top + 150:, :], black[channel], atol=1e-6)
        assert np.allclose(pixels[channel, :, :left], black[channel], atol=1e-6)
    assert black.max() < -1.4


def test_multi_crop_windows_are_centre_then_corners():
    image = gradient(400, 300)
    crops = fixed_crops(image, 224, num_crops=5, torchvision_centre=True)
    np.testing.assert_array_equal(crops[0], image[88:312, 38:262])
    np.testing.assert_array_equal(crops[1], image[:224, :224])
    np.testing.assert_array_equal(crops[2], image[:224, -224:])
    np.testing.assert_array_equal(crops[3], image[-224:, :224])
    np.testing.assert_array_equal(crops[4], image[-224:, -224:])


def test_multi_crop_logit_is_the_deterministic_mean_of_the_crop_logits():
    model = ClipProbe.random_init(replace(ClipProbeConfig.tiny(), num_crops=5, batch_size=3), precision=FP32)
    images = noise_images(2, 400, 300)
    first, second = model.logits(images), model.logits(images)
    np.testing.assert_array_equal(first, second)
    with torch.inference_mode():
        per_crop = model(model.preprocess(images)).numpy().reshape(2, 5)
    assert np.ptp(per_crop, axis=1).min() > 0
    np.testing.assert_allclose(first, per_crop.mean(axis=1), atol=1e-5)


def test_bf16_and_fp32_models_agree_within_tolerance():
    images = noise_images(4)
    fp32 = ClipProbe.random_init(ClipProbeConfig.tiny(), seed=3, precision=FP32).logits(images)
    bf16_model = ClipProbe.random_init(ClipProbeConfig.tiny(), seed=3, precision=BF16)
    assert next(bf16_model.visual.parameters()).dtype == torch.bfloat16
    bf16 = bf16_model.logits(images)
    np.testing.assert_allclose(bf16, fp32, atol=BF16_LOGIT_TOLERANCE)
    assert not np.array_equal(bf16, fp32)


def test_batch_of_one_gives_the_same_probability_as_inside_a_batch(tiny_fp32):
    images = noise_images(3)
    single = tiny_fp32.predict_proba(images[1:2])
    assert single.shape == (1, 2)
    np.testing.assert_allclose(single, tiny_fp32.predict_proba(images)[1:2], atol=1e-6)


def test_predictions_are_identical_across_calls(tiny_fp32):
    images = noise_images(5)
    np.testing.assert_array_equal(tiny_fp32.predict_proba(images), tiny_fp32.predict_proba(images))


def test_same_seed_builds_the_same_model_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = ClipProbe.random_init(ClipProbeConfig.tiny(), seed=7, precision=FP32)
    after = torch.rand(1)
    second = ClipProbe.random_init(ClipProbeConfig.tiny(), seed=7, precision=FP32)
    assert torch.equal(before, after)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_only_the_visual_tower_and_probe_are_kept(tiny_fp32):
    prefixes = {name.split(".")[0] for name, _ in tiny_fp32.named_parameters()}
    assert prefixes == {"visual", "fc"}


def test_default_backbone_uses_quickgelu_like_openai_clip():
    config = open_clip.get_model_config(ClipProbeConfig().model_name)
    assert config["quick_gelu"] is True and config["embed_dim"] == 768


def test_empty_batch_gives_empty_predictions(tiny_fp32):
    assert tiny_fp32.predict_proba([]).shape == (0, 2)


def test_non_rgb_uint8_input_is_refused_with_its_index(tiny_fp32):
    with pytest.raises(ValueError, match=r"image 1: expected an H×W×3 uint8 RGB array"):
        tiny_fp32.logits([gradient(256, 256), gradient(256, 256)[:, :, 0]])


def test_bad_num_crops_is_refused():
    with pytest.raises(ValueError, match="num_crops"):
        ClipProbeConfig(num_crops=10)


def test_from_pretrained_without_weights_raises_weight_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRACE_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightUnavailableError, match="clip-vit-l14-openai"):
        ClipProbe.from_pretrained(precision=FP32)


def test_from_pretrained_builds_backbone_and_probe_from_the_resolved_files(tmp_path, monkeypatch):
    ClipProbe.random_init(ClipProbeConfig.tiny(), precision=FP32)  # registers the tiny architecture with open_clip
    clip = open_clip.create_model(TINY_MODEL_NAME)
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    probe = {"weight": torch.linspace(-1, 1, 16).view(1, 16), "bias": torch.tensor([0.25])}
    torch.save(probe, tmp_path / "probe.pth")
    files = {"clip-vit-l14-openai": tmp_path / "clip.pt", "ufd-probe": tmp_path / "probe.pth"}
    monkeypatch.setattr("detector.clip_probe.resolve", lambda name, download=False: files[name])

    model = ClipProbe.from_pretrained(precision=FP32, config=ClipProbeConfig.tiny())

    images = noise_images(2)
    with torch.inference_mode():
        expected = clip.eval().encode_image(model.preprocess(images)).numpy()
    np.testing.assert_allclose(model.features(images), expected, atol=1e-5)
    np.testing.assert_allclose(model.logits(images), expected @ probe["weight"].numpy()[0] + 0.25, atol=1e-5)
    assert model.weights_sha256 == {name: sha256_file(path) for name, path in files.items()}
