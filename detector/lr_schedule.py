"""The learning-rate schedule every network we train uses: linear warm-up, then a cosine down to a floor.

Why shared: FingerprintNet and the residual net train on the same CPU budget with the same schedule; one
definition keeps a fix (or a new floor) from reaching only one of them.
"""

from __future__ import annotations

import math

MIN_LR_RATIO = 0.02


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up that starts above zero (no lr = 0 step), then cosine to MIN_LR_RATIO at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * 0.5 * (1.0 + math.cos(math.pi * progress))
