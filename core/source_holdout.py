"""Leave-one-source-out evaluation: the yardstick every GANTrace branch is judged by.

A detector that sees one repository's images in training and another slice of the same repository in testing
learns the repository (its camera, crop, JPEG pipeline, face dataset), not the generator. So each *source* is
held out in turn: the model is fitted on every other source and scored on the held-out one, and every figure
below is computed from those held-out scores only — including the decision threshold.

A source is a string the caller chooses (for the development face set, provenance.csv's `repo`). A real/fake
pair processed the same way is ONE source: give both halves the same source string (in the face set they share
their `repo`, e.g. the Unsplash reals and thispersondoesnotexist StyleGAN2 faces of the "hard fake vs real" set)
and they are held out together, so the pair never leaks its shared processing into training.

Per source and per test condition (e.g. clean, JPEG q75 re-encode, 0.5× downscale) the table gives real
recall, fake recall at the threshold, a ROC AUC and attribution accuracy among the known GANs. A source holding
both classes gets its own AUC; a one-class source gets the AUC of its images against the held-out images of the
other class from every other fold (so every source has an AUC and the mean over sources weighs each equally).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

REAL = "real"
KNOWN_GANS = ("progan", "stylegan2", "stylegan3")
MAX_REAL_FALSE_POSITIVE_RATE = 0.10
HALF_CONDITION = "half"


@dataclass
class Scores:
    """A model's output on test images: a fake score (higher = more fake) and optional attribution probabilities."""

    fake: np.ndarray
    attribution: np.ndarray | None = None


@dataclass
class HeldOutPredictions:
    """Every sample's scores from the fold that held its source out, per test condition."""

    labels: np.ndarray
    sources: np.ndarray
    fake: dict[str, np.ndarray] = field(default_factory=dict)
    attribution: dict[str, np.ndarray | None] = field(default_factory=dict)
    attribution_classes: tuple[str, ...] = KNOWN_GANS


FitFn = Callable[[np.ndarray], Any]
ScoreFn = Callable[[Any, np.ndarray, str], Scores]


