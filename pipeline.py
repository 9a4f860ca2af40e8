"""Run every GANTrace branch on a batch of images and turn their evidence into `Verdict`s.

Why this shape:
* Each model is loaded lazily, once, the first time a branch needs it; a missing weight turns that branch's
  evidence into `null` plus the registry's message (what is missing and the command that fetches it) instead of
  a crash, and the other branches still run. A runtime error in one branch is recorded the same way.
* Everything is batched (`PipelineConfig.batch_size` images at a time) because on CPU the models are several
  times faster per image in batches; `analyze_iter` streams results batch by batch so a scan of a million files
  needs constant memory.
* Images enter only through `core.images`, so a file that cannot be analysed becomes a `Failure` carrying that
  module's one-line message, never an exception out of `analyze`.
* The decision itself lives in `attribution.fusion` (pure functions); this module only gathers evidence, times it
  and packs it into the JSON contract of DESIGN.md.

Attribution (face alignment → e4e → latent SVM) runs on every image by default: gating it on the detector
(`gate_attribution=True`) would miss the many StyleGAN2 faces that UFD scores under 0.5.
"""

from __future__ import annotations

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from attribution.fusion import (
    BRANCHES,
    CLIP_PROBE,
    FINGERPRINT_NET,
    LABELS,
    LATENT_SVM,
    BranchEvidence,
    FusionConfig,
    fuse,
)
from core.device import Precision, select_precision
from core.images import IMAGE_SUFFIXES, ImageError, ImageLimits, LoadedImage, load_image
from core.timing import timed
from core.weights import (WeightUnavailableError, load_registry, resolve, sha256_file, weight_sha256,
                          weight_status)

__all__ = ["BRANCHES", "CSV_COLUMNS", "IMAGE_SUFFIXES", "LABELS", "BranchStatus", "EvidencePictures", "Failure",
           "FusionConfig", "LoadedModel", "Pipeline", "PipelineConfig", "Verdict", "write_csv"]

RANDOM_WEIGHTS = "random-init"
COMPONENTS = ("clip_probe", "fingerprint_net", "aligner", "e4e", "latent_svm")
_BRANCH_COMPONENTS = {CLIP_PROBE: ("clip_probe",), FINGERPRINT_NET: ("fingerprint_net",),
                      LATENT_SVM: ("aligner", "e4e", "latent_svm")}
Source = str | Path | bytes


@dataclass
class PipelineConfig:
    """What to run and how.

    device, dtype: passed to `core.device.select_precision` ("auto" = GPU if any, bf16 weights on CPUs with bf16).
    batch_size: images per forward pass of every model.
    clip_probe, fingerprint_net, latent_svm: which branches to run (the latent branch is alignment → e4e → SVM).
    fingerprint_weights: registry name of the FingerprintNet artifact, or a path to its .safetensors file.
    attribution_artifact: the latent SVM file written by scripts/train_svm.py; without it the latent branch is
        off and the verdict says why.
    trust_foreign_attribution: passed to `LatentAttributor.load`; joblib is pickle, so only for files you trust.
    random_weights_ok: benchmarks only: use random CLIP / e4e weights when the real ones are absent (the verdict's
        warnings and `models` say so). Never for real analyses.
    download: let the registry download missing weights (False: run offline with what is on disk).
    gate_attribution: run the latent branch only on images the detectors call fake (faster, misses more fakes).
    find_faces: run face detection even when the latent branch cannot run, for `faces` and no-face warnings.
    max_alignment_error: alignment quality (fraction of the crop side) above which the verdict warns.
    limits: image intake limits (bytes, pixels, smallest side).
    fusion: thresholds and weights of the decision (see attribution.fusion.FusionConfig).
    """

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    clip_probe: bool = True
    fingerprint_net: bool = True
    latent_svm: bool = True
    fingerprint_weights: str = "fingerprintnet-small"
    attribution_artifact: Path | None = None
    trust_foreign_attribution: bool = False
    random_weights_ok: bool = False
    download: bool = False
    gate_attribution: bool = False
    find_faces: bool = True
    max_alignment_error: float = 0.05
    limits: ImageLimits = field(default_factory=ImageLimits)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")


