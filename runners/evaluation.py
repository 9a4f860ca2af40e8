"""Evaluate the pipeline on a labelled image set, per branch and fused, clean and under perturbations.

scripts/evaluate.py parses the command line and calls `evaluate_dataset`; the work lives here so tests and other
programs run it without the script. The image set is read by core.datasets (class folders, a CSV or the face
set's provenance.csv); `real` and the known architectures are the known classes, every other class is a generator
outside them and measures the open set. Metrics and plots come from core.metrics, so they mean what they mean in
every other report.

Each perturbation is applied to the decoded pixels and re-encoded (JPEG at quality 95/75/50, or PNG after a
0.5×/0.25× Lanczos downscale or a centre crop to half the side); the resulting *bytes* go through the pipeline, so
core.images sees a real JPEG exactly as an uploaded one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import pipeline as P
from pipeline.fusion import (
    ARCHITECTURES,
    UNDECIDED,
    BranchEvidence,
    FusionConfig,
    Roles,
    Voters,
    architecture_distribution,
    branch_fake_probability,
    open_set_reasons,
)
from core.atomic import write_json_atomic, write_text_atomic
from core.datasets import LabelledImage, limit_per_class, read_dataset
from core.errors import InputError
from core.images import ImageError, encode_image, load_image
from runners.evaluation_report import FUSED, summary_markdown, write_plots
from core.metrics import attribution_metrics, detection_metrics

KNOWN_CLASSES = ("real", *ARCHITECTURES)


def _jpeg(quality: int) -> Callable[[np.ndarray], bytes]:
    def apply(pixels: np.ndarray) -> bytes:
        return encode_image(Image.fromarray(pixels), "JPEG", quality=quality)
    return apply


def _downscale(factor: float) -> Callable[[np.ndarray], bytes]:
    def apply(pixels: np.ndarray) -> bytes:
        image = Image.fromarray(pixels)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        return encode_image(image.resize(size, Image.Resampling.LANCZOS), "PNG")
    return apply


def _centre_crop(fraction: float) -> Callable[[np.ndarray], bytes]:
    def apply(pixels: np.ndarray) -> bytes:
        height, width = pixels.shape[:2]
        h, w = max(1, round(height * fraction)), max(1, round(width * fraction))
        top, left = (height - h) // 2, (width - w) // 2
        return encode_image(Image.fromarray(pixels[top:top + h, left:left + w]), "PNG")
    return apply


PERTURBATIONS: dict[str, Callable[[np.ndarray], bytes] | None] = {
    "original": None,
    "jpeg95": _jpeg(95), "jpeg75": _jpeg(75), "jpeg50": _jpeg(50),
    "down0.5": _downscale(0.5), "down0.25": _downscale(0.25),
    "crop0.5": _centre_crop(0.5),
}


def open_set_rates(labels: Sequence[str], called_real: Sequence[bool]) -> dict:
    """For images of an unknown generator: share labelled unknown, share called real, share left undecided (no
    vote on real vs fake) and share forced into a known class."""
    labels = list(labels)
    if not labels:
        return {"n": 0}
    unknown = np.asarray([label == "unknown" for label in labels])
    undecided = np.asarray([label == UNDECIDED for label in labels])
    real = np.asarray(called_real, dtype=bool) & ~undecided
    return {"n": len(labels), "unknown_rate": float(unknown.mean()), "called_real_rate": float(real.mean()),
            "undecided_rate": float(undecided.mean()),
            "known_class_rate": float((~unknown & ~real & ~undecided).mean())}


def branch_outcomes(verdict: dict, fusion: FusionConfig, roles: Roles) -> dict[str, dict]:
    """For every branch and the fused verdict: P(fake), the label it alone would give, and its best architecture
    (`roles`: the pipeline's branch roles, which fusion applied).

    A branch's own label applies the same open-set rules as the fused verdict to that branch's evidence alone, with
    every branch trusted: evaluation measures the skill that fusion later reads, so it must not assume it.
    """
    outcomes = {}
    alone_config = replace(fusion, trust_unmeasured=tuple(verdict["evidence"]))
    for branch in verdict["evidence"]:
        raw = verdict["evidence"].get(branch) or {}
        evidence = BranchEvidence(raw.get("probabilities"), raw.get("label"), raw.get("reason"))
        if not evidence.ran:
            outcomes[branch] = {"ran": False, "reason": evidence.reason}
            continue
        alone = {branch: evidence}
        voters = Voters.of(alone, roles, alone_config)
        dist = architecture_distribution(voters)
        reasons = (open_set_reasons(alone, dist, voters, alone_config, roles) if dist is not None
                   else ["no attribution"])
        outcomes[branch] = {"ran": True, "p_fake": branch_fake_probability(evidence),
                            "label": "unknown" if reasons else max(dist, key=dist.get),
                            "closed_set": max(dist, key=dist.get) if dist is not None else None}
    all_evidence = {b: BranchEvidence(e.get("probabilities"), e.get("label"), e.get("reason"))
                    for b, e in verdict["evidence"].items() if e}
    dist = architecture_distribution(Voters.of(all_evidence, roles, fusion))
    outcomes[FUSED] = {"ran": True, "p_fake": verdict["fake_probability"], "label": verdict["label"],
                       "closed_set": max(dist, key=dist.get) if dist else None}
    return outcomes


def condition_metrics(records: list[dict], threshold: float = 0.5) -> dict:
    """All metrics of one condition, per source (branch or fused), from the per-image records."""
    metrics = {}
    for source in dict.fromkeys(source for record in records for source in record["outcomes"]):
        ran = [r for r in records if r["outcomes"].get(source, {}).get("ran")]
        if not ran:
            reasons = {r["outcomes"].get(source, {}).get("reason") for r in records} - {None}
            metrics[source] = {"ran": False, "reason": "; ".join(sorted(reasons)) or "no image analysed"}
            continue
        scored = [r for r in ran if r["outcomes"][source]["p_fake"] is not None]
        detect = detection_metrics([r["class"] != "real" for r in scored],
                                   [r["outcomes"][source]["p_fake"] for r in scored], threshold) if scored else None
        decided = [r for r in ran if r["outcomes"][source]["label"] != UNDECIDED]
        known = [r for r in decided if r["class"] in ARCHITECTURES and r["outcomes"][source]["closed_set"] is not None]
        attribution = attribution_metrics([r["class"] for r in known], [r["outcomes"][source]["label"] for r in known],
                                          ARCHITECTURES, [r["outcomes"][source]["closed_set"] for r in known]
                                          ) if known else None
        open_set = {}
        for cls in sorted({r["class"] for r in ran} - set(KNOWN_CLASSES)):
            members = [r["outcomes"][source] for r in ran if r["class"] == cls]
            open_set[cls] = open_set_rates(
                [m["label"] for m in members],
                [m["p_fake"] is not None and m["p_fake"] < threshold for m in members])
        undecided = Counter(r["class"] for r in ran if r["outcomes"][source]["label"] == UNDECIDED)
        metrics[source] = {"ran": True, "n": len(ran), "detection": detect, "attribution": attribution,
                           "open_set": open_set,
                           "undecided": {cls: undecided[cls] for cls in sorted({r["class"] for r in ran})}}
    return metrics


def collect_dataset(source: Path, limit: int | None = None, seed: int = 0) -> list[LabelledImage]:
    """Every labelled image (optionally a seeded pick of at most N per class, spread over sources).

    Refuses a set without real images or without any generated one: neither detection nor attribution could be
    measured.
    """
    items, _ = read_dataset(source)
    labels = {item.label for item in items}
    if "real" not in labels or not labels - {"real"}:
        raise InputError(f"{source} needs a 'real' class and at least one generator class; found {sorted(labels)}")
    return limit_per_class(items, limit, seed) if limit is not None else items


def perturbed_sources(items: list[LabelledImage], condition: str, limits) -> Iterator[tuple[LabelledImage, object]]:
    """What the pipeline receives for each image under a condition: the file itself, or re-encoded bytes."""
    perturb = PERTURBATIONS[condition]
    for item in items:
        if perturb is None:
            yield item, str(item.path)
            continue
        try:
            pixels = load_image(item.path, limits).pixels
        except ImageError as err:
            yield item, err
            continue
        yield item, perturb(pixels)


def evaluate(pipe: P.Pipeline, items: list[LabelledImage], conditions: Sequence[str], predictions_path: Path,
             progress: bool = True) -> dict:
    """Run every condition, write one prediction line per image × condition, return the metrics per condition."""
    results: dict[str, dict] = {}
    with open(predictions_path, "w", encoding="utf-8") as out:
        for condition in conditions:
            records = []
            errors = []
            stream = perturbed_sources(items, condition, pipe.config.limits)
            bar = tqdm(total=len(items), desc=condition, unit="img", disable=not progress)
            for chunk in _chunks(stream, pipe.config.batch_size):
                ready = [(item, src) for item, src in chunk if not isinstance(src, Exception)]
                errors += [f"{src}" for _, src in chunk if isinstance(src, Exception)]
                names = [item.name for item, _ in ready]
                verdicts = pipe.analyze([src for _, src in ready], names=names) if ready else []
                for (item, _), result in zip(ready, verdicts):
                    if isinstance(result, P.Failure):
                        errors.append(result.error)
                        continue
                    record = {"condition": condition, "file": item.name, "class": item.label,
                              "outcomes": branch_outcomes(result.to_dict(), pipe.config.fusion, pipe.roles)}
                    records.append(record)
                    out.write(json.dumps(record) + "\n")
                bar.update(len(chunk))
            bar.close()
            results[condition] = {"n_images": len(records), "n_errors": len(errors), "errors": errors[:20],
                                  "metrics": condition_metrics(records)}
    return results


def _chunks(stream: Iterator, size: int) -> Iterator[list]:
    chunk = []
    for item in stream:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def evaluate_dataset(pipe: P.Pipeline, items: list[LabelledImage], conditions: Sequence[str], out: Path,
                     dataset: str, progress: bool = True, extra: dict | None = None) -> dict:
    """Run every condition, write metrics.json, predictions.jsonl, summary.md and the plots to `out`; the report."""
    out.mkdir(parents=True, exist_ok=True)
    predictions = out / "predictions.jsonl"
    results = evaluate(pipe, items, conditions, predictions, progress)
    report = {"dataset": dataset, "images_per_class": dict(sorted(Counter(item.label for item in items).items())),
              **(extra or {}), "fusion": asdict(pipe.config.fusion), "conditions": results}
    write_json_atomic(out / "metrics.json", report)
    write_text_atomic(out / "summary.md", summary_markdown(report) + "\n")
    report["plots"] = write_plots(report, predictions, out)
    return report
