"""Every shipped branch's model speaks scikit-learn's estimator vocabulary, built tiny through its own constructor.

`classes_` a tuple of str; `predict_proba` an (N, len(classes_)) array whose rows sum to 1 in that order; `predict`
answers members of `classes_` only. The two-headed models expose each head as such an estimator, with the held-out
threshold applied inside, so pipeline/branches.py never re-centres a probability itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from core.device import Precision
from pipeline import branches

FP32 = Precision(torch.device("cpu"), torch.float32)
ARCHITECTURES = ("progan", "stylegan2", "stylegan3")


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in ((96, 80), (240, 256))]


def _clip(tmp_path: Path):
    from detector.clip_probe import ClipProbe, ClipProbeConfig

    return ClipProbe.random_init(ClipProbeConfig.tiny(), precision=FP32), _images()


def _fingerprint(tmp_path: Path):
    from detector.fingerprint_net import FingerprintConfig, FingerprintNet

    return FingerprintNet.random_init(FingerprintConfig.tiny(), precision=FP32), _images()


def _spectral(tmp_path: Path):
    from detector.spectral import SpectralDetector, SpectralSpec

    model = SpectralDetector.random_init(SpectralSpec.tiny())
    model.threshold = 0.3  # a held-out threshold other than 0.5, so the re-centring really runs
    return model, _images()


def _residual(tmp_path: Path):
    from detector.residual_net import ResidualConfig, ResidualNet

    model = ResidualNet.random_init(ResidualConfig.tiny())
    model.threshold = 0.7
    return model, _images()


def _latent(tmp_path: Path):
    from attribution.latent_svm import LatentAttributor
    from encoder.e4e import E4EConfig

    config = E4EConfig.tiny()
    model = LatentAttributor.random_init((config.n_styles, config.style_dim))
    return model, np.random.default_rng(1).normal(size=(5, config.n_styles, config.style_dim)).astype(np.float32)


def _cue(kind: str, feature_names: tuple[str, ...]):
    from detector.feature_model import FeatureModel

    rng = np.random.default_rng(2)
    labels = np.array(["real", *ARCHITECTURES] * 6)
    model = FeatureModel.fit(kind, f"{kind}-test", feature_names, rng.normal(size=(len(labels), len(feature_names))),
                             labels)
    model.detector.threshold = 0.4
    return model, rng.normal(size=(4, len(feature_names)))


def _geometry(tmp_path: Path):
    from detector.face_geometry import FEATURE_NAMES

    return _cue("face-geometry", FEATURE_NAMES)


def _colour(tmp_path: Path):
    from detector.colour_stats import FEATURE_NAMES

    return _cue("colour-stats", FEATURE_NAMES)


BUILDERS = {branches.ClipProbeBranch: _clip, branches.FingerprintBranch: _fingerprint,
            branches.SpectralBranch: _spectral, branches.ResidualBranch: _residual, branches.LatentBranch: _latent,
            branches.GeometryBranch: _geometry, branches.ColourBranch: _colour}


def _leaf_subclasses(cls: type) -> set[type]:
    children = cls.__subclasses__()
    return set().union(*map(_leaf_subclasses, children)) if children else {cls}


def _check_estimator(estimator, inputs) -> None:
    assert isinstance(estimator.classes_, tuple) and all(isinstance(name, str) for name in estimator.classes_)
    probabilities = estimator.predict_proba(inputs)
    assert probabilities.shape == (len(inputs), len(estimator.classes_))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    predicted = estimator.predict(inputs)
    assert len(predicted) == len(inputs) and set(predicted) <= set(estimator.classes_)
    assert predicted == [estimator.classes_[i] for i in probabilities.argmax(axis=1)]


def test_every_shipped_model_branch_is_covered():
    assert set(BUILDERS) == _leaf_subclasses(branches.ModelBranch)


@pytest.mark.parametrize("branch", BUILDERS, ids=lambda branch: branch.name)
def test_the_branch_model_follows_the_estimator_vocabulary(branch, tmp_path):
    model, inputs = BUILDERS[branch](tmp_path)
    _check_estimator(model, inputs)
    for head in ("detector", "attributor"):
        if hasattr(model, head):
            _check_estimator(getattr(model, head), inputs)
    if hasattr(model, "detector"):
        assert model.detector.classes_ == ("real", "fake") and model.attributor.classes_ == ARCHITECTURES


# the cue branches compute their features from the image first (tests/pipeline/test_cue_branches.py)
@pytest.mark.parametrize("branch", [b for b in BUILDERS if b.level == "image" and not issubclass(b, branches.CueBranch)],
                         ids=lambda branch: branch.name)
def test_an_image_branch_reports_its_model_probabilities_keyed_by_classes(branch, tmp_path):
    model, images = BUILDERS[branch](tmp_path)
    evidence = branch(model, {"tiny": "random"}).run(images)
    expected = model.predict_proba(images)
    assert [list(e.probabilities) for e in evidence] == [list(model.classes_)] * len(images)
    assert [list(e.probabilities.values()) for e in evidence] == expected.astype(float).tolist()


def test_two_headed_models_share_p_fake_out_by_p_architecture(tmp_path):
    for build in (_spectral, _residual):
        model, images = build(tmp_path)
        fake = model.detector.predict_proba(images)[:, 1]
        np.testing.assert_allclose(model.predict_proba(images)[:, 0], 1.0 - fake)
        np.testing.assert_allclose(model.predict_proba(images)[:, 1:], fake[:, None] * model.attributor.predict_proba(images))


def test_pipeline_branches_never_recentre_a_probability_themselves():
    source = Path(branches.__file__).read_text(encoding="utf-8")
    assert not re.search(r"import[^\n]*\brecentre\b", source)
    assert "recentre(" not in source