@dataclass
class LoadedModel:
    """A loaded stage model with the weights it was built from (name → sha256) and a caveat to repeat, if any."""

    model: Any
    weights: dict[str, str]
    warning: str | None = None


Loader = Callable[[PipelineConfig, Precision], LoadedModel]


@dataclass
class EvidencePictures:
    """Pictures an analyst looks at; RGB uint8 arrays, None when the branch behind them did not run."""

    aligned_face: np.ndarray | None = None
    spectrum: np.ndarray | None = None
    gradcam: np.ndarray | None = None


@dataclass
class Verdict:
    """The answer for one image; `to_dict()` gives exactly the JSON fields of DESIGN.md's contract.

    `timings_ms` holds each stage's share of its batch's wall time and `total`, the image's share of the whole
    batch; alignment runs beside the detectors, so the stages can add up to more than `total`.
    """

    file: str
    sha256: str
    width: int
    height: int
    is_fake: bool | None
    fake_probability: float | None
    label: str
    probabilities: dict[str, float | None]
    evidence: dict[str, dict | None]
    faces: list[dict]
    warnings: list[str]
    timings_ms: dict[str, float]
    models: dict[str, str]
    pictures: EvidencePictures | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pictures"}

    def to_row(self) -> dict[str, str]:
        probs = self.probabilities
        row = {"file": self.file, "sha256": self.sha256, "label": self.label, "is_fake": _cell(self.is_fake),
               "fake_probability": _cell(self.fake_probability), "warnings": " | ".join(self.warnings), "error": ""}
        row.update({f"p_{label}": _cell(probs.get(label)) for label in LABELS})
        return row


@dataclass
class Failure:
    """An input that could not be analysed (not an image, truncated, too large...), with the one-line reason."""

    file: str
    error: str

    def to_dict(self) -> dict:
        return {"file": self.file, "error": self.error}

    def to_row(self) -> dict[str, str]:
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update(file=self.file, error=self.error)
        return row


Result = Verdict | Failure
CSV_COLUMNS = ("file", "sha256", "label", "is_fake", "fake_probability", *(f"p_{label}" for label in LABELS),
               "warnings", "error")