def source_folds(sources: Sequence[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(held-out source, train indices, test indices) for every source, sorted by name for reproducibility."""
    sources = np.asarray(sources)
    return [(str(source), np.flatnonzero(sources != source), np.flatnonzero(sources == source))
            for source in sorted(set(sources.tolist()))]


def leave_one_source_out(labels: Sequence[str], sources: Sequence[str], fit: FitFn, score: ScoreFn,
                         conditions: Sequence[str] = ("clean",), attribution_classes: Sequence[str] = KNOWN_GANS,
                         folds: Iterable | None = None) -> HeldOutPredictions:
    """Fit on all other sources and score the held-out one, for every source and every test condition.

    `fit(train_indices)` returns a model; `score(model, test_indices, condition)` returns Scores for those samples
    under that condition (the caller applies the perturbation that the condition names). `folds` may wrap
    source_folds(sources) in a progress bar.
    """
    labels, sources = np.asarray(labels), np.asarray(sources)
    if len(labels) != len(sources):
        raise ValueError(f"{len(labels)} labels but {len(sources)} sources")
    result = HeldOutPredictions(labels, sources, attribution_classes=tuple(attribution_classes))
    for condition in conditions:
        result.fake[condition] = np.full(len(labels), np.nan)
        result.attribution[condition] = None
    for _, train, test in folds if folds is not None else source_folds(sources):
        model = fit(train)
        for condition in conditions:
            scores = score(model, test, condition)
            result.fake[condition][test] = np.asarray(scores.fake, dtype=float)
            if scores.attribution is not None:
                if result.attribution[condition] is None:
                    result.attribution[condition] = np.full((len(labels), len(attribution_classes)), np.nan)
                result.attribution[condition][test] = scores.attribution
    return result


def choose_threshold(predictions: HeldOutPredictions, conditions: Sequence[str],
                     max_real_fpr: float = MAX_REAL_FALSE_POSITIVE_RATE) -> float:
    """The lowest fake-score threshold at which real photos called fake stay ≤ max_real_fpr in every condition.

    The rate is the mean over sources that hold real photos (each source weighs the same, so one large real
    source cannot hide a badly served small one). Lowest threshold = most fakes caught within that budget.
    """
    is_real = predictions.labels == REAL
    if not is_real.any():
        raise ValueError("no real photos among the held-out predictions: a real false-positive rate needs some")
    real_sources = sorted(set(predictions.sources[is_real].tolist()))
    candidates = np.unique(np.concatenate([predictions.fake[c][is_real] for c in conditions]))
    candidates = np.append(candidates, np.nextafter(candidates[-1], np.inf))
    for threshold in candidates:
        rates = [_mean_real_fpr(predictions, condition, real_sources, threshold) for condition in conditions]
        if max(rates) <= max_real_fpr:
            return float(threshold)
    return float(candidates[-1])


def source_table(predictions: HeldOutPredictions, threshold: float) -> dict:
    """Per-source and summary figures for every condition, at the given fake-score threshold."""
    table = {"threshold": threshold, "conditions": {}}
    for condition, fake in predictions.fake.items():
        rows = [_source_row(predictions, condition, source, threshold)
                for source in sorted(set(predictions.sources.tolist()))]
        table["conditions"][condition] = {"sources": rows, "summary": _summary(predictions, condition, rows)}
    return table


def skill_record(table: dict, jpeg_condition: str = "jpeg75", does_attribution: bool = True) -> dict:
    """The `skill` block an artifact's JSON carries, read by fusion to decide whether a branch may vote."""
    clean = table["conditions"]["clean"]["summary"]
    jpeg = table["conditions"][jpeg_condition]["summary"]
    attribution = None
    if does_attribution and clean["attribution_accuracy"] is not None:
        attribution = {"accuracy": clean["attribution_accuracy"], "accuracy_jpeg75": jpeg["attribution_accuracy"],
                       "gan_sources": clean["gan_sources"]}
    real_vs_fake = {
        "auc": clean["auc_mean"], "auc_jpeg75": jpeg["auc_mean"],
        "real_false_positive_rate": clean["real_false_positive_rate"],
        "real_false_positive_rate_jpeg75": jpeg["real_false_positive_rate"],
        "threshold": table["threshold"],
    }
    if HALF_CONDITION in table["conditions"]:
        # the resized-PNG condition of a real photo: fusion's bar on real photos called fake covers it too
        half = table["conditions"][HALF_CONDITION]["summary"]
        real_vs_fake.update({"auc_half": half["auc_mean"],
                             "real_false_positive_rate_half": half["real_false_positive_rate"]})
    return {"protocol": "leave-one-source-out", "sources": clean["sources"], "real_vs_fake": real_vs_fake,
            "attribution": attribution}


def table_markdown(table: dict, title: str) -> str:
    """The per-source table as Markdown: one section per condition, one row per source, a summary line."""
    lines = [f"## {title}", "", f"Threshold on the fake score: {table['threshold']:.4f} (chosen on held-out scores).",
             ""]
    for condition, block in table["conditions"].items():
        summary = block["summary"]
        lines += [f"### {condition}", "",
                  f"AUC mean over {summary['sources']} sources {_fmt(summary['auc_mean'])}, pooled "
                  f"{_fmt(summary['auc_pooled'])}; real photos called fake {_fmt(summary['real_false_positive_rate'])}"
                  f" (mean over sources, worst {_fmt(summary['real_false_positive_rate_worst'])}); fake recall "
                  f"{_fmt(summary['fake_recall'])}; attribution accuracy {_fmt(summary['attribution_accuracy'])} "
                  f"(mean over {summary['gan_sources']} GAN sources).", "",
                  "| source | real | fake | real recall | fake recall | AUC | AUC against | attribution (n) |",
                  "|---|---:|---:|---:|---:|---:|---|---:|"]
        for row in block["sources"]:
            attribution = "–" if row["attribution_accuracy"] is None else \
                f"{row['attribution_accuracy']:.2f} ({row['n_known_gan']})"
            lines.append(f"| {row['source']} | {row['n_real']} | {row['n_fake']} | {_fmt(row['real_recall'])} | "
                         f"{_fmt(row['fake_recall'])} | {_fmt(row['auc'])} | {row['auc_against'] or '–'} | "
                         f"{attribution} |")
        lines.append("")
    return "\n".join(lines)


def _source_row(predictions: HeldOutPredictions, condition: str, source: str, threshold: float) -> dict:
    fake = predictions.fake[condition]
    in_source = predictions.sources == source
    is_real = predictions.labels == REAL
    real, fakes = in_source & is_real, in_source & ~is_real
    if real.any() and fakes.any():
        auc, against = roc_auc_score(~is_real[in_source], fake[in_source]), "own source"
    elif real.any():
        others = ~is_real & ~in_source
        auc, against = _auc(fake[real], fake[others]), "held-out fakes"
    else:
        others = is_real & ~in_source
        auc, against = _auc(fake[others], fake[fakes]), "held-out reals"
    return {
        "source": source, "n_real": int(real.sum()), "n_fake": int(fakes.sum()),
        "real_recall": float(np.mean(fake[real] < threshold)) if real.any() else None,
        "fake_recall": float(np.mean(fake[fakes] >= threshold)) if fakes.any() else None,
        "auc": auc, "auc_against": against if auc is not None else None,
        **_attribution(predictions, condition, in_source),
    }


def _attribution(predictions: HeldOutPredictions, condition: str, in_source: np.ndarray) -> dict:
    classes = predictions.attribution_classes
    known = in_source & np.isin(predictions.labels, classes)
    probabilities = predictions.attribution.get(condition)
    if probabilities is None or not known.any():
        return {"n_known_gan": int(known.sum()), "attribution_accuracy": None}
    truth = np.array([classes.index(label) for label in predictions.labels[known]])
    accuracy = float(np.mean(probabilities[known].argmax(axis=1) == truth))
    return {"n_known_gan": int(known.sum()), "attribution_accuracy": accuracy}


def _summary(predictions: HeldOutPredictions, condition: str, rows: list[dict]) -> dict:
    fake = predictions.fake[condition]
    is_fake = predictions.labels != REAL
    real_rates = [1.0 - row["real_recall"] for row in rows if row["real_recall"] is not None]
    fake_recalls = [row["fake_recall"] for row in rows if row["fake_recall"] is not None]
    aucs = [row["auc"] for row in rows if row["auc"] is not None]
    within = [row["auc"] for row in rows if row["auc_against"] == "own source"]
    attribution = [row["attribution_accuracy"] for row in rows if row["attribution_accuracy"] is not None]
    pooled = roc_auc_score(is_fake, fake) if 0 < is_fake.sum() < len(is_fake) else None
    return {
        "sources": len(rows),
        "auc_mean": _mean(aucs), "auc_worst": min(aucs) if aucs else None,
        "auc_pooled": None if pooled is None else float(pooled),
        "auc_mean_within_mixed_sources": _mean(within), "mixed_sources": len(within),
        "real_false_positive_rate": _mean(real_rates), "real_false_positive_rate_worst": max(real_rates, default=None),
        "real_sources": len(real_rates),
        "fake_recall": _mean(fake_recalls), "fake_recall_worst": min(fake_recalls, default=None),
        "attribution_accuracy": _mean(attribution), "gan_sources": len(attribution),
    }


def _mean_real_fpr(predictions: HeldOutPredictions, condition: str, real_sources: list[str], threshold: float) -> float:
    fake = predictions.fake[condition]
    is_real = predictions.labels == REAL
    return float(np.mean([np.mean(fake[is_real & (predictions.sources == s)] >= threshold) for s in real_sources]))


def _auc(negatives: np.ndarray, positives: np.ndarray) -> float | None:
    if not len(negatives) or not len(positives):
        return None
    truth = np.r_[np.zeros(len(negatives)), np.ones(len(positives))]
    return float(roc_auc_score(truth, np.r_[negatives, positives]))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def grouped_source_folds(sources: Sequence[str], k: int = 5, seed: int = 0,
                         labels: Sequence[str] | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(fold name, train indices, test indices) for k folds that each hold whole sources, for `folds=`.

    Leaving one of ~29 sources out costs 29 trainings of a learned branch; k source-grouped folds cost k and
    still never show a model any image of a source it is tested on (a real/fake pair sharing a source stays
    together). Sources are dealt largest first to the fold with the fewest images, so folds are balanced by
    image count; with `labels`, sources holding real photos are dealt first, one per fold while they last, so
    every fold can measure real photos called fake. The seed shuffles the order of equal-sized sources and
    breaks ties between equally full folds, so one seed always gives the same folds.
    """
    sources = np.asarray(sources)
    names = sorted(set(sources.tolist()))
    if not 2 <= k <= len(names):
        raise ValueError(f"k = {k} folds need 2 ≤ k ≤ {len(names)} (the number of sources)")
    rng = np.random.default_rng(seed)
    sizes = {name: int(np.sum(sources == name)) for name in names}
    has_real = set() if labels is None else set(sources[np.asarray(labels) == REAL].tolist())
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda name: (name not in has_real, -sizes[name]))
    counts, reals = np.zeros(k, dtype=int), np.zeros(k, dtype=int)
    members: list[list[str]] = [[] for _ in range(k)]
    for name in order:
        open_folds = np.flatnonzero(reals == 0) if name in has_real and reals.min() == 0 else np.arange(k)
        lightest = open_folds[counts[open_folds] == counts[open_folds].min()]
        fold = int(rng.choice(lightest))
        members[fold].append(name)
        counts[fold] += sizes[name]
        reals[fold] += name in has_real
    folds = []
    for index, held in enumerate(members):
        test = np.isin(sources, held)
        folds.append((f"fold-{index + 1}", np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def fold_sources(folds: Iterable[tuple[str, np.ndarray, np.ndarray]], sources: Sequence[str]) -> dict[str, list[str]]:
    """Fold name → the sorted sources it holds out: the record written beside every cross-validated result."""
    sources = np.asarray(sources)
    return {name: sorted(set(sources[test].tolist())) for name, _, test in folds}
