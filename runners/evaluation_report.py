"""The evaluation's report: the Markdown summary (per condition, per branch and fused, undecided in its own column)
and the plots, from the report dict `runners.evaluation` builds. Rendering only; no model runs here.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.metrics import plot_confusion_matrix, plot_roc_pr, plot_series

FUSED = "fused"

def summary_markdown(report: dict) -> str:
    """A table per condition that a reader can scan: detection, attribution and open-set rates per source."""
    lines = [f"# GANTrace evaluation: {report['dataset']}", "",
             "Images per class: " + ", ".join(f"{k} {v}" for k, v in report["images_per_class"].items()), "",
             "Detection is real vs every fake; attribution is on fakes of the known classes (the label as output: "
             "'unknown' and 'real' count as wrong; closed = best known architecture); open set is every other "
             "folder (unknown = share labelled unknown, real = share called real). An 'undecided' answer (nothing "
             "with the skill voted on real vs fake) is neither right nor wrong: it is left out of detection and "
             "attribution, is its own share of the open set and is counted per class in its own column.", ""]
    for condition, result in report["conditions"].items():
        lines += [f"## {condition} ({result['n_images']} images, {result['n_errors']} not analysed)", "",
                  "| source | AUC | AP | TPR@1%FPR | TPR@5%FPR | TPR@0.5 | FPR@0.5 | attr. acc | attr. bal. acc | "
                  "closed acc | open set: unknown / real | undecided |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for source, m in result["metrics"].items():
            if not m["ran"]:
                lines.append(f"| {source} | did not run: {m['reason'][:160]} |" + " |" * 10)
                continue
            d = m["detection"] or {}
            a = m["attribution"] or {}
            open_set = "; ".join(f"{cls} {o['unknown_rate']:.2f} / {o['called_real_rate']:.2f}"
                                 for cls, o in m["open_set"].items() if o.get("n"))
            lines.append("| " + " | ".join([source, _f(d.get("roc_auc")), _f(d.get("average_precision")),
                                             _f(d.get("tpr_at_fpr_1pct")), _f(d.get("tpr_at_fpr_5pct")),
                                             _f(d.get("tpr_at_threshold")), _f(d.get("fpr_at_threshold")),
                                             _f(a.get("accuracy")), _f(a.get("balanced_accuracy")),
                                             _f(a.get("closed_set_accuracy")), open_set or "–",
                                             _counts(m.get("undecided") or {})]) + " |")
        lines.append("")
    return "\n".join(lines)


def write_plots(report: dict, predictions_path: Path, out: Path) -> list[str]:
    """Robustness across the sweep, the fused confusion matrix and ROC/PR curves of the first condition (PNG)."""
    conditions = list(report["conditions"])
    sources = list(report["conditions"][conditions[0]]["metrics"])
    panels = {title: {source: [_get(report, c, source, group, key) for c in conditions] for source in sources}
              for title, group, key in (("detection ROC AUC", "detection", "roc_auc"),
                                        ("attribution balanced accuracy", "attribution", "balanced_accuracy"))}
    plot_series(panels, conditions, out / "robustness.png", y_limits=dict.fromkeys(panels, (0, 1.02)))
    written = ["robustness.png"]
    first = conditions[0]
    fused = report["conditions"][first]["metrics"].get(FUSED, {})
    confusion = (fused.get("attribution") or {}).get("confusion")
    if confusion:
        plot_confusion_matrix(confusion["matrix"], confusion["rows"], out / "confusion_fused.png",
                              title=f"fused attribution, {first}", columns=confusion["columns"])
        written.append("confusion_fused.png")
    records = [json.loads(line) for line in predictions_path.read_text(encoding="utf-8").splitlines()]
    scored = {}
    for source in sources:
        pairs = [(r["class"] != "real", r["outcomes"][source]["p_fake"]) for r in records
                 if r["condition"] == first and r["outcomes"].get(source, {}).get("ran")
                 and r["outcomes"][source]["p_fake"] is not None]
        scored[source] = ([y for y, _ in pairs], [s for _, s in pairs])
    if plot_roc_pr(scored, out / f"roc_{first}.png", title=f"real vs fake, {first}"):
        written.append(f"roc_{first}.png")
    return written


def _get(report: dict, condition: str, source: str, group: str, key: str):
    metrics = report["conditions"][condition]["metrics"].get(source, {})
    return (metrics.get(group) or {}).get(key)


def _counts(per_class: dict[str, int]) -> str:
    return ", ".join(f"{cls} {n}" for cls, n in per_class.items() if n) or "0"


def _f(value) -> str:
    return "–" if value is None else f"{value:.3f}"