def write_csv(results: Iterable[Result]) -> str:
    """The CSV text of a batch (one row per file, CSV_COLUMNS), as the app's download and scan.py write it."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for result in results:
        writer.writerow(result.to_row())
    return buffer.getvalue()


@dataclass
class BranchStatus:
    """Whether a branch can run, and if not, why and how to enable it."""

    branch: str
    enabled: bool
    ready: bool | None
    reason: str | None
    weights: dict[str, str]
    fix: list[str]

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Pipeline:
    """Loads the stages lazily (once), runs every branch it can on batches of images and fuses the evidence.

    `loaders` replaces the default loader of any component in COMPONENTS ("clip_probe", "fingerprint_net",
    "aligner", "e4e", "latent_svm"); tests use it to inject tiny models, and a loader that raises
    WeightUnavailableError simulates a missing weight.
    """

    def __init__(self, config: PipelineConfig | None = None, loaders: Mapping[str, Loader] | None = None):
        self.config = config or PipelineConfig()
        unknown = set(loaders or {}) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; known: {COMPONENTS}")
        self._loaders: dict[str, Loader] = {**DEFAULT_LOADERS, **(loaders or {})}
        self._injected = set(loaders or {})
        self._loaded: dict[str, LoadedModel | str] = {}
        self._load_lock = threading.Lock()
        self._run_lock = threading.RLock()
        self._precision: Precision | None = None

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
        for branch in BRANCHES:
            if getattr(self.config, branch):
                for component in _BRANCH_COMPONENTS[branch]:
                    self._component(component)
        return self.status()

    def status(self) -> list[BranchStatus]:
        """For each branch: on or off, and why; the weights it needs, their state, and the commands to fix it.

        `ready` is True once every component loaded, False when one cannot (or a weight it needs is absent),
        None while nothing says either way yet (not loaded, weights present).
        """
        registry = _registry_or_empty()
        statuses = []
        for branch in BRANCHES:
            enabled = bool(getattr(self.config, branch))
            weights: dict[str, str] = {}
            fix: list[str] = []
            problems: list[str] = []
            all_loaded = True
            for component in _BRANCH_COMPONENTS[branch]:
                loaded = self._loaded.get(component)
                all_loaded = all_loaded and isinstance(loaded, LoadedModel)
                if isinstance(loaded, str):
                    problems.append(loaded)
                for name in self._weight_names(component):
                    state = self._weight_state(name, registry)
                    weights[name] = state
                    if state != "present":
                        fix.append(self._fix_command(name, registry))
                        if loaded is None and not self._random_fallback(component):
                            problems.append(f"{name} is {state}")
                if isinstance(loaded, LoadedModel):
                    weights.update(loaded.weights)
            if not enabled:
                ready, problems = False, [f"turned off (PipelineConfig.{branch} = False)"]
            else:
                ready = False if problems else (True if all_loaded else None)
            statuses.append(BranchStatus(branch=branch, enabled=enabled, ready=ready,
                                         reason="; ".join(dict.fromkeys(problems)) or None,
                                         weights=weights, fix=list(dict.fromkeys(fix))))
        return statuses

    # -- running ---------------------------------------------------------------------------------------------------

    def _run_chunk(self, chunk: list[tuple[Source, str | None]], with_pictures: bool) -> list[Result]:
        """Load, run every branch, fuse. Face alignment (dlib, which releases the GIL) runs in a second thread
        while the detectors run, unless attribution is gated on their answer."""
        with self._run_lock, timed() as chunk_watch:
            items = [self._load_item(source, name) for source, name in chunk]
            good = [item for item in items if item.image is not None]
            if good:
                if self.config.gate_attribution:
                    self._run_clip(good)
                    self._run_fingerprint(good)
                    with_face = self._find_faces(self._gate(good))
                else:
                    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gantrace-align") as pool:
                        faces = pool.submit(self._find_faces, good)
                        self._run_clip(good)
                        self._run_fingerprint(good)
                        with_face = faces.result()
                self._run_latent(with_face)
                for item in good:
                    with timed() as watch:
                        item.fused = fuse(item.evidence, self.config.fusion)
                    item.timings["fusion"] = watch.seconds * 1000
                if with_pictures:
                    self._make_pictures(good)
        share = chunk_watch.seconds * 1000 / len(items)
        return [item.result(total_ms=share) for item in items]

    def _load_item(self, source: Source, name: str | None) -> _Item:
        display = name or (str(source) if isinstance(source, (str, Path)) else "<bytes>")
        item = _Item(name=display)
        with timed() as watch:
            try:
                item.image = load_image(source, self.config.limits, name=display)
            except ImageError as err:
                item.error = str(err)
            except (OSError, TypeError) as err:
                item.error = f"{display}: cannot be read ({type(err).__name__}: {err})"
        item.timings["load"] = watch.seconds * 1000
        return item

    def _run_clip(self, items: list[_Item]) -> None:
        loaded = self._branch_ready(CLIP_PROBE, items)
        if loaded is None:
            return
        model = loaded["clip_probe"]
        for item, out in self._apply("clip_probe", items, lambda batch: model.model.predict_proba(
                [i.image.pixels for i in batch])):
            if isinstance(out, Exception):
                item.evidence[CLIP_PROBE] = BranchEvidence(reason=_failed(CLIP_PROBE, out))
                continue
            p_fake = float(out)
            item.evidence[CLIP_PROBE] = BranchEvidence({"real": 1.0 - p_fake, "fake": p_fake})
            item.used(model)

    def _run_fingerprint(self, items: list[_Item]) -> None:
        loaded = self._branch_ready(FINGERPRINT_NET, items)
        if loaded is None:
            return
        model = loaded["fingerprint_net"]
        classes = tuple(model.model.classes)
        for item, out in self._apply("fingerprint_net", items, lambda batch: model.model.predict_proba(
                [i.image.pixels for i in batch])):
            if isinstance(out, Exception):
                item.evidence[FINGERPRINT_NET] = BranchEvidence(reason=_failed(FINGERPRINT_NET, out))
                continue
            item.evidence[FINGERPRINT_NET] = BranchEvidence(dict(zip(classes, map(float, out))))
            item.used(model)

    def _gate(self, items: list[_Item]) -> list[_Item]:
        """With gate_attribution: the images the detectors did not call real; the others get the reason."""
        wanted = []
        for item in items:
            if fuse(item.evidence, self.config.fusion).is_fake is False:
                item.evidence[LATENT_SVM] = BranchEvidence(
                    reason="not run: gate_attribution is on and the detectors judged this image real")
            else:
                wanted.append(item)
        return wanted

    def _find_faces(self, items: list[_Item]) -> list[_Item]:
        """Align faces (also for `faces` and no-face warnings when e4e/SVM are missing); return the items whose
        largest face the latent branch can encode. Every other item gets the reason in its latent evidence."""
        if not self.config.latent_svm:
            for item in items:
                item.evidence[LATENT_SVM] = BranchEvidence(reason="turned off (PipelineConfig.latent_svm = False)")
            return []
        latent_reason = next((x for x in (self._component("e4e"), self._component("latent_svm"))
                              if isinstance(x, str)), None)
        if latent_reason is not None:
            for item in items:
                item.evidence[LATENT_SVM] = BranchEvidence(reason=latent_reason)
            if not self.config.find_faces:
                return []
        aligner = self._component("aligner")
        if isinstance(aligner, str):
            for item in items:
                item.evidence.setdefault(LATENT_SVM, BranchEvidence(reason=aligner))
            return []
        with_face = self._align(items, aligner)
        return with_face if latent_reason is None else []

    def _run_latent(self, items: list[_Item]) -> None:
        """Encode each image's largest aligned face into W+ and attribute it with the latent SVM."""
        if not items:
            return
        e4e, svm = self._component("e4e"), self._component("latent_svm")
        spec = getattr(svm.model, "metadata", {}).get("feature_spec", {})
        add_latent_avg = bool(spec.get("latent_avg_added", True))
        encoded = self._apply("e4e", items, lambda batch: e4e.model.encode(
            [i.aligned[0].image for i in batch], batch_size=self.config.batch_size, add_latent_avg=add_latent_avg))
        ok = []
        for item, out in encoded:
            if isinstance(out, Exception):
                item.evidence[LATENT_SVM] = BranchEvidence(reason=_failed("e4e", out))
            else:
                item.latent = out
                item.used(e4e)
                ok.append(item)
        if not ok:
            return
        classes = [str(c) for c in svm.model.classes_]
        scored = self._apply("latent_svm", ok, lambda batch: _svm_outputs(svm.model, [i.latent for i in batch]))
        for item, out in scored:
            if isinstance(out, Exception):
                item.evidence[LATENT_SVM] = BranchEvidence(reason=_failed(LATENT_SVM, out))
                continue
            probs, label = out
            item.evidence[LATENT_SVM] = BranchEvidence(dict(zip(classes, map(float, probs))), label=str(label))
            item.used(svm)

    def _align(self, items: list[_Item], aligner: LoadedModel) -> list[_Item]:
        """Find faces; returns the items with at least one face. No face = a warning and the latent reason."""
        with_face = []
        aligned = self._apply("align", items, lambda batch: aligner.model.align_batch(
            [i.image.pixels for i in batch], [i.name for i in batch]))
        for item, out in aligned:
            if isinstance(out, Exception):
                message = str(out)
                if type(out).__name__ == "NoFaceError":
                    item.face_warnings.append(f"{message}; the detectors were trained on faces, so weigh this "
                                              "verdict with care")
                    item.evidence.setdefault(LATENT_SVM, BranchEvidence(reason=message))
                else:
                    item.evidence.setdefault(LATENT_SVM, BranchEvidence(reason=_failed("align", out)))
                continue
            item.face_models.update(aligner.weights)
            item.aligned = out
            item.faces = [_face_dict(face) for face in out]
            if len(out) > 1:
                item.face_warnings.append(f"{len(out)} faces found; the latent evidence is for the largest "
                                          "(faces[0])")
            if out[0].quality > self.config.max_alignment_error:
                item.face_warnings.append(f"face alignment is poor (quality {out[0].quality:.3f} > "
                                          f"{self.config.max_alignment_error}); the latent evidence is less reliable")
            with_face.append(item)
        return with_face

    def _make_pictures(self, items: list[_Item]) -> None:
        """Evidence pictures; a failure here only costs the picture, never the verdict."""
        from detector.spectrum import spectrum_picture

        fingerprint = self._loaded.get("fingerprint_net")
        for item in items:
            with timed() as watch:
                pictures = EvidencePictures(aligned_face=item.aligned[0].image if item.aligned else None)
                try:
                    pictures.spectrum = spectrum_picture(item.image.pixels)
                except Exception as err:  # noqa: BLE001 - a picture is optional evidence
                    item.warnings.append(_failed("spectrum picture", err))
                if isinstance(fingerprint, LoadedModel) and item.evidence[FINGERPRINT_NET].ran:
                    try:
                        pictures.gradcam = _gradcam_overlay(fingerprint.model, item.image.pixels)
                    except Exception as err:  # noqa: BLE001 - a picture is optional evidence
                        item.warnings.append(_failed("Grad-CAM", err))
            item.pictures = pictures
            item.timings["pictures"] = watch.seconds * 1000

    def _apply(self, stage: str, items: list[_Item], run: Callable[[list[_Item]], Sequence[Any]]
               ) -> list[tuple[_Item, Any]]:
        """Run a batched stage; if the batch fails, retry image by image so one bad input cannot sink the rest."""
        with timed() as watch:
            try:
                outputs = list(run(items))
                if len(outputs) != len(items):
                    raise RuntimeError(f"{stage} returned {len(outputs)} results for {len(items)} images")
                pairs = list(zip(items, outputs))
            except Exception as err:  # noqa: BLE001 - a branch failure is evidence, not a crash
                pairs = [(items[0], err)] if len(items) == 1 else [(item, self._one(run, item)) for item in items]
        share = watch.seconds * 1000 / max(len(items), 1)
        for item in items:
            item.timings[stage] = share
        return pairs

    @staticmethod
    def _one(run: Callable[[list[_Item]], Sequence[Any]], item: _Item) -> Any:
        try:
            return list(run([item]))[0]
        except Exception as err:  # noqa: BLE001 - recorded as this image's branch failure
            return err

    def _branch_ready(self, branch: str, items: list[_Item]) -> dict[str, LoadedModel] | None:
        """The branch's loaded components, or None after recording for every item why the branch cannot run."""
        if not getattr(self.config, branch):
            reason = f"turned off (PipelineConfig.{branch} = False)"
        else:
            loaded = {name: self._component(name) for name in _BRANCH_COMPONENTS[branch]}
            reason = next((value for value in loaded.values() if isinstance(value, str)), None)
            if reason is None:
                return loaded
        for item in items:
            item.evidence[branch] = BranchEvidence(reason=reason)
        return None

    def _component(self, name: str) -> LoadedModel | str:
        """The loaded component, or the reason it cannot be loaded; loaded at most once per pipeline."""
        with self._load_lock:
            if name not in self._loaded:
                try:
                    self._loaded[name] = self._loaders[name](self.config, self.precision)
                except WeightUnavailableError as err:
                    self._loaded[name] = str(err)
                except Exception as err:  # noqa: BLE001 - a broken stage must not take the others down
                    self._loaded[name] = f"{name} failed to load: {type(err).__name__}: {err}"
            return self._loaded[name]

    def _random_fallback(self, component: str) -> bool:
        return self.config.random_weights_ok and component in ("clip_probe", "e4e")

    def _weight_names(self, component: str) -> list[str]:
        if component in self._injected:
            return []
        if component == "latent_svm":
            artifact = self.config.attribution_artifact
            return [str(artifact)] if artifact else ["latent-svm artifact"]
        if component == "fingerprint_net":
            return [self.config.fingerprint_weights]
        return list(_REGISTRY_NAMES[component])

    def _weight_state(self, name: str, registry: dict) -> str:
        if name == "latent-svm artifact":
            return "not configured"
        if name in registry:
            return weight_status(name, registry)
        return "present" if Path(name).is_file() else "missing"

    def _fix_command(self, name: str, registry: dict) -> str:
        if name == "latent-svm artifact":
            return ("train one with scripts/extract_latents.py and scripts/train_svm.py, then pass its path "
                    "(PipelineConfig.attribution_artifact / --attribution)")
        if name in registry:
            return registry[name].fetch_command
        if "/" in name or Path(name).suffix:
            return f"{name} does not exist; give the path of an existing file"
        return f"{name} is not in artifacts/weights.json: register the trained artifact there or pass a file path"


