"""Run every registered branch on batches of images and turn their evidence into `Verdict`s.

Why this shape:
* The pipeline never names a branch: it iterates a registry, the ordered tuple of `pipeline.branch.BranchEntry`
  it is given (`pipeline.branches.BRANCHES` by default), loads each branch lazily and once, and turns a missing
  weight or a crash into that branch's `null` evidence plus the reason, while the other branches still run.
* Everything is batched (`PipelineConfig.batch_size` images at a time); `analyze_iter` streams results batch by
  batch so a scan of a million files needs constant memory.
* Faces are found once per image and every face, up to `max_faces`, goes through the face-level branches; fusion
  runs per face and the image reports the most suspicious face.
* The cores are shared out, not fought over (`pipeline.lanes`): a batch's work becomes jobs, the face chain
  (dlib alignment, then the face-level branches) and each image-level branch, each on one of `lanes` parts of the
  batch, run on worker threads that together hold torch's threads. What a branch needs and how to fetch it is
  `pipeline.status`.
* Images enter only through `core.images`; the decision itself lives in `pipeline.fusion`.

Attribution runs on every face by default: gating it on the detectors (`gate_attribution=True`) would miss the
many StyleGAN2 faces that UFD scores under 0.5.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.fusion import LABELS, PROBABILITY_LABELS, FusionConfig, fuse
from pipeline.branches import BRANCHES, RANDOM_WEIGHTS, FaceFinder
from pipeline.branch import Branch, BranchContext, BranchEntry, BranchRole, Registry, role_of
from core.device import Precision, select_precision
from pipeline.evidence import BranchEvidence
from core.images import IMAGE_SUFFIXES, ImageError, ImageLimits, load_image
from core.timing import timed
from core.weights import WeightUnavailableError
from pipeline.image_record import ImageRecord, make_pictures
from pipeline.lanes import Lanes
from pipeline.status import BranchStatus, registry_or_empty, weight_states
from pipeline.verdict import SCHEMA_VERSION, CSV_COLUMNS, EvidencePictures, Failure, Result, Verdict, write_csv

__all__ = ["CSV_COLUMNS", "IMAGE_SUFFIXES", "LABELS", "PROBABILITY_LABELS", "RANDOM_WEIGHTS", "SCHEMA_VERSION",
           "BranchStatus", "EvidencePictures", "Failure", "FusionConfig", "Pipeline", "PipelineConfig", "Result",
           "Verdict", "write_csv"]

Source = str | Path | bytes


@dataclass
class PipelineConfig:
    """What to run and how.

    device, dtype: passed to `core.device.select_precision` ("auto" = GPU if any, bf16 weights on CPUs with bf16).
    batch_size: images per forward pass of every model.
    disabled_branches: names of registered branches not to run (every other default branch runs).
    extra_branches: research-only branches to run as well (registered with `default=False`, e.g. FingerprintNet).
    branch_options: per-branch settings read by the branch at load time, e.g.
        {"fingerprint_net": {"weights": "fingerprintnet-small"}, "latent_svm": {"artifact": "svm.skops"},
        "clip_probe": {"num_crops": 5}}.
    random_weights_ok: benchmarks only: branches may use random full-size weights when the real ones are absent
        (the verdict's warnings and `models` say so). Never for real analyses.
    download: let branches download missing registered weights (False: run offline with what is on disk).
    gate_attribution: run the face-level branches only on images the image-level branches do not call real.
    find_faces: detect faces even when no face-level branch can run, for `faces` and no-face warnings.
    max_faces: analyse at most this many faces per image, largest first (the verdict warns about the rest).
    max_alignment_error: alignment error (fraction of the crop side) above which the verdict warns.
    lanes: jobs run at once, each with torch's threads divided by `lanes` (1: one job at a time with every thread;
        2: dlib's single-threaded alignment and the models keep two cores busy). Each batch is cut into `lanes`
        parts so that no lane waits on one long job.
    """

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    disabled_branches: tuple[str, ...] = ()
    extra_branches: tuple[str, ...] = ()
    branch_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    random_weights_ok: bool = False
    download: bool = False
    gate_attribution: bool = False
    find_faces: bool = True
    max_faces: int = 8
    max_alignment_error: float = 0.05
    lanes: int = 2
    limits: ImageLimits = field(default_factory=ImageLimits)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, not {self.max_faces}")
        if self.lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {self.lanes}")


class Pipeline:
    """Loads the branches lazily (once), runs every one it can on batches of images and fuses the evidence.

    `registry` lists the branches it may run, in verdict order (tests that add a toy branch pass
    `(*BRANCHES, BranchEntry(Toy))`); `branches` replaces registered branches by instances (tests inject tiny
    models); `face_finder` replaces the dlib aligner the face-level branches share. `roles` is each branch's declared
    role, which fusion applies.
    """

    def __init__(self, config: PipelineConfig | None = None, branches: Mapping[str, Branch] | None = None,
                 face_finder: FaceFinder | None = None, registry: Registry = BRANCHES):
        self.config = config or PipelineConfig()
        injected = branches or {}
        self.branches: dict[str, Branch] = {entry.name: injected.get(entry.name) or entry.build()
                                            for entry in chosen_entries(registry, self.config, injected)}
        self.roles: dict[str, BranchRole] = {name: role_of(branch) for name, branch in self.branches.items()}
        self.face_finder = face_finder or FaceFinder()
        self._failed: dict[str, str] = {}
        self._loaded: set[str] = set()
        self._load_lock = threading.Lock()
        self._run_lock = threading.RLock()
        self._precision: Precision | None = None
        self._lanes = Lanes(self.config.lanes)

    @property
    def precision(self) -> Precision:
        if self._precision is None:
            self._precision = select_precision(self.config.device, self.config.dtype)
        return self._precision

    def analyze(self, sources: Sequence[Source], names: Sequence[str] | None = None,
                with_pictures: bool = False) -> list[Result]:
        """Verdicts (or Failures) for many images, in input order."""
        if names is not None and len(names) != len(sources):
            raise ValueError(f"analyze got {len(sources)} sources but {len(names)} names")
        return list(self.analyze_iter(sources, names, with_pictures))

    def analyze_one(self, source: Source, name: str | None = None, with_pictures: bool = False) -> Result:
        """The Verdict (or Failure) for one image."""
        return self.analyze([source], [name] if name is not None else None, with_pictures)[0]

    def analyze_iter(self, sources: Iterable[Source], names: Iterable[str] | None = None,
                     with_pictures: bool = False) -> Iterator[Result]:
        """Stream results in input order, one batch at a time, so memory stays flat on long lists."""
        name_iter = iter(names) if names is not None else None
        chunk: list[tuple[Source, str | None]] = []
        for source in sources:
            chunk.append((source, next(name_iter) if name_iter is not None else None))
            if len(chunk) == self.config.batch_size:
                yield from self._run_chunk(chunk, with_pictures)
                chunk = []
        if chunk:
            yield from self._run_chunk(chunk, with_pictures)

    def load_all(self) -> list[BranchStatus]:
        """Load every enabled branch now (e.g. at app start, so the first request is not slow); return status()."""
        for name in self._enabled():
            self._load_once(name)
        return self.status()

    def status(self) -> list[BranchStatus]:
        """For each branch: on or off and why; the weights it needs, their state, and the commands to fix it.

        `ready` is True once the branch (and, for face-level branches, the face finder) loaded, False when it
        cannot (or a weight it needs is absent), None while nothing says either way yet.
        """
        registry = registry_or_empty()
        statuses = []
        for name, branch in self.branches.items():
            parts: list[tuple[str, Any]] = [(name, branch)]
            if branch.level == "face":
                parts.append(("face_finder", self.face_finder))
            weights, fix, problems = {}, [], []
            for part, component in parts:
                if part in self._failed:
                    problems.append(self._failed[part])
                states = weight_states(component, self._context(part), registry)
                weights.update(states.weights)
                fix += states.fix
                if part not in self._loaded and not self.config.random_weights_ok:
                    problems += states.problems
            enabled = name not in self.config.disabled_branches
            if not enabled:
                ready, problems = False, [f"turned off (PipelineConfig.disabled_branches has {name!r})"]
            else:
                ready = False if problems else (True if all(p in self._loaded for p, _ in parts) else None)
            statuses.append(BranchStatus(branch=name, enabled=enabled, ready=ready,
                                         reason="; ".join(dict.fromkeys(problems)) or None,
                                         weights=weights, fix=list(dict.fromkeys(fix)),
                                         origin=getattr(branch, "origin", None)))
        return statuses

    # -- running ---------------------------------------------------------------------------------------------------

    def _run_chunk(self, chunk: list[tuple[Source, str | None]], with_pictures: bool) -> list[Result]:
        """Load, run the face chain and the image-level branches side by side in the lanes, then fuse."""
        with self._run_lock, timed() as chunk_watch:
            skills = self._skills()
            items = [self._load_item(source, name) for source, name in chunk]
            good = [item for item in items if item.image is not None]
            if good:
                if self.config.gate_attribution:
                    self._lanes.run(self._image_jobs(good), self._run_job)
                    self._gate(good, self._skills())
                    self._lanes.run(self._face_jobs(good), self._run_job)
                else:
                    self._lanes.run(self._face_jobs(good) + self._image_jobs(good), self._run_job)
                self._record_use(good)
                skills = self._skills()  # a branch that loaded during this chunk now has its record too
                for item in good:
                    with timed() as watch:
                        item.fuse(self.config.fusion, skills, self.roles)
                    item.timings["fusion"] = watch.seconds * 1000
                if with_pictures:
                    make_pictures(good, self._explainer())
        share = chunk_watch.seconds * 1000 / len(items)
        names = list(self.branches)
        return [item.result(share, names, skills) for item in items]

    def _load_item(self, source: Source, name: str | None) -> ImageRecord:
        display = name or (str(source) if isinstance(source, (str, Path)) else "<bytes>")
        item = ImageRecord(name=display, source=source)
        with timed() as watch:
            try:
                item.image = load_image(source, self.config.limits, name=display)
            except ImageError as err:
                item.error = str(err)
            except (OSError, TypeError) as err:
                item.error = f"{display}: cannot be read ({type(err).__name__}: {err})"
        item.timings["load"] = watch.seconds * 1000
        return item

    def _face_jobs(self, items: list[ImageRecord]) -> list[tuple[str, list[ImageRecord]]]:
        return [("faces", part) for part in self._lanes.split(items)]

    def _image_jobs(self, items: list[ImageRecord]) -> list[tuple[str, list[ImageRecord]]]:
        return [(name, part) for name in self._enabled("image") + self._enabled("file")
                for part in self._lanes.split(items)]

    def _run_job(self, kind: str, items: list[ImageRecord]) -> None:
        """A lane's job: "faces" is the face chain (alignment, then the face-level branches), any other kind an
        image-level branch (decoded pixels) or a file-level one (the file as received)."""
        if kind == "faces":
            self._find_faces(items)
            self._run_face_branches(items)
        else:
            read = ImageRecord.source_file if self.branches[kind].level == "file" else lambda i: i.image.pixels
            for item, evidence in zip(items, self._run_branch(kind, items, [read(i) for i in items])):
                item.evidence[kind] = evidence

    def _record_use(self, items: list[ImageRecord]) -> None:
        """Each image's weights and caveats from the branches that ran on it, in registry order (lanes finish in
        any order; the verdict's lists must not)."""
        for name, branch in self.branches.items():
            for item in items:
                outputs = [item.evidence.get(name)] + [face.get(name) for face in item.face_evidence]
                if any(output is not None and output.ran for output in outputs):
                    item.used(branch)

    def _run_face_branches(self, items: list[ImageRecord]) -> None:
        """Every analysed face of every image through every face-level branch, batched across the chunk."""
        faces = [(item, index) for item in items for index in range(len(item.aligned))]
        for name in self._enabled("face"):
            reason = self._load_once(name) or self._load_once("face_finder")
            for item in items:
                if reason or not item.aligned:
                    item.evidence[name] = BranchEvidence(reason=reason or item.no_face)
            if reason or not faces:
                continue
            outputs = self._run_branch(name, [item for item, _ in faces], [item.aligned[i] for item, i in faces])
            for (item, index), evidence in zip(faces, outputs):
                item.face_evidence[index][name] = evidence

    def _run_branch(self, name: str, owners: list[ImageRecord], inputs: list[Any]) -> list[BranchEvidence]:
        """One branch on a batch; a failing batch is retried input by input so one bad image sinks alone."""
        reason = self._load_once(name)
        if reason:
            return [BranchEvidence(reason=reason)] * len(inputs)
        branch = self.branches[name]
        with timed() as watch:
            outputs = _isolated(branch.run, inputs, name)
        images = list(dict.fromkeys(owners))
        for owner in images:
            owner.timings[name] = watch.seconds * 1000 / len(images)
        return outputs

    def _find_faces(self, items: list[ImageRecord]) -> None:
        """Align faces for the face-level branches (and for `faces` and no-face warnings when they are off)."""
        items = [item for item in items if item.no_face is None]  # the others were gated out
        if not items or (not self._enabled("face") and not self.config.find_faces):
            return
        reason = self._load_once("face_finder")
        if reason:
            for item in items:
                item.no_face = reason
            return
        with timed() as watch:
            found = _isolated(lambda batch: self.face_finder.find([i.image.pixels for i in batch],
                                                                  [i.name for i in batch]), items, "align")
        for item, out in zip(items, found):
            item.timings["align"] = watch.seconds * 1000 / len(items)
            item.take_faces(out, self.face_finder.models, self.config.max_faces, self.config.max_alignment_error)

    def _gate(self, items: list[ImageRecord], skills: dict[str, dict | None]) -> None:
        """With gate_attribution: the images the image-level branches call real say why they get no face chain."""
        for item in items:
            if fuse(item.evidence, self.roles, self.config.fusion, skills).is_fake is False:
                item.no_face = "not run: gate_attribution is on and the detectors judged this image real"

    def _explainer(self) -> tuple[str, Callable[[np.ndarray], np.ndarray]] | None:
        """The first loaded branch that can draw where it looked (Grad-CAM), with its name."""
        for name, branch in self.branches.items():
            if name in self._loaded and hasattr(branch, "explain"):
                return name, branch.explain
        return None

    def _skills(self) -> dict[str, dict | None]:
        """Each loaded branch's recorded skill, for fusion."""
        return {name: branch.skill for name, branch in self.branches.items() if name in self._loaded}

    def _enabled(self, level: str | None = None) -> list[str]:
        return [name for name, branch in self.branches.items() if name not in self.config.disabled_branches
                and (level is None or branch.level == level)]

    def _context(self, name: str) -> BranchContext:
        return BranchContext(precision=self.precision, batch_size=self.config.batch_size,
                             download=self.config.download, random_weights_ok=self.config.random_weights_ok,
                             options=self.config.branch_options.get(name, {}))

    def _load_once(self, name: str) -> str | None:
        """Load the branch (or "face_finder") unless it is loaded or failed already; None once it is loaded, else
        why it cannot run (turned off, a missing weight, a load error)."""
        if name in self.config.disabled_branches:
            return f"turned off (PipelineConfig.disabled_branches has {name!r})"
        with self._load_lock:
            if name not in self._loaded and name not in self._failed:
                component = self.face_finder if name == "face_finder" else self.branches[name]
                try:
                    component.load(self._context(name))
                    self._loaded.add(name)
                except WeightUnavailableError as err:
                    self._failed[name] = str(err)
                except Exception as err:  # noqa: BLE001 - a broken branch must not take the others down
                    self._failed[name] = f"{name} failed to load: {type(err).__name__}: {err}"
            return self._failed.get(name)


def chosen_entries(registry: Registry, config: PipelineConfig, injected: Mapping[str, Branch]) -> list[BranchEntry]:
    """The registry entries a pipeline runs, in registry order: the default set, the research branches asked for
    by name, and any branch handed in as an instance (tests inject tiny models)."""
    names = [entry.name for entry in registry]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"the branch registry names {repeated} more than once")
    unknown = (set(injected) | set(config.extra_branches)) - set(names)
    if unknown:
        raise ValueError(f"unknown branches {sorted(unknown)}; registered: {names}")
    return [entry for entry in registry
            if entry.default or entry.name in config.extra_branches or entry.name in injected]


def _isolated(run: Callable[[list[Any]], Sequence[Any]], inputs: list[Any], stage: str) -> list[Any]:
    """`run` on the batch; if it fails, input by input, each failure becoming that input's reason."""
    try:
        outputs = list(run(inputs))
        if len(outputs) != len(inputs):
            raise RuntimeError(f"{stage} returned {len(outputs)} results for {len(inputs)} inputs")
        return outputs
    except Exception as err:  # noqa: BLE001 - a branch failure is evidence, not a crash
        if len(inputs) == 1:
            return [_failure(stage, err)]
    results = []
    for one in inputs:
        try:
            results.append(list(run([one]))[0])
        except Exception as err:  # noqa: BLE001 - recorded as this input's failure
            results.append(_failure(stage, err))
    return results


def _failure(stage: str, err: Exception) -> BranchEvidence:
    return BranchEvidence(reason=f"{stage} failed: {type(err).__name__}: {err}")
