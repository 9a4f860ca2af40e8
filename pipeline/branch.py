"""One interface for every piece of evidence GANTrace gathers, and the entry that registers a branch.

Why: the pipeline, fusion, the app's status panel and the batch runners all need to know which branches exist,
what weights each needs and whether it can run. Written once here, a new branch is its own class plus one
`BranchEntry` in `pipeline.branches.BRANCHES`, the ordered tuple the pipeline reads (tests hand the pipeline their
own tuple); the pipeline iterates it and never names a branch. No import registers anything as a side effect.

A branch works at one `level`: "image" branches see the decoded RGB image, "face" branches see each aligned
face (the pipeline finds and aligns faces once and shares them), "file" branches see the file as received
(`SourceFile`: its bytes and name), for what a file declares about itself rather than what its pixels show.
`load` raises `WeightUnavailableError` for a missing weight (the pipeline records the message and runs the
others); `run` takes a batch and returns one `BranchEvidence` per input, in order.

A branch may declare a `role` (a `BranchRole`): what its evidence votes on in the verdict, with which weight, and
the title people read. Without one it gets the defaults: it may vote on real vs fake and on the architecture, as
far as its probabilities allow and its measured skill clears fusion's bar, with weight 1 and its name as title.
The pipeline hands every branch's role to fusion, which loops over the evidence it gets and names no branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from core.device import Precision
from pipeline.evidence import BranchEvidence

LEVELS = ("image", "face", "file")


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


@dataclass(frozen=True)
class SourceFile:
    """What a "file" branch reads: an image that decoded, as the bytes it arrived as or its path, and the name it came
    with (whose extension may lie about the format)."""

    name: str
    source: bytes | str | Path = field(repr=False)

    def read(self) -> bytes:
        """The file's bytes (read again from its path: it decoded, so it existed within the size limit)."""
        return self.source if isinstance(self.source, bytes) else Path(self.source).read_bytes()


@dataclass(frozen=True)
class BranchRole:
    """What a branch's evidence counts for in the verdict and how people read its name; every field has a default.

    detects: may vote on real vs fake, with P(fake) = its "fake" probability, else 1 − its "real" probability
        (a branch with neither has no real/fake reading and never votes on it).
    attributes: may vote on the architecture, with its probabilities over the known architectures, renormalised.
    detect_weight, attribution_weight: its weight in fusion's P(fake) and P(architecture) means (0: no vote).
    trust_unmeasured: may vote on a task for which its artifact records no held-out skill (a published detector,
        the user's own artifact); False asks for a measured record that clears fusion's bar.
    unsure_below: its top class probability under this is an open-set signal (no known architecture fits);
        None: it has no such rule.
    title: the name the app and the report show; empty means the branch's registry name.
    decisive: when it votes, its reading alone decides real vs fake and the architecture (a valid, trusted
        Content Credentials declaration outranks any statistical reading); the others stay in the evidence.
    """

    detects: bool = True
    attributes: bool = True
    detect_weight: float = 1.0
    attribution_weight: float = 1.0
    trust_unmeasured: bool = False
    unsure_below: float | None = None
    title: str = ""
    decisive: bool = False

    def __post_init__(self) -> None:
        for name in ("detect_weight", "attribution_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"BranchRole.{name} must be >= 0, not {getattr(self, name)}")


ROLE_FIELDS = tuple(f.name for f in fields(BranchRole))


def role_of(branch: Any) -> BranchRole:
    """A branch's declared role, or the defaults when it declares none."""
    return getattr(branch, "role", None) or BranchRole()


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


@dataclass(frozen=True)
class BranchEntry:
    """One line of a branch registry (`pipeline.branches.BRANCHES`): how to build a branch and whether it runs
    without being asked for.

    factory: the branch class (or any callable with the class's `name`, and its `role` when it declares one), so the
        registry's names and roles are read without building a model.
    default: False keeps the branch out of the default set: it is built only when asked for by name
        (`PipelineConfig.extra_branches`, `--branch NAME`), for research. A branch whose held-out skill shows it
        misleads is registered so, and is then never shown as evidence by default.
    """

    factory: BranchFactory
    default: bool = True

    @property
    def name(self) -> str:
        return self.factory.name

    @property
    def role(self) -> BranchRole:
        return role_of(self.factory)

    def build(self) -> Branch:
        """A fresh, unloaded instance; a branch at an unknown level is refused here, before anything runs."""
        branch = self.factory()
        if branch.level not in LEVELS:
            raise ValueError(f"branch {self.name!r} has level {branch.level!r}, not one of {LEVELS}")
        return branch


Registry = tuple[BranchEntry, ...]


def registry_roles(registry: Registry) -> dict[str, BranchRole]:
    """Each registered branch's declared role, in registry order: what fusion and the titles read."""
    return {entry.name: entry.role for entry in registry}