@dataclass
class _Item:
    """Working state of one image while its batch runs (face_* fields are written by the alignment thread)."""

    name: str
    image: LoadedImage | None = None
    error: str | None = None
    evidence: dict[str, BranchEvidence] = field(default_factory=dict)
    aligned: list = field(default_factory=list)
    faces: list[dict] = field(default_factory=list)
    face_warnings: list[str] = field(default_factory=list)
    face_models: dict[str, str] = field(default_factory=dict)
    latent: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    fused: Any = None
    pictures: EvidencePictures | None = None

    def used(self, loaded: LoadedModel) -> None:
        self.models.update(loaded.weights)
        if loaded.warning and loaded.warning not in self.warnings:
            self.warnings.append(loaded.warning)

    def result(self, total_ms: float) -> Result:
        """The Verdict (or Failure); warnings and models in a fixed order whatever the threads' timing."""
        if self.image is None:
            return Failure(file=self.name, error=self.error or f"{self.name}: could not be analysed")
        fused = self.fused
        timings = {stage: round(self.timings[stage], 2) for stage in _STAGE_ORDER if stage in self.timings}
        timings["total"] = round(total_ms, 2)
        models = {**self.models, **self.face_models}
        return Verdict(
            file=self.name, sha256=self.image.sha256, width=self.image.width, height=self.image.height,
            is_fake=fused.is_fake, fake_probability=_rounded(fused.fake_probability), label=fused.label,
            probabilities={label: _rounded(p) for label, p in fused.probabilities.items()},
            evidence={branch: self.evidence.get(branch, BranchEvidence(reason="not run")).to_dict()
                      for branch in BRANCHES},
            faces=self.faces, warnings=self.warnings + self.face_warnings + fused.warnings, timings_ms=timings,
            models=dict(sorted(models.items())), pictures=self.pictures)


