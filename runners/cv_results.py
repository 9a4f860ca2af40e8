"""Fold results of the source-grouped cross-validation: written atomically per (candidate, fold), read back into
held-out predictions, and reported per fold, per source and side by side (`runners.source_cv`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.branch import BranchRole
from pipeline.fusion import FusionConfig, attribution_refusal, real_vs_fake_refusal
from core.atomic import atomic_path, write_json_atomic
from core.source_holdout import (KNOWN_GANS, REAL, HeldOutPredictions, Scores, choose_threshold,
                                 leave_one_source_out, skill_record, source_table)
from detector.spectral import TEST_CONDITIONS
from runners.evaluate_sources import THRESHOLD_CONDITIONS, write_table

# the bars fusion applies (pipeline.fusion.FusionConfig), so the comparison says what fusion would do
BARS = FusionConfig()


def save_fold(path: Path, test: np.ndarray, scores: dict[str, Scores]) -> None:
    """One (candidate, fold) result, written atomically: test indices, P(fake) and attribution per condition."""
    arrays = {"test": test}
    for condition, result in scores.items():
        arrays[f"fake_{condition}"] = np.asarray(result.fake, dtype=np.float32)
        arrays[f"attribution_{condition}"] = np.asarray(result.attribution, dtype=np.float32)
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, **arrays)


def load_results(folder: Path, folds: list, size: int) -> dict[str, dict[str, np.ndarray]] | None:
    """Out-of-fold P(fake) and attribution of every image per condition, or None while a fold is missing."""
    if not all((folder / f"{name}.npz").is_file() for name, _, _ in folds):
        return None
    fake = {c: np.full(size, np.nan) for c in TEST_CONDITIONS}
    attribution = {c: np.full((size, len(KNOWN_GANS)), np.nan) for c in TEST_CONDITIONS}
    for name, _, _ in folds:
        with np.load(folder / f"{name}.npz", allow_pickle=False) as stored:
            for condition in TEST_CONDITIONS:
                fake[condition][stored["test"]] = stored[f"fake_{condition}"]
                attribution[condition][stored["test"]] = stored[f"attribution_{condition}"]
    return {"fake": fake, "attribution": attribution}


def held_out(results: dict, labels: np.ndarray, sources: np.ndarray, folds: list) -> HeldOutPredictions:
    """Finished fold files as HeldOutPredictions, through the same protocol function every table uses."""
    return leave_one_source_out(labels, sources, lambda train: None,
                                lambda _, test, c: Scores(results["fake"][c][test], results["attribution"][c][test]),
                                conditions=tuple(TEST_CONDITIONS), folds=folds)


def per_fold(predictions: HeldOutPredictions, folds: list, fold_map: dict, threshold: float) -> list[dict]:
    """Per fold and condition: AUC over the fold's images, real photos called fake, attribution accuracy."""
    rows = []
    for name, _, test in folds:
        row = {"fold": name, "sources": fold_map[name], "n": int(len(test))}
        labels = predictions.labels[test]
        for condition in TEST_CONDITIONS:
            fake = predictions.fake[condition][test]
            is_fake, known = labels != REAL, np.isin(labels, KNOWN_GANS)
            attribution = predictions.attribution[condition][test]
            truth = [KNOWN_GANS.index(label) for label in labels[known]]
            row[condition] = {
                "auc": float(roc_auc_score(is_fake, fake)) if 0 < is_fake.sum() < len(is_fake) else None,
                "real_false_positive_rate": float(np.mean(fake[~is_fake] >= threshold)) if (~is_fake).any() else None,
                "attribution_accuracy": float(np.mean(attribution[known].argmax(1) == truth)) if known.any() else None,
            }
        rows.append(row)
    return rows


