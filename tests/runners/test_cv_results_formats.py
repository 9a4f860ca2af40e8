"""The CV report's file-format view: a candidate that reads the codec shows it there, under the format it misreads."""

from __future__ import annotations

import numpy as np

from core.source_holdout import HeldOutPredictions
from runners.cv_results import by_file_format


def test_a_codec_reader_calls_lossless_real_photos_fake_and_only_there():
    # three real sources and three fake ones, each half JPEG, half lossless as stored
    labels = np.array(["real"] * 12 + ["stylegan2"] * 12)
    sources = np.repeat([f"r{i}" for i in range(3)] + [f"f{i}" for i in range(3)], 4)
    stored_jpeg = np.tile([True, True, False, False], 6)
    # "no JPEG grid = fake": high on stored lossless files and on every downscale, low on every JPEG
    lossless_score = np.where(stored_jpeg, 0.1, 0.9)
    fake = {"clean": lossless_score, "jpeg75": np.full(24, 0.1), "half": np.full(24, 0.9)}
    attribution = {c: np.tile([0.2, 0.7, 0.1], (24, 1)) for c in fake}
    predictions = HeldOutPredictions(labels=labels, sources=sources, fake=fake, attribution=attribution)

    formats = by_file_format(predictions, stored_jpeg, threshold=0.5)

    assert formats["lossless file"]["real_false_positive_rate"] == 1.0
    assert formats["JPEG file"]["real_false_positive_rate"] == 0.0
    assert formats["JPEG file"]["auc_mean"] == 0.5 and formats["lossless file"]["auc_mean"] == 0.5
    assert formats["JPEG file"]["real_sources"] == 3 and formats["JPEG file"]["enough_real_sources"]
    assert formats["lossless file"]["attribution_accuracy"] == 1.0