_STAGE_ORDER = ("load", "clip_probe", "fingerprint_net", "align", "e4e", "latent_svm", "fusion", "pictures")


# -- default loaders: registry first (offline unless config.download), then the stage's own constructor ------------

_REGISTRY_NAMES = {"clip_probe": ("clip-vit-l14-openai", "ufd-probe"), "aligner": ("dlib-landmarks-68",),
                   "e4e": ("e4e-ffhq",)}


def load_clip_probe(config: PipelineConfig, precision: Precision) -> LoadedModel:
    """UFD's CLIP probe; random full-size weights only when `random_weights_ok` and the real ones are absent."""
    from detector.clip_probe import ClipProbe, ClipProbeConfig

    probe_config = ClipProbeConfig(batch_size=config.batch_size)
    try:
        _require(_REGISTRY_NAMES["clip_probe"], config.download)
    except WeightUnavailableError as err:
        if not config.random_weights_ok:
            raise
        model = ClipProbe.random_init(probe_config, precision)
        return LoadedModel(model, {"clip_probe": RANDOM_WEIGHTS},
                           f"clip_probe uses RANDOM weights (benchmark mode; {err.weight} is missing): "
                           "its P(fake) is meaningless")
    model = ClipProbe.from_registry(probe_config, precision)
    return LoadedModel(model, dict(model.weights_sha256))


