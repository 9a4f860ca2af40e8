"""The latent SVM: group-respecting splits, open-set rule, deterministic inference, safe persistence; and the
GANOrigin adapter on a trio built here the way GANOrigin's pickles are built."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
from foreign_pickles import WritesFileWhenUnpickled, build_ganorigin_trio
from sklearn.linear_model import LogisticRegression

from attribution.ganorigin import GANOriginAttributor
from attribution.latent_svm import UNKNOWN, ForeignArtifactError, LatentAttributor, group_validation_split
from attribution.open_set import open_set_labels

STYLES, DIM = 18, 8


def _latents(n_images: int = 45, copies: int = 3, seed: int = 0, dtype=np.float16):
    """Three well-separated classes; copies of one image are small perturbations of it and share a group."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, size=(3, STYLES, DIM))
    latents, labels, groups = [], [], []
    for image in range(n_images):
        label = image % 3
        base = centres[label] + rng.normal(0, 0.6, size=(STYLES, DIM))
        for _ in range(copies):
            latents.append(base + rng.normal(0, 0.1, size=(STYLES, DIM)))
            labels.append(["progan", "stylegan2", "stylegan3"][label])
            groups.append(f"image-{image:03d}")
    return np.array(latents, dtype=dtype), np.array(labels), np.array(groups)


@pytest.fixture(scope="module")
def fitted():
    latents, labels, groups = _latents()
    return LatentAttributor(C=0.1, calibration_folds=3).fit(latents, labels, groups), (latents, labels, groups)


def test_validation_split_never_puts_a_group_on_both_sides():
    latents, labels, groups = _latents(n_images=60)
    train, validation = group_validation_split(labels, groups, 0.2, seed=3)
    assert set(groups[train]).isdisjoint(groups[validation])
    assert len(train) + len(validation) == len(labels)
    assert set(labels[validation]) == {"progan", "stylegan2", "stylegan3"}


def test_calibration_folds_never_put_a_group_on_both_sides(fitted):
    model, (_, _, groups) = fitted
    train = np.setdiff1d(np.arange(len(groups)), model.validation_index_)
    train_groups = groups[train]
    for fit_rows, calibration_rows in model.pipeline_.named_steps["svm"].cv:
        assert set(train_groups[fit_rows]).isdisjoint(train_groups[calibration_rows])


def test_validation_rows_are_not_used_for_training(fitted):
    model, (_, _, groups) = fitted
    train = np.setdiff1d(np.arange(len(groups)), model.validation_index_)
    assert set(groups[train]).isdisjoint(groups[model.validation_index_])
    data = model.metadata["data"]
    assert sum(c["validation_rows"] for c in data["per_class"].values()) == len(model.validation_index_)


def test_probabilities_are_calibrated_distributions_over_the_classes(fitted):
    model, (latents, labels, _) = fitted
    probabilities = model.predict_proba(latents)
    assert model.classes_ == ("progan", "stylegan2", "stylegan3")
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.mean(np.asarray(model.predict(latents)) == labels) > 0.95


def test_latent_far_from_every_class_is_unknown(fitted):
    model, (latents, _, _) = fitted
    far = np.full((1, STYLES, DIM), 40.0, dtype=np.float32)
    scores = model.open_set_scores(far)
    assert scores["distance"][0] > model.distance_threshold_
    assert open_set_labels(model, far) == [UNKNOWN]
    assert model.predict(far)[0] in model.classes_  # predict answers a class; "unknown" is the open-set function's
    assert UNKNOWN not in open_set_labels(model, latents[:6])


def test_low_confidence_latent_is_unknown(fitted):
    model, (latents, labels, _) = fitted
    middle = np.mean([latents[labels == name].astype(np.float32).mean(axis=0) for name in model.classes_], axis=0)
    top = model.predict_proba(middle[None]).max()
    assert top < model.probability_threshold_
    assert open_set_labels(model, middle[None]) == [UNKNOWN]


def test_open_set_rule_keeps_about_the_chosen_share_of_known_validation_latents(fitted):
    model, _ = fitted
    open_set = model.metadata["open_set"]
    assert open_set["validation_rejected_by_probability"] <= 0.05 + 1e-9
    assert open_set["validation_rejected"] <= 0.06 + 1e-9
    assert "quantile" in open_set["rule"]


def test_inference_is_deterministic(fitted):
    model, (latents, _, _) = fitted
    assert np.array_equal(model.predict_proba(latents), model.predict_proba(latents))
    assert model.predict(latents) == model.predict(latents)


