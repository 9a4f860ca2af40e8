"""FingerprintNet: shapes at any input size, learning, the frequency path, checkpoints and the shipped default."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from core.device import Precision
from core.images import load_image
from detector.fingerprint_net import (TORCHVISION_WIDTHS, FingerprintConfig, FingerprintNet,
                                      to_tensor)

FP32 = Precision(torch.device("cpu"), torch.float32)


def _face_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth shading plus mild noise: image-like content without needing the face set."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 120 + 50 * np.sin(x / 11.0 + seed) * np.cos(y / 17.0) + rng.normal(0, 6, (height, width))
    return np.clip(np.stack([base, 0.8 * base + 25, 230 - 0.6 * base], axis=-1), 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_model() -> FingerprintNet:
    return FingerprintNet.random_init(FingerprintConfig.tiny(), precision=FP32).eval()


def test_predict_proba_gives_one_row_of_four_probabilities_per_image_of_any_size(tiny_model):
    images = [_face_like(64, 64), _face_like(100, 130), _face_like(256, 256)]
    probabilities = tiny_model.predict_proba(images)
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert tiny_model.predict_proba(images[1:2]).shape == (1, 4)


def test_logits_keep_the_batch_axis_for_a_batch_of_one_in_training_and_eval(tiny_model):
    crop = to_tensor([_face_like(64, 64)])
    assert tiny_model(crop).shape == (1, 4)
    tiny_model.train()
    logits = tiny_model(crop)
    assert logits.shape == (1, 4)
    F.cross_entropy(logits, torch.tensor([2])).backward()


def test_predictions_do_not_depend_on_batch_composition(tiny_model):
    images = [_face_like(96, 96, seed) for seed in range(3)]
    together = tiny_model.predict_proba(images)
    alone = np.concatenate([tiny_model.predict_proba([image]) for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_tiny_model_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = FingerprintNet(FingerprintConfig.tiny()).train()
    crops = to_tensor([_face_like(64, 64, seed) for seed in range(8)])
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = F.cross_entropy(model(crops), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


def test_every_parameter_learns_no_dead_layers():
    torch.manual_seed(0)
    model = FingerprintNet(FingerprintConfig.tiny()).train()
    crops = to_tensor([_face_like(64, 64, seed) for seed in range(4)])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    for _ in range(3):
        loss = F.cross_entropy(model(crops), torch.tensor([0, 1, 2, 3]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    frozen = [name for name, value in model.named_parameters() if torch.equal(value, before[name])]
    assert frozen == []


def test_frequency_path_alone_changes_the_output_when_only_high_frequencies_change(tiny_model):
    smooth = to_tensor([_face_like(64, 64)])
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checkerboard = ((x + y) % 2 * 2 - 1).float() * (3 / 255)
    captured = []
    hook = tiny_model.freq_encoder.register_forward_hook(lambda module, inputs, output: captured.append(output))
    baseline = tiny_model(smooth)
    tiny_model(smooth + 3 / 255)
    tiny_model(smooth + checkerboard)
    hook.remove()
    plain, brighter, patterned = captured
    assert torch.allclose(plain, brighter, atol=1e-4), "a brightness change is not a high frequency"
    assert (patterned - plain).norm() > 1e-3 * plain.norm()
    hook = tiny_model.freq_encoder.register_forward_hook(lambda module, inputs, output: patterned)
    swapped = tiny_model(smooth)
    hook.remove()
    assert (swapped - baseline).abs().max() > 1e-5


def test_residual_only_model_ignores_colour_and_brightness_that_the_rgb_model_sees():
    torch.manual_seed(0)
    residual_only = FingerprintNet(replace(FingerprintConfig.tiny(), rgb_input=False, freq_dim=0)).eval()
    torch.manual_seed(0)
    with_rgb = FingerprintNet(replace(FingerprintConfig.tiny(), freq_dim=0)).eval()
    assert residual_only.trunk.conv1.in_channels == 3 and with_rgb.trunk.conv1.in_channels == 6
    face = to_tensor([_face_like(64, 64)]) * 0.8
    tinted = face + torch.tensor([0.15, 0.0, -0.1]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(residual_only(face), residual_only(tinted), atol=1e-5)
        assert (with_rgb(face) - with_rgb(tinted)).abs().max() > 1e-4


def test_config_refuses_a_trunk_without_input_and_imagenet_init_without_rgb():
    with pytest.raises(ValueError, match="needs an input"):
        replace(FingerprintConfig.tiny(), rgb_input=False, high_pass_input=False)
    with pytest.raises(ValueError, match="needs rgb_input"):
        replace(FingerprintConfig.full(), rgb_input=False)


def test_save_then_from_pretrained_round_trip_is_exact(tiny_model, tmp_path):
    tiny_model.train()
    tiny_model(to_tensor([_face_like(64, 64, seed) for seed in range(4)]))
    tiny_model.eval()
    path = tmp_path / "fp.safetensors"
    tiny_model.save(path, {"note": "test"})
    loaded = FingerprintNet.from_pretrained(path, FP32)
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    images = [_face_like(80, 90)]
    np.testing.assert_array_equal(tiny_model.predict_proba(images), loaded.predict_proba(images))
    assert loaded.config == tiny_model.config and loaded.metadata == {"note": "test"}


def test_from_pretrained_names_the_key_that_does_not_fit(tiny_model, tmp_path):
    path = tmp_path / "fp.safetensors"
    tiny_model.save(path)
    document = json.loads(path.with_suffix(".json").read_text())
    document["config"]["embedding_dim"] = 24
    path.with_suffix(".json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="embedding.0.weight"):
        FingerprintNet.from_pretrained(path, FP32)


def test_imagenet_trunk_is_kept_as_loaded_with_zero_weights_for_the_high_pass_channels(monkeypatch):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().state_dict()

    class FakeWeights:
        class IMAGENET1K_V1:
            @staticmethod
            def get_state_dict(progress: bool = True) -> dict:
                return reference

    monkeypatch.setattr(torchvision.models, "get_model_weights", lambda name: FakeWeights)
    config = replace(FingerprintConfig.tiny(), widths=TORCHVISION_WIDTHS, imagenet_init=True)
    model = FingerprintNet.for_training(config)
    assert torch.equal(model.trunk.layer3[1].conv2.weight, reference["layer3.1.conv2.weight"])
    assert torch.equal(model.trunk.conv1.weight[:, :3], reference["conv1.weight"])
    assert model.trunk.conv1.weight[:, 3:].abs().max() == 0


def test_unfetchable_imagenet_weights_fall_back_to_scratch_with_a_log_line(monkeypatch, caplog):
    class OfflineWeights:
        class IMAGENET1K_V1:
            @staticmethod
            def get_state_dict(progress: bool = True) -> dict:
                raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models, "get_model_weights", lambda name: OfflineWeights)
    config = replace(FingerprintConfig.tiny(), widths=TORCHVISION_WIDTHS, imagenet_init=True)
    model = FingerprintNet.for_training(config)
    assert model(to_tensor([_face_like(64, 64)])).shape == (1, 4)
    assert "from scratch" in caplog.text


def test_full_preset_trunk_has_torchvision_resnet34_keys_and_shapes():
    torch.manual_seed(0)
    ours = FingerprintNet(FingerprintConfig.full()).trunk.state_dict()
    theirs = {k: v for k, v in torchvision.models.resnet34().state_dict().items() if not k.startswith("fc.")}
    assert set(ours) == set(theirs)
    mismatched = [key for key in ours if ours[key].shape != theirs[key].shape]
    assert mismatched == ["conv1.weight"]


def test_shipped_checkpoint_loads_from_the_registry_and_classifies_a_real_face(real_face):
    model = FingerprintNet.from_pretrained("fingerprintnet-small")
    image = load_image(real_face).pixels
    probabilities = model.predict_proba([image])
    assert probabilities.shape == (1, 4)
    assert model.classes_ == ("real", "progan", "stylegan2", "stylegan3")
    assert model.predict([image])[0] in model.classes_
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-4)