def load_fingerprint_net(config: PipelineConfig, precision: Precision) -> LoadedModel:
    """The trained FingerprintNet artifact, by registry name or by path."""
    from detector.fingerprint_net import FingerprintNet

    name = config.fingerprint_weights
    path = Path(name)
    if path.suffix == ".safetensors" or path.is_file():
        if not path.is_file():
            raise WeightUnavailableError(name, "no such file", "the path given as fingerprint_weights")
        return LoadedModel(FingerprintNet.from_pretrained(path, precision), {path.name: sha256_file(path)})
    path = _require((name,), config.download)[0]
    return LoadedModel(FingerprintNet.from_pretrained(path, precision), {name: weight_sha256(name, path)})


def load_aligner(config: PipelineConfig, precision: Precision) -> LoadedModel:
    """dlib's detector and 68-point predictor (from the face-recognition-models package)."""
    from encoder.align import FaceAligner

    (path,) = _require(_REGISTRY_NAMES["aligner"], config.download)
    return LoadedModel(FaceAligner(), {"dlib-landmarks-68": weight_sha256("dlib-landmarks-68", path)})


def load_e4e(config: PipelineConfig, precision: Precision) -> LoadedModel:
    """The e4e FFHQ encoder; random full-size weights only when `random_weights_ok` and the real ones are absent."""
    from encoder.e4e import E4EConfig, Encoder4Editing

    try:
        _require(_REGISTRY_NAMES["e4e"], config.download)
    except WeightUnavailableError as err:
        if not config.random_weights_ok:
            raise
        return LoadedModel(Encoder4Editing.random_init(E4EConfig.ffhq(), precision), {"e4e": RANDOM_WEIGHTS},
                           f"e4e uses RANDOM weights (benchmark mode; {err.weight} is missing): "
                           "the latent evidence is meaningless")
    model = Encoder4Editing.from_registry(precision)
    return LoadedModel(model, {"e4e-ffhq": model.weights_sha256 or RANDOM_WEIGHTS})