def write_candidate(name: str, predictions: HeldOutPredictions, folds: list, fold_map: dict, out: Path,
                    max_real_fpr: float, k: int, command: str | None = None) -> dict:
    """The candidate's per-source table (the evaluate_sources format), its skill record, its per-fold rows and
    the command that made it."""
    document = write_table(predictions, out, f"{name}, source-grouped {k}-fold CV", max_real_fpr)
    document["skill"]["protocol"] = f"source-grouped {k}-fold cross-validation"
    document["per_fold"] = per_fold(predictions, folds, fold_map, document["table"]["threshold"])
    document["command"] = command
    write_json_atomic(out / "source_table.json", document)
    return document


def rescored(name: str, folder: Path, predictions: HeldOutPredictions, folds: list, fold_map: dict,
             max_real_fpr: float, k: int, stored_jpeg: np.ndarray) -> dict:
    """A finished candidate's document recomputed from its fold files by today's rules (threshold over every
    condition fusion's bar checks, the 0.5× figures in the skill record), so candidates written by older code
    compare like with like; the command it recorded is kept. Nothing is written."""
    threshold = choose_threshold(predictions, THRESHOLD_CONDITIONS, max_real_fpr)
    table = source_table(predictions, threshold)
    skill = {**skill_record(table), "protocol": f"source-grouped {k}-fold cross-validation"}
    stored, trained = folder / "source_table.json", folder / "training.json"
    command = json.loads(stored.read_text(encoding="utf-8")).get("command") if stored.is_file() else None
    training = json.loads(trained.read_text(encoding="utf-8")) if trained.is_file() else None
    return {"skill": skill, "table": table, "per_fold": per_fold(predictions, folds, fold_map, threshold),
            "command": command, "name": name, "training": training,
            "file_formats": by_file_format(predictions, stored_jpeg, threshold)}


# What file an analyst holds in each test condition, read from the file the way inference would: a stored JPEG
# and every JPEG q75 re-encode are JPEG files; a stored lossless file and every 0.5× downscale (a resized PNG)
# are lossless ones.
FILE_FORMATS = {"JPEG file": (("clean", True), ("jpeg75", None)),
                "lossless file": (("clean", False), ("half", None))}
MIN_REAL_SOURCES_PER_FORMAT = 3


def by_file_format(predictions: HeldOutPredictions, stored_jpeg: np.ndarray, threshold: float) -> dict:
    """The held-out figures of the images an analyst would receive as a JPEG file and as a lossless one (see
    FILE_FORMATS), each source's rows pooled over the conditions that make that format: whether a cue has skill
    under one file format only, measured on at least MIN_REAL_SOURCES_PER_FORMAT real sources."""
    formats = {}
    for name, parts in FILE_FORMATS.items():
        rows = [(condition, np.flatnonzero(np.ones_like(stored_jpeg) if jpeg is None else stored_jpeg == jpeg))
                for condition, jpeg in parts]
        pooled = HeldOutPredictions(
            labels=np.concatenate([predictions.labels[index] for _, index in rows]),
            sources=np.concatenate([predictions.sources[index] for _, index in rows]),
            fake={name: np.concatenate([predictions.fake[c][index] for c, index in rows])},
            attribution={name: np.concatenate([predictions.attribution[c][index] for c, index in rows])})
        summary = source_table(pooled, threshold)["conditions"][name]["summary"]
        formats[name] = {**summary, "enough_real_sources": summary["real_sources"] >= MIN_REAL_SOURCES_PER_FORMAT}
    return formats


