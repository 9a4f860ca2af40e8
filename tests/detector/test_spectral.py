"""The spectral branch: DCT features, linear heads, pickle-free artifact, and its leave-one-source-out scripts."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runners import evaluate_sources, train_spectral
from core.augment import AugmentSettings
from detector.spectral import SpectralDetector, SpectralSpec, holdout_ood, image_features, training_views

SPEC = SpectralSpec(crop=64, dct_pool=4, azimuthal=True, num_crops=1, resize=None)


def _natural(rng: np.random.Generator, size: int = 72) -> np.ndarray:
    """Smooth random texture: power falling with frequency, like a photo."""
    noise = rng.normal(size=(size // 8, size // 8, 3))
    small = Image.fromarray(np.clip(128 + 40 * noise, 0, 255).astype(np.uint8))
    return np.asarray(small.resize((size, size), Image.Resampling.BICUBIC))


def _upsampled(rng: np.random.Generator, size: int = 72) -> np.ndarray:
    """The same texture plus a 2-pixel checkerboard, the trace of transposed-convolution up-sampling."""
    grid = np.indices((size, size)).sum(axis=0) % 2 * 24 - 12
    return np.clip(_natural(rng, size).astype(int) + grid[..., None], 0, 255).astype(np.uint8)


def test_linear_heads_learn_the_upsampling_checkerboard_and_generalise_to_new_images():
    rng = np.random.default_rng(0)
    train = [_natural(rng) for _ in range(20)] + [_upsampled(rng) for _ in range(20)]
    labels = ["real"] * 20 + ["stylegan2"] * 20
    views = np.stack([image_features([image], SPEC) for image in train])
    detector = SpectralDetector.fit_features(views, labels, SPEC, C=1.0)
    test = [_natural(rng) for _ in range(5)] + [_upsampled(rng) for _ in range(5)]
    assert detector.detector.predict(test) == ["real"] * 5 + ["fake"] * 5
    assert detector.attributor is None  # only one known GAN class: no attribution head
    assert detector.classes_ == ("real", "fake") and detector.predict_proba(test).shape == (10, 2)


def test_artifact_round_trips_through_npz_and_json_without_pickle(tmp_path):
    detector = SpectralDetector.random_init(SpectralSpec.tiny())
    detector.threshold = 0.42
    detector.save(tmp_path / "spectral", skill={"protocol": "leave-one-source-out"})
    loaded = SpectralDetector.from_pretrained(tmp_path / "spectral.npz")
    images = [_upsampled(np.random.default_rng(1)), _natural(np.random.default_rng(2))]
    expected, actual = detector.predict_proba(images), loaded.predict_proba(images)
    np.testing.assert_array_equal(actual, expected)
    assert loaded.threshold == 0.42 and loaded.skill == {"protocol": "leave-one-source-out"}
    assert loaded.attributor.predict_proba(images).shape == (2, 3)
    assert loaded.classes_ == ("real", "progan", "stylegan2", "stylegan3")


def test_the_held_out_threshold_is_applied_inside_the_detector():
    detector = SpectralDetector.random_init(SpectralSpec.tiny())
    images = [_natural(np.random.default_rng(2))]
    raw = float(detector.head_probabilities(detector.features(images))[0][0])
    detector.threshold = raw
    assert detector.detector.predict_proba(images)[0, 1] == pytest.approx(0.5)
    np.testing.assert_allclose(detector.predict_proba(images)[0, 1:].sum(), 0.5)


def test_shipped_artifact_loads_without_pickle_and_carries_its_skill_record():
    path = Path(__file__).resolve().parents[2] / "artifacts" / "spectral-dct.npz"
    detector = SpectralDetector.from_pretrained(path)
    assert path.stat().st_size + path.with_suffix(".json").stat().st_size < 1_000_000
    assert detector.skill["protocol"] == "leave-one-source-out" and 0.0 < detector.threshold < 1.0
    probabilities = detector.predict_proba([_natural(np.random.default_rng(6), size=200)])
    assert probabilities.shape == (1, len(detector.classes_)) and np.allclose(probabilities.sum(axis=1), 1.0)


def test_artifact_with_wrong_format_or_missing_half_is_refused(tmp_path):
    SpectralDetector.random_init(SpectralSpec.tiny()).save(tmp_path / "spectral")
    document = json.loads((tmp_path / "spectral.json").read_text())
    (tmp_path / "spectral.json").write_text(json.dumps({**document, "format": "something-else"}))
    with pytest.raises(ValueError, match="not a gantrace-spectral"):
        SpectralDetector.from_pretrained(tmp_path / "spectral.npz")
    (tmp_path / "spectral.json").unlink()
    with pytest.raises(FileNotFoundError, match="spectral.json: missing"):
        SpectralDetector.from_pretrained(tmp_path / "spectral.npz")


def test_training_views_are_reproducible_per_seed_and_small_images_are_enlarged():
    image = _natural(np.random.default_rng(3), size=40)
    first = training_views(image, SPEC, replace(AugmentSettings.spectral(), views=3), np.random.default_rng(7))
    again = training_views(image, SPEC, replace(AugmentSettings.spectral(), views=3), np.random.default_rng(7))
    assert first.shape == (3, SPEC.dim) and np.array_equal(first, again)
    assert image_features([image[:20, :20]], SPEC).shape == (1, SPEC.dim)


def test_resize_puts_one_face_at_two_sizes_on_the_same_features():
    large = _natural(np.random.default_rng(4), size=256)
    small = np.asarray(Image.fromarray(large).resize((128, 128), Image.Resampling.LANCZOS))
    rescaled = SpectralSpec(crop=64, dct_pool=4, num_crops=1, resize=64)
    native = SpectralSpec(crop=64, dct_pool=4, num_crops=1, resize=None)
    gap = {name: np.abs(np.subtract(*image_features([large, small], spec))).mean()
           for name, spec in (("rescaled", rescaled), ("native", native))}
    assert gap["rescaled"] < gap["native"] / 3


def test_resized_training_views_have_the_spec_dimension():
    spec = SpectralSpec(crop=64, dct_pool=4, num_crops=1, resize=64)
    views = training_views(_natural(np.random.default_rng(5), size=200), spec, replace(AugmentSettings.spectral(), views=2),
                           np.random.default_rng(0))
    assert views.shape == (2, spec.dim) and np.isfinite(views).all()


def test_non_rgb_input_is_refused_with_its_index():
    with pytest.raises(ValueError, match="image 1"):
        SpectralDetector.random_init(SpectralSpec.tiny()).predict_proba([_natural(np.random.default_rng(0)),
                                                                         np.zeros((64, 64), np.uint8)])


def _face_folder(root: Path) -> Path:
    """Four sources: a real/stylegan2 pair sharing one repo, a real-only, a progan-only and a stylegan3-only one."""
    rng = np.random.default_rng(0)
    root.mkdir()
    plan = [("real", "pair/repo", _natural), ("stylegan2", "pair/repo", _upsampled), ("real", "photos/repo", _natural),
            ("progan", "pg/repo", _upsampled), ("stylegan3", "sg3/repo", _upsampled), ("real", "more/repo", _natural)]
    rows = []
    for label, repo, make in plan:
        (root / label).mkdir(exist_ok=True)
        for index in range(4):
            name = f"{label}/{repo.replace('/', '__')}_{index}.png"
            Image.fromarray(make(rng)).save(root / name)
            rows.append({"class": label, "file": name, "repo": repo, "path_in_repo": name})
    with open(root / "provenance.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["class", "file", "repo", "path_in_repo"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_evaluate_sources_writes_the_per_source_table_for_the_spectral_branch(tmp_path):
    module = evaluate_sources
    data = _face_folder(tmp_path / "faces")
    assert module.main([str(data), "--branch", "spectral", "--out", str(tmp_path / "out"),
                        "--cache", str(tmp_path / "cache"), "--C", "1.0"]) == 0
    document = json.loads((tmp_path / "out" / "source_table.json").read_text())
    sources = [row["source"] for row in document["table"]["conditions"]["jpeg75"]["sources"]]
    assert sources == ["more/repo", "pair/repo", "pg/repo", "photos/repo", "sg3/repo"]
    assert document["skill"]["sources"] == 5 and set(document["table"]["conditions"]) == {"clean", "jpeg75", "half"}
    assert "| pair/repo | 4 | 4 |" in (tmp_path / "out" / "source_table.md").read_text()


def test_evaluate_sources_exits_2_naming_the_missing_provenance_file(tmp_path, capsys):
    module = evaluate_sources
    (tmp_path / "real").mkdir()
    assert module.main([str(tmp_path), "--branch", "spectral", "--out", str(tmp_path / "out")]) == 2
    assert "provenance.csv: missing" in capsys.readouterr().err


def _ood_detector() -> tuple[SpectralDetector, np.ndarray]:
    """A tiny detector whose scaler is centred on one natural texture, with that texture."""
    detector = SpectralDetector.random_init(SpectralSpec.tiny())
    rng = np.random.default_rng(8)
    usual = _natural(rng)
    spread = image_features([_natural(rng) for _ in range(6)], detector.spec).std(axis=0)
    detector.binary.mean = image_features([usual], detector.spec)[0]
    detector.binary.scale = np.maximum(spread, 1e-3).astype(np.float32)
    return detector, usual


def test_out_of_distribution_flags_a_far_spectrum_and_not_the_training_mean():
    detector, usual = _ood_detector()
    flat = np.full((72, 72, 3), 128, np.uint8)
    assert detector.out_of_distribution([usual, flat]) == [None, None]  # no ood record: never flags
    detector.ood = {"statistic": "rms standardised DCT features", "quantile": 0.99, "threshold": 3.0}
    at_mean, far = detector.out_of_distribution([usual, flat])
    assert at_mean is None
    assert far.startswith("its DCT spectrum is farther from the training images than 99% of them (RMS z ")
    assert far.endswith(" > 3.0)") and float(far.split("RMS z ")[1].split(" >")[0]) > 3.0


def test_ood_record_survives_save_and_load(tmp_path):
    detector, usual = _ood_detector()
    detector.ood = {"statistic": "rms standardised DCT features", "quantile": 0.99, "threshold": 0.0}
    detector.save(tmp_path / "spectral")
    loaded = SpectralDetector.from_pretrained(tmp_path / "spectral.npz")
    assert loaded.ood == detector.ood
    assert loaded.out_of_distribution([_natural(np.random.default_rng(9))])[0] is not None


def test_holdout_ood_fires_on_the_source_unlike_the_others():
    rng = np.random.default_rng(0)
    labels = ["real"] * 20 + ["progan"] * 20 + ["stylegan2"] * 20 + ["diffusion"] * 20
    sources = ["a"] * 20 + ["b"] * 20 + ["c"] * 20 + ["d"] * 20
    views = rng.normal(size=(80, 3, 8))
    tests = {"clean": rng.normal(size=(80, 8))}
    tests["clean"][60:] += 4.0  # source "d" tests far from every training view
    holdout = holdout_ood(views, tests, labels, sources)
    assert holdout["summary"]["clean"]["other_gan_diffusion"] == 1.0
    assert holdout["summary"]["clean"]["real"] < 0.2 and holdout["summary"]["clean"]["known_gan"] < 0.2
    assert holdout["sources"] == {"real": 1, "known_gan": 2, "other_gan_diffusion": 1}


def test_train_spectral_ood_only_adds_the_record_without_touching_the_weights(tmp_path):
    module = train_spectral
    data = _face_folder(tmp_path / "faces")
    out = tmp_path / "art" / "spectral"
    common = [str(data), "--out", str(out), "--cache", str(tmp_path / "cache"), "--report", str(tmp_path / "rep")]
    assert module.main([*common, "--C", "1.0"]) == 0
    weights = (out.with_suffix(".npz")).read_bytes()
    document = json.loads(out.with_suffix(".json").read_text())
    del document["ood"]
    out.with_suffix(".json").write_text(json.dumps(document))
    assert module.main([*common, "--ood-only"]) == 0
    assert module.main([*common, "--ood-only"]) == 0
    assert out.with_suffix(".npz").read_bytes() == weights
    refreshed = json.loads(out.with_suffix(".json").read_text())
    assert refreshed["skill"] == document["skill"] and refreshed["ood"]["quantile"] == 0.99
    card = out.with_suffix(".md").read_text()
    assert card.count("## Out-of-distribution signal") == 1
    assert card.index("## Out-of-distribution signal") < card.index("## Limits")


def test_train_spectral_ood_only_exits_2_naming_a_missing_artifact(tmp_path, capsys):
    module = train_spectral
    data = _face_folder(tmp_path / "faces")
    assert module.main([str(data), "--out", str(tmp_path / "none" / "spectral"), "--ood-only"]) == 2
    assert "spectral.npz: missing" in capsys.readouterr().err
