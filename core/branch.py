"""One interface for every piece of evidence GANTrace gathers, and the one registry that lists them.

Why: the pipeline, fusion, the app's status panel and the batch runners all need to know which branches exist,
what weights each needs and whether it can run. Written once here, a new branch is its own class plus one
`register_branch` call; the pipeline iterates the registry and never names a branch.

A branch works at one `level`: "image" branches see the decoded RGB image, "face" branches see each aligned
face (the pipeline finds and aligns faces once and shares them). `load` raises `WeightUnavailableError` for a
missing weight (the pipeline records the message and runs the others); `run` takes a batch and returns one
`BranchEvidence` per input, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from core.device import Precision
from core.evidence import BranchEvidence

LEVELS = ("image", "face")


@dataclass(frozen=True)
class BranchContext:
    """What a branch may read when it loads: precision, batch size, the download policy and its own options.

    options: this branch's entries of `PipelineConfig.branch_options` (e.g. an artifact path), so a new branch
        gets settings without a new PipelineConfig field.
    random_weights_ok: benchmarks only; a branch may build random full-size weights when the real ones are absent,
        and must then set a warning saying its output is meaningless.
    """

    precision: Precision
    batch_size: int = 8
    download: bool = False
    random_weights_ok: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Branch(Protocol):
    """A source of evidence: see the module docstring for the contract."""

    name: str
    level: str

    def required_weights(self, context: BranchContext) -> list[str]:
        """Registry names (or file paths) this branch needs, for the status panel and its fix commands."""

    def load(self, context: BranchContext) -> None:
        """Build the model(s); raise WeightUnavailableError when a weight is missing."""

    def run(self, inputs: Sequence[Any]) -> list[BranchEvidence]:
        """One BranchEvidence per input (an RGB uint8 array for "image", an aligned face for "face")."""

    @property
    def models(self) -> dict[str, str]:
        """Weights actually used after `load`: name → sha256 (or "random-init")."""

    @property
    def warning(self) -> str | None:
        """A caveat to repeat in every verdict this branch contributes to (e.g. random weights), or None."""

    @property
    def skill(self) -> dict | None:
        """The skill its artifact records, measured on held-out sources (see pipeline.fusion), or None when
        unmeasured; fusion lets a branch vote on a task only as far as this record allows."""


BranchFactory = Callable[[], Branch]
_REGISTRY: dict[str, BranchFactory] = {}


def register_branch(name: str, factory: BranchFactory) -> None:
    """Add (or replace) a branch; the pipeline runs every registered branch in registration order."""
    _REGISTRY[name] = factory


def unregister_branch(name: str) -> None:
    """Remove a branch (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)


def registered_branches() -> dict[str, BranchFactory]:
    """Name → factory for every registered branch, in registration order."""
    return dict(_REGISTRY)


def make_branch(name: str) -> Branch:
    """A fresh, unloaded instance of a registered branch; the error lists the known names."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown branch {name!r}; registered: {sorted(_REGISTRY)}")
    branch = _REGISTRY[name]()
    if branch.level not in LEVELS:
        raise ValueError(f"branch {name!r} has level {branch.level!r}, not one of {LEVELS}")
    return branch
