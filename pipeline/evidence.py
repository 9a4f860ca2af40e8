"""What a branch says about one image (or one face): the unit every branch returns and fusion reads.

It lives in `pipeline` beside the branch interface: the branch wrappers return it and fusion, the per-image record
and the verdict read it; no stage model ever sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BranchEvidence:
    """One branch's opinion on one image, or why it has none.

    probabilities: the branch's own class probabilities (CLIP probe: {"real", "fake"}; FingerprintNet and the
        latent SVM: their classes), or None when the branch did not run.
    label: the branch's own decision when it has an open-set rule (the latent SVM's `predict`), else None.
    reason: why the branch did not run (missing weights, no face, runtime error); None when it ran.
    out_of_distribution: when the input lies outside what the branch was trained on (e.g. its features are
        farther from the training data than almost all training images), the sentence saying so; else None.
    details: a branch's own structured findings for the verdict JSON (the provenance branch's), else None.
    warnings: caveats about this image that the verdict repeats in its `warnings` (e.g. "the file was changed
        after it was signed").
    """

    probabilities: dict[str, float] | None = None
    label: str | None = None
    reason: str | None = None
    out_of_distribution: str | None = None
    details: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ran(self) -> bool:
        return self.probabilities is not None

    def to_dict(self) -> dict:
        """The JSON record; `details` appears only for a branch that has some, so the others keep their shape."""
        record = {"probabilities": self.probabilities, "label": self.label, "reason": self.reason,
                  "out_of_distribution": self.out_of_distribution}
        return record if self.details is None else {**record, "details": dict(self.details)}
