"""GANOrigin's pickles as the scikit-learn releases of 2024-2026 wrote them, converted by the user's scikit-learn.

Each folder of tests/data/sklearn_pickles holds the trio one release pickled and that release's own probabilities
on shared fixed inputs (made by make_fixtures.py there). The consent conversion must turn each into a `.skops`
attributor with the same probabilities to 1e-9, or refuse in one line that names the release the files need.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import joblib
import numpy as np
import pytest
import sklearn
from foreign_pickles import GANORIGIN_FILES
from sklearn.preprocessing import LabelEncoder

from attribution.ganorigin import IncompatiblePickleError, convert_ganorigin, pickled_sklearn_versions
from attribution.latent_svm import LatentAttributor

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "sklearn_pickles"
RELEASES = sorted(path.name for path in FIXTURES.iterdir() if (path / "versions.json").is_file())


def _release_tuple(release: str) -> tuple[int, ...]:
    return tuple(int(number) for number in re.findall(r"\d+", release)[:3])


def _convert(folder: Path, out: Path) -> LatentAttributor:
    return convert_ganorigin(*(folder / name for name in GANORIGIN_FILES), out=out, origin=f"test:{folder.name}",
                             trust_foreign=True)


def _assert_refusal_names(err: IncompatiblePickleError, release: str, out: Path) -> None:
    message = str(err)
    assert "\n" not in message
    assert f"pickled by scikit-learn {release}" in message and f"pip install scikit-learn=={release}" in message
    assert not out.exists()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Path, LatentAttributor | IncompatiblePickleError]]:
    """Every release's trio converted once: where the .skops file was asked for, and the attributor read back
    from it or the refusal."""
    results = {}
    for release in RELEASES:
        out = tmp_path_factory.mktemp(release) / "ganorigin.skops"
        try:
            _convert(FIXTURES / release, out)
            results[release] = out, LatentAttributor.from_pretrained(out)
        except IncompatiblePickleError as err:
            results[release] = out, err
    return results


def test_fixtures_cover_the_releases_of_2024_to_2026():
    assert {release.rsplit(".", 1)[0] for release in RELEASES} >= {"1.4", "1.5", "1.6", "1.7", "1.8"}


@pytest.mark.parametrize("release", RELEASES)
def test_release_converts_with_its_own_probabilities_or_refuses_in_one_line_naming_itself(outcomes, release):
    folder = FIXTURES / release
    assert json.loads((folder / "versions.json").read_text())["scikit-learn"] == release
    out, outcome = outcomes[release]
    if isinstance(outcome, IncompatiblePickleError):
        _assert_refusal_names(outcome, release, out)
        return
    probabilities = outcome.predict_proba(np.load(FIXTURES / "inputs.npy"))
    np.testing.assert_allclose(probabilities, np.load(folder / "probabilities.npy"), rtol=0, atol=1e-9)
    assert list(outcome.classes_) == ["progan", "stylegan2", "stylegan3"]
    assert outcome.metadata["source"]["pickled_with_sklearn"] == dict.fromkeys(
        ("model", "scaler", "label_encoder"), [release])


def test_every_release_up_to_the_running_one_converts(outcomes):
    """Not a promise scikit-learn makes, but what holds today: if a release stops reading older pickles, the
    conversion still refuses cleanly, and this test says which fixtures the user's scikit-learn lost."""
    running = _release_tuple(sklearn.__version__)
    refused = {release for release, (_, outcome) in outcomes.items() if isinstance(outcome, IncompatiblePickleError)}
    lost = sorted(release for release in refused if _release_tuple(release) <= running)
    assert not lost, f"scikit-learn {sklearn.__version__} refuses the pickles of {lost}"
    assert len(outcomes) - len(refused) >= 3


def _patched_copy(tmp_path: Path, release: str, name: str, replacements: dict[bytes, bytes]) -> Path:
    """The release's trio copied, with each byte string replaced once by another of the same length in `name`."""
    folder = tmp_path / release
    folder.mkdir()
    for file in GANORIGIN_FILES:
        data = (FIXTURES / release / file).read_bytes()
        for old, new in replacements.items() if file == name else ():
            assert len(old) == len(new) and data.count(old) == 1
            data = data.replace(old, new)
        (folder / file).write_bytes(data)
    return folder


def test_a_pickle_naming_a_module_this_release_lacks_is_refused_in_one_line(tmp_path):
    release = RELEASES[-1]
    folder = _patched_copy(tmp_path, release, "gan_attribution_model.pkl",
                           {b"sklearn.svm._classes": b"sklearn.svm._klasses"})
    out = tmp_path / "ganorigin.skops"
    with pytest.raises(IncompatiblePickleError) as info:
        _convert(folder, out)
    _assert_refusal_names(info.value, release, out)
    assert "gan_attribution_model.pkl" in str(info.value) and "sklearn.svm._klasses" in str(info.value)


def test_a_pickle_whose_fitted_attributes_differ_is_refused_in_one_line(tmp_path):
    release = RELEASES[0]
    folder = _patched_copy(tmp_path, release, "gan_attribution_model.pkl", {b"_probA": b"_probZ"})
    out = tmp_path / "ganorigin.skops"
    with pytest.raises(IncompatiblePickleError) as info:
        _convert(folder, out)
    _assert_refusal_names(info.value, release, out)
    assert "_probA" in str(info.value)


def test_an_unreadable_pickle_naming_no_release_says_so_in_one_line(tmp_path):
    folder = _patched_copy(tmp_path, RELEASES[0], "gan_label_encoder.pkl", {
        b"sklearn.preprocessing._label": b"sklearn.preprocessing._lab_l", b"_sklearn_version": b"_sklearn_versioX"})
    with pytest.raises(IncompatiblePickleError) as info:
        _convert(folder, tmp_path / "ganorigin.skops")
    message = str(info.value)
    assert "\n" not in message and "gan_label_encoder.pkl" in message and "names no scikit-learn release" in message


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_release_is_read_from_the_bytes_of_plain_and_compressed_joblib_files(tmp_path, compress):
    path = tmp_path / "encoder.pkl"
    joblib.dump(LabelEncoder().fit(["progan", "stylegan2"]), path, compress=compress)
    assert pickled_sklearn_versions(path) == [sklearn.__version__]


def test_a_pickle_without_an_estimator_names_no_release(tmp_path):
    path = tmp_path / "plain.pkl"
    joblib.dump({"classes": ["progan"]}, path)
    assert pickled_sklearn_versions(path) == []
