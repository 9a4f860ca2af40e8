"""Write GANOrigin-style pickles with the scikit-learn this interpreter has, for the conversion tests.

GANOrigin's published classifier was pickled by whatever scikit-learn its author had; the consent conversion
(attribution/ganorigin.py) must read such files with the user's scikit-learn, or refuse in one line. This script,
run once inside a throwaway venv of one release, writes into tests/data/sklearn_pickles/<release>/:

- gan_attribution_model.pkl, gan_scaler.pkl, gan_label_encoder.pkl: the trio as GANOrigin names and lays it out
  (tests/foreign_pickles.py builds it: 3 classes x 3 float32 rows of 9,216 features, joblib.dump uncompressed);
- probabilities.npy: that release's own `svm.predict_proba(scaler.transform(inputs))` (float64 inputs, as the
  converted attributor computes), the reference a conversion must reproduce to 1e-9;
- versions.json: the release and the numpy, scipy, joblib and Python that made the files.

The fixed inputs are shared by every release: inputs.npy (float32, beside this script) is written by the first
run and read by the others. The committed fixtures were made from the repository root by rebuild.sh beside this
script (one venv per release, with the numpy/scipy/joblib pins each versions.json records), i.e. for each release:

    python3.11 -m venv /tmp/skl-1.4.2
    /tmp/skl-1.4.2/bin/pip install --only-binary=:all: scikit-learn==1.4.2 numpy==1.26.4 scipy==1.13.1 joblib==1.4.2
    PYTHONPATH=tests /tmp/skl-1.4.2/bin/python tests/data/sklearn_pickles/make_fixtures.py
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import sklearn
from foreign_pickles import build_ganorigin_trio

HERE = Path(__file__).resolve().parent
INPUTS = HERE / "inputs.npy"


def fixed_inputs(features: np.ndarray) -> np.ndarray:
    """One row near each class's training rows and one far from all of them, so the reference probabilities
    range from confident to uncertain; written once, then every release reads the same file."""
    if INPUTS.is_file():
        return np.load(INPUTS)
    rng = np.random.default_rng(1)
    near = features[:3] + rng.normal(0, 0.5, size=features[:3].shape)
    far = rng.normal(0, 3, size=(1, features.shape[1]))
    inputs = np.concatenate([near, far]).astype(np.float32)
    np.save(INPUTS, inputs)
    return inputs


def main() -> None:
    out = HERE / sklearn.__version__
    out.mkdir(exist_ok=True)
    *paths, features = build_ganorigin_trio(out, per_class=3, dtype=np.float32)
    for path in paths:
        print(f"{path.relative_to(HERE)}: {path.stat().st_size:,} bytes")
    svm, scaler = joblib.load(paths[0]), joblib.load(paths[1])
    inputs = fixed_inputs(features).astype(np.float64)
    np.save(out / "probabilities.npy", svm.predict_proba(scaler.transform(inputs)))
    versions = {name: version(name) for name in ("scikit-learn", "numpy", "scipy", "joblib")}
    (out / "versions.json").write_text(json.dumps({**versions, "python": platform.python_version()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