def load_latent_svm(config: PipelineConfig, precision: Precision) -> LoadedModel:
    """The latent SVM artifact named in the config (there is no default: it is trained per project)."""
    from attribution.latent_svm import LatentAttributor

    artifact = config.attribution_artifact
    if artifact is None:
        raise WeightUnavailableError(
            "latent-svm", "no attribution artifact was given (train one with scripts/train_svm.py on e4e latents, "
            "then pass --attribution PATH)")
    path = Path(artifact)
    if not path.is_file():
        raise WeightUnavailableError("latent-svm", f"{path} does not exist; pass the path of an artifact written "
                                     "by scripts/train_svm.py")
    model = LatentAttributor.load(path, trust_foreign=config.trust_foreign_attribution)
    return LoadedModel(model, {path.name: sha256_file(path)})


DEFAULT_LOADERS: dict[str, Loader] = {"clip_probe": load_clip_probe, "fingerprint_net": load_fingerprint_net,
                                      "aligner": load_aligner, "e4e": load_e4e, "latent_svm": load_latent_svm}


def _require(names: Sequence[str], download: bool) -> list[Path]:
    """Resolve registry weights (offline unless `download`), turning 'not in the registry' into the same error."""
    registry = load_registry()
    paths = []
    for name in names:
        if name not in registry:
            raise WeightUnavailableError(name, "it is not in the registry (artifacts/weights.json)",
                                         "a trained artifact registered by its owner",
                                         "register it in artifacts/weights.json or pass a file path")
        paths.append(resolve(name, download=download, registry=registry))
    return paths


def _registry_or_empty() -> dict:
    try:
        return load_registry()
    except (OSError, ValueError):
        return {}


def _svm_outputs(model: Any, latents: list[np.ndarray]) -> list[tuple[np.ndarray, str]]:
    probabilities, labels = model.predict_with_proba(np.stack(latents))
    return list(zip(probabilities, labels))


def _gradcam_overlay(model: Any, pixels: np.ndarray) -> np.ndarray:
    from detector.gradcam import gradcam, overlay

    return overlay(pixels, gradcam(model, [pixels])[0])


def _face_dict(face: Any) -> dict:
    return {"box": [int(v) for v in face.box],
            "landmarks": np.round(np.asarray(face.landmarks, dtype=np.float64), 1).tolist(),
            "alignment_quality": round(float(face.quality), 4)}


def _failed(stage: str, err: Exception) -> str:
    return f"{stage} failed: {type(err).__name__}: {err}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)
