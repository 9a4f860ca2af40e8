"""What a branch says about one image (or one face): the unit every branch returns and fusion reads.

It lives in `pipeline` beside the branch interface: the branch wrappers return it and fusion, the per-image record
and the verdict read it; no stage model ever sees it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BranchEvidence:
    """One branch's opinion on one image, or why it has none.

    probabilities: the branch's own class probabilities (CLIP probe: {"real", "fake"}; FingerprintNet and the
        latent SVM: their classes), or None when the branch did not run.
    label: the branch's own decision when it has an open-set rule (the latent SVM's `predict`), else None.
    reason: why the branch did not run (missing weights, no face, runtime error); None when it ran.
    out_of_distribution: when the input lies outside what the branch was trained on (e.g. its features are
        farther from the training data than almost all training images), the sentence saying so; else None.
    """

    probabilities: dict[str, float] | None = None
    label: str | None = None
    reason: str | None = None
    out_of_distribution: str | None = None

    @property
    def ran(self) -> bool:
        return self.probabilities is not None

    def to_dict(self) -> dict:
        return {"probabilities": self.probabilities, "label": self.label, "reason": self.reason,
                "out_of_distribution": self.out_of_distribution}