def summary_table(summary: dict[str, dict]) -> list[str]:
    """The side-by-side table of `comparison`'s summary (also in every shipped cue's model card), with its legend."""
    lines = ["AUC = mean over sources; real FPR = real photos called fake at the candidate's threshold (mean over real "
             "sources); attribution = accuracy among progan/stylegan2/stylegan3, mean over GAN sources. Conditions: "
             "as stored / JPEG q75 / 0.5× downscale. A learned candidate names the training steps of each fold.", "",
             "| candidate | AUC | real FPR | attribution | threshold | real/fake vote | arch vote |",
             "|---|---|---|---|---:|---|---|"]
    for name, entry in summary.items():
        row = entry["summary"]
        cells = [" / ".join(_fmt(row[c][key]) for c in TEST_CONDITIONS)
                 for key in ("auc_mean", "real_false_positive_rate", "attribution_accuracy")]
        steps = f" ({entry['steps']} steps/fold)" if entry.get("steps") else ""
        lines.append(f"| {name}{steps} | {' | '.join(cells)} | {entry['threshold']:.3f} | "
                     f"{'yes' if entry['votes_real_fake'] else 'no'} | {'yes' if entry['votes_architecture'] else 'no'} |")
    return lines


def comparison(documents: dict[str, dict]) -> tuple[dict, str]:
    """Every candidate side by side: summary per condition, per fold, and whether it clears the voting bars."""
    summary = {}
    for name, document in documents.items():
        conditions = document["table"]["conditions"]
        # fusion's own refusal rules on the candidate's skill record (a branch with the default role)
        summary[name] = {"summary": {c: conditions[c]["summary"] for c in TEST_CONDITIONS},
                         "threshold": document["table"]["threshold"],
                         "votes_real_fake": real_vs_fake_refusal(BranchRole(), document["skill"], BARS) is None,
                         "votes_architecture": attribution_refusal(BranchRole(), document["skill"], BARS) is None,
                         "steps": (document.get("training") or {}).get("steps"), "per_fold": document["per_fold"]}
    lines = ["# Source-grouped CV: every candidate side by side", "", *summary_table(summary)]
    any_document = next(iter(documents.values()))
    for key, what in (("auc", "AUC over the fold's images"), ("real_false_positive_rate", "real photos called fake"),
                      ("attribution_accuracy", "attribution accuracy")):
        lines += ["", f"## Per fold: {what} (as stored / JPEG q75 / 0.5×)", "",
                  "| fold | sources | " + " | ".join(documents) + " |", "|---|---|" + "---|" * len(documents)]
        for index, fold in enumerate(any_document["per_fold"]):
            cells = [" / ".join(_fmt(document["per_fold"][index][c][key]) for c in TEST_CONDITIONS)
                     for document in documents.values()]
            lines.append(f"| {fold['fold']} | {', '.join(fold['sources'])} | {' | '.join(cells)} |")
    lines += ["", "## Per source (AUC as stored / JPEG q75 / 0.5×)", "",
              "| source | " + " | ".join(documents) + " |", "|---|" + "---|" * len(documents)]
    for index, source_row in enumerate(any_document["table"]["conditions"]["clean"]["sources"]):
        cells = [" / ".join(_fmt(d["table"]["conditions"][c]["sources"][index]["auc"]) for c in TEST_CONDITIONS)
                 for d in documents.values()]
        lines.append(f"| {source_row['source']} ({source_row['n_real']} real, {source_row['n_fake']} fake) | "
                     f"{' | '.join(cells)} |")
    lines += ["", "## By the file an analyst holds (JPEG: stored JPEGs and every JPEG q75 re-encode; lossless: stored "
              "lossless files and every 0.5× downscale)", "",
              "AUC mean over sources / real photos called fake / attribution; in brackets the real sources "
              "measured (fewer than "
              f"{MIN_REAL_SOURCES_PER_FORMAT} cannot support a vote under that format).", "",
              "| candidate | " + " | ".join(FILE_FORMATS) + " |", "|---|" + "---|" * len(FILE_FORMATS)]
    for name, document in documents.items():
        cells = [" / ".join(_fmt(f[key]) for key in ("auc_mean", "real_false_positive_rate", "attribution_accuracy"))
                 + f" ({f['real_sources']})" for f in document["file_formats"].values()]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", "## Commands that reproduce each candidate", ""]
    lines += [f"- {name}: `{document.get('command') or 'not recorded'}`" for name, document in documents.items()]
    return summary, "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