def test_same_seed_gives_the_same_model():
    latents, labels, groups = _latents()
    first = LatentAttributor(C=0.1, calibration_folds=3, random_state=5).fit(latents, labels, groups)
    second = LatentAttributor(C=0.1, calibration_folds=3, random_state=5).fit(latents, labels, groups)
    assert np.array_equal(first.predict_proba(latents), second.predict_proba(latents))


def test_flattened_and_shaped_latents_give_the_same_answer(fitted):
    model, (latents, _, _) = fitted
    assert np.array_equal(model.predict_proba(latents), model.predict_proba(latents.reshape(len(latents), -1)))


def test_wrong_latent_size_is_refused_with_the_expected_shape(fitted):
    model, _ = fitted
    with pytest.raises(ValueError, match=f"{STYLES}, {DIM}"):
        model.predict(np.zeros((2, 18, 512), dtype=np.float32))


def test_unknown_cannot_be_a_training_class():
    latents, labels, groups = _latents()
    labels = np.where(labels == "progan", UNKNOWN, labels)
    with pytest.raises(ValueError, match="open-set"):
        LatentAttributor().fit(latents, labels, groups)


def test_skops_artifact_is_one_file_that_loads_with_identical_probabilities_and_metadata(fitted, tmp_path):
    model, (latents, _, _) = fitted
    path = tmp_path / "svm.skops"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["svm.skops"]
    loaded = LatentAttributor.from_pretrained(path)
    assert np.array_equal(loaded.predict_proba(latents), model.predict_proba(latents))
    assert open_set_labels(loaded, latents) == open_set_labels(model, latents)
    assert loaded.distance_threshold_ == model.distance_threshold_
    assert loaded.metadata == model.metadata
    assert loaded.metadata["skill"]["attribution"]["accuracy"] == model.metadata["validation"]["accuracy"]
    assert loaded.origin.startswith("trained by GANTrace") and f"on {len(latents)} latents" in loaded.origin
    assert loaded.get_params() == model.get_params()


def _tampered_skops(model: LatentAttributor, path: Path, extra: object) -> Path:
    """A skops file shaped like ours with one more object in it; skops writes it without complaint."""
    skops.io.dump({"format": "gantrace-latent-svm", "format_version": 2, "pipeline": model.pipeline_,
                   "extra": extra}, path)
    return path


class _Canary:
    """A type of nobody's: skops would rebuild it from its attributes if it were trusted."""

    def __init__(self):
        self.payload = "anything"


def test_skops_artifact_with_an_untrusted_type_is_refused_naming_file_and_type(fitted, tmp_path):
    model, _ = fitted
    path = _tampered_skops(model, tmp_path / "shared.skops", _Canary())
    with pytest.raises(ForeignArtifactError) as info:
        LatentAttributor.from_pretrained(path)
    message = str(info.value)
    assert str(path) in message and f"{__name__}._Canary" in message and "\n" not in message


def test_skops_artifact_with_a_type_skops_trusts_but_we_do_not_use_is_refused(fitted, tmp_path):
    model, _ = fitted
    path = _tampered_skops(model, tmp_path / "shared.skops", LogisticRegression())
    assert "sklearn.linear_model._logistic.LogisticRegression" not in skops.io.get_untrusted_types(file=path)
    with pytest.raises(ForeignArtifactError, match="LogisticRegression"):
        LatentAttributor.from_pretrained(path)


def test_unknown_artifact_suffix_is_refused(fitted, tmp_path):
    model, _ = fitted
    with pytest.raises(ValueError, match=".pkl"):
        model.save(tmp_path / "svm.pkl")


def test_legacy_joblib_artifact_still_loads_and_predicts_identically(fitted, tmp_path):
    model, (latents, _, _) = fitted
    path = tmp_path / "svm.joblib"
    digest = model.save(path)
    assert (tmp_path / "svm.joblib.sha256").read_text().split() == [digest, "svm.joblib"]
    loaded = LatentAttributor.from_pretrained(path)
    assert np.array_equal(loaded.predict_proba(latents), model.predict_proba(latents))
    assert open_set_labels(loaded, latents) == open_set_labels(model, latents)
    assert loaded.metadata["classes"] == model.metadata["classes"]
    assert loaded.get_params() == model.get_params()


def test_feature_spec_is_recorded_for_whoever_encodes_faces():
    latents, labels, groups = _latents()
    model = LatentAttributor(calibration_folds=3).fit(latents, labels, groups,
                                                      feature_spec={"latent_avg_added": True})
    spec = model.metadata["feature_spec"]
    assert spec["latent_avg_added"] is True
    assert spec["latent_shape"] == [STYLES, DIM]
    assert spec["latent_dtype"] == "float16"


