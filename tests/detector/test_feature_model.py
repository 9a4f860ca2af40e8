"""The linear model over cached cue features: it learns, follows the sklearn vocabulary, and round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from detector.feature_model import FeatureModel

NAMES = ("a", "b", "c")


def _data(rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Real rows near 0, each GAN shifted along its own axis."""
    labels = np.array(["real", "progan", "stylegan2", "stylegan3"] * n)
    shift = {"real": (0, 0, 0), "progan": (3, 0, 0), "stylegan2": (0, 3, 0), "stylegan3": (0, 0, 3)}
    return rng.normal(size=(len(labels), 3)) + np.array([shift[label] for label in labels]), labels


def test_heads_learn_and_speak_the_vocabulary(tmp_path):
    features, labels = _data(np.random.default_rng(0))
    model = FeatureModel.fit("toy", "toy-1", NAMES, features, labels, C=1.0)
    test, truth = _data(np.random.default_rng(1), 10)
    detector, attributor = model.detector, model.attributor
    assert detector.classes_ == ("real", "fake") and attributor.classes_ == ("progan", "stylegan2", "stylegan3")
    proba = detector.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean((np.asarray(detector.predict(test)) == "fake") == (truth != "real")) > 0.8
    gans = truth != "real"
    assert np.mean(np.asarray(attributor.predict(test[gans])) == truth[gans]) > 0.8
    assert model.classes_ == ("real", "progan", "stylegan2", "stylegan3")
    np.testing.assert_allclose(model.predict_proba(test).sum(axis=1), 1.0)

    model.detector.threshold = 0.3  # applied inside: 0.3 of the head's own P(fake) becomes 0.5
    shifted = model.detector.predict_proba(test)[:, 1]
    assert np.all((shifted > 0.5) == (proba[:, 1] > 0.3))
    model.save(tmp_path / "toy")
    loaded = FeatureModel.from_pretrained(tmp_path / "toy", "toy", "toy-1")
    np.testing.assert_allclose(loaded.predict_proba(test), model.predict_proba(test), atol=1e-6)
    assert loaded.detector.threshold == 0.3 and loaded.feature_names == NAMES


def test_weights_of_another_feature_version_are_refused(tmp_path):
    features, labels = _data(np.random.default_rng(0))
    FeatureModel.fit("toy", "toy-1", NAMES, features, labels).save(tmp_path / "toy")
    with pytest.raises(ValueError, match="toy-1"):
        FeatureModel.from_pretrained(tmp_path / "toy", "toy", "toy-2")


def test_without_every_known_gan_there_is_no_attributor():
    features, labels = _data(np.random.default_rng(0))
    kept = labels != "stylegan3"
    assert FeatureModel.fit("toy", "toy-1", NAMES, features[kept], labels[kept]).attributor is None
