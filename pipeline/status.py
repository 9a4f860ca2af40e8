"""What the status panel and the runners say about each branch: on or off, why, and the commands that fix it.

Split from `pipeline.pipeline` because reading the weight registry and wording a remedy is not running branches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.branch import BranchContext
from core.weights import load_registry, weight_status


@dataclass
class BranchStatus:
    """Whether a branch can run, and if not, why and how to enable it."""

    branch: str
    enabled: bool
    ready: bool | None
    reason: str | None
    weights: dict[str, str]
    fix: list[str]
    origin: str | None = None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class WeightStates:
    """What one component's weights look like on this machine.

    weights: each weight it needs with its state ("present", "missing", ...), then the weights it actually used
        (name → sha256) once loaded.
    fix: the command that fetches each absent weight.
    problems: one "X is missing" per absent weight, for the status reason.
    """

    weights: dict[str, str]
    fix: list[str]
    problems: list[str]


def weight_states(component: Any, context: BranchContext, registry: dict) -> WeightStates:
    """The state of each weight `component` (a branch or the face finder) needs, with the fix for each absent one."""
    weights, fix, problems = {}, [], []
    for weight in component.required_weights(context):
        state = weight_status(weight, registry) if weight in registry else _path_state(weight)
        weights[weight] = state
        if state != "present":
            fix.append(_fix_command(weight, registry))
            problems.append(f"{weight} is {state}")
    weights.update(component.models)
    return WeightStates(weights, fix, problems)


def registry_or_empty() -> dict:
    """The weight registry, or nothing when it cannot be read (the status then names no fix command)."""
    try:
        return load_registry()
    except (OSError, ValueError):
        return {}


def _path_state(weight: str) -> str:
    if "/" in weight or Path(weight).suffix:
        return "present" if Path(weight).is_file() else "missing"
    return "not configured"


def _fix_command(weight: str, registry: dict) -> str:
    if weight in registry:
        return registry[weight].fetch_command
    if "/" in weight or Path(weight).suffix:
        return f"{weight} does not exist; give the path of an existing file"
    return f"{weight} is not in artifacts/weights.json: register the trained artifact there or pass a file path"