@pytest.mark.parametrize(("name", "reason"), [("foreign.joblib", "trust_foreign"),
                                             ("renamed.skops", "not a skops file")])
def test_foreign_pickle_is_refused_before_it_is_unpickled(tmp_path, name, reason):
    marker = tmp_path / "code-ran"
    path = tmp_path / name
    joblib.dump({"model": WritesFileWhenUnpickled(marker)}, path)
    with pytest.raises(ForeignArtifactError, match=reason):
        LatentAttributor.from_pretrained(path)
    assert not marker.exists()


def test_trusted_foreign_pickle_without_gantrace_marker_is_still_refused(tmp_path):
    path = tmp_path / "foreign.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    with pytest.raises(ForeignArtifactError, match="marker"):
        LatentAttributor.from_pretrained(path, trust_foreign=True)


def test_artifact_changed_after_saving_is_refused(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "svm.joblib"
    model.save(path)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ForeignArtifactError, match="changed"):
        LatentAttributor.from_pretrained(path)


def test_pinned_sha256_replaces_the_sidecar(fitted, tmp_path):
    model, (latents, _, _) = fitted
    path = tmp_path / "svm.joblib"
    digest = model.save(path)
    (tmp_path / "svm.joblib.sha256").unlink()
    assert np.array_equal(LatentAttributor.from_pretrained(path, expected_sha256=digest).predict_proba(latents[:3]),
                          model.predict_proba(latents[:3]))
    with pytest.raises(ForeignArtifactError, match="expected"):
        LatentAttributor.from_pretrained(path, expected_sha256="0" * 64)


def test_sklearn_version_mismatch_warns(fitted, tmp_path):
    model, _ = fitted
    path = tmp_path / "svm.joblib"
    model.save(path)
    payload = joblib.load(path)
    payload["metadata"]["versions"]["sklearn"] = "0.0.1"
    joblib.dump(payload, path)
    with pytest.warns(UserWarning, match="scikit-learn 0.0.1"):
        LatentAttributor.from_pretrained(path, trust_foreign=True)


def test_ganorigin_pickles_are_refused_without_opt_in(tmp_path):
    model, scaler, encoder, _ = build_ganorigin_trio(tmp_path)
    with pytest.raises(ForeignArtifactError, match="trust_foreign"):
        GANOriginAttributor.load(model, scaler, encoder)


def test_ganorigin_adapter_matches_the_published_recipe(tmp_path):
    model_path, scaler_path, encoder_path, features = build_ganorigin_trio(tmp_path)
    adapter = GANOriginAttributor.load(model_path, scaler_path, encoder_path, trust_foreign=True)
    latents = features.reshape(-1, 18, 512)
    svm, scaler, encoder = joblib.load(model_path), joblib.load(scaler_path), joblib.load(encoder_path)
    expected = svm.predict_proba(scaler.transform(features))
    assert np.allclose(adapter.predict_proba(latents), expected)
    assert list(adapter.classes_) == ["progan", "stylegan2", "stylegan3"]
    assert adapter.predict(latents) == encoder.inverse_transform(expected.argmax(axis=1)).tolist()
    assert adapter.metadata["feature_spec"]["latent_avg_added"] is False


def test_ganorigin_adapter_says_unknown_under_its_optional_floor(tmp_path):
    model_path, scaler_path, encoder_path, features = build_ganorigin_trio(tmp_path)
    adapter = GANOriginAttributor.load(model_path, scaler_path, encoder_path, trust_foreign=True,
                                       min_probability=1.01)
    assert set(open_set_labels(adapter, features[:3])) == {UNKNOWN}
    assert set(adapter.predict(features[:3])) <= set(adapter.classes_)


def test_ganorigin_scaler_of_the_wrong_size_is_refused(tmp_path):
    paths = build_ganorigin_trio(tmp_path, n_features=100)[:3]
    with pytest.raises(ValueError, match="9216"):
        GANOriginAttributor.load(*paths, trust_foreign=True)


def test_ganorigin_adapter_refuses_latents_of_the_wrong_shape(tmp_path):
    adapter = GANOriginAttributor.load(*build_ganorigin_trio(tmp_path)[:3], trust_foreign=True)
    with pytest.raises(ValueError, match="18, 512"):
        adapter.predict_proba(np.zeros((1, 18, 16)))
