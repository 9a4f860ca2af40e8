"""Train FingerprintNet on labelled face images and write a report that shows what it learned.

Data: folders of classes (--data DIR), a CSV with path,label,group (--csv), or the development face set's
provenance.csv (--provenance, groups = its `repo` column). Validation holds out whole sources per class (chosen
by --seed) so it never shares a source with training; every class gets the same random downscale + JPEG
re-encoding, crops are taken at native resolution, and batches are class-balanced.

    python scripts/train_fingerprint.py --provenance ../shared/data/faces/provenance.csv \\
        --preset small --epochs 40 --time-budget-min 38 --out /work/runs/fp-small

The output folder holds last/best checkpoints (safetensors + JSON), optimizer state (resume with --resume),
epochs.csv, curves.png, confusion matrix, ROC/PR, the robustness table, open-set behaviour and summary.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import (average_precision_score, balanced_accuracy_score, confusion_matrix,
                             precision_recall_curve, roc_auc_score, roc_curve)
from tqdm import tqdm

from core.preflight import require_output
from detector.fingerprint_data import (AugmentConfig, Sample, augment, balanced_indices, decode_samples,
                                       downscale, jpeg_reencode, limit_per_class, samples_from_csv,
                                       samples_from_folders, samples_from_provenance, split_by_source)
from detector.fingerprint_net import FingerprintConfig, FingerprintNet, load_checked, to_tensor

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402 - the backend must be chosen before pyplot loads

LOG = logging.getLogger("train_fingerprint")
PRESETS = {"full": FingerprintConfig.full, "small": FingerprintConfig.small, "tiny": FingerprintConfig.tiny}
ROBUSTNESS = (("clean", None), ("jpeg_q90", ("jpeg", 90)), ("jpeg_q75", ("jpeg", 75)), ("jpeg_q50", ("jpeg", 50)),
              ("downscale_0.75", ("scale", 0.75)), ("downscale_0.5", ("scale", 0.5)))
MIN_LR_RATIO = 0.02
SELECT_ON = ("balanced_accuracy", "real_vs_fake_auc")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder with one sub-folder of images per class")
    source.add_argument("--csv", type=Path, help="CSV with columns path,label,group")
    source.add_argument("--provenance", type=Path, help="the face set's provenance.csv (group = repo)")
    parser.add_argument("--classes", nargs="+", default=["real", "progan", "stylegan2", "stylegan3"])
    parser.add_argument("--open-set-classes", nargs="*", default=["other_gan", "diffusion"],
                        help="labels never trained on; the report shows what the model calls them")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--no-frequency", action="store_true", help="drop the FFT path (for ablations)")
    parser.add_argument("--residual-only", action="store_true",
                        help="trunk sees only the high-pass residual, no RGB (keeps content/colour out)")
    parser.add_argument("--select-on", choices=SELECT_ON, default="balanced_accuracy",
                        help="validation number that picks the best epoch (ties: lower validation loss); "
                             "real_vs_fake_auc favours a model that tells real from fake over one that attributes")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--time-budget-min", type=float, default=0.0,
                        help="wall-clock budget of this invocation; after epoch 1 the schedule is shortened to fit")
    parser.add_argument("--stop-after", type=int, default=0,
                        help="stop this invocation after N epochs, keeping the schedule (continue with --resume)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples-per-epoch", type=int, default=0, help="0 = the number of training images")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--label-smoothing", type=float, default=0.05)
    parser.add_argument("--val-range", type=float, nargs=2, default=(0.1, 0.4),
                        help="allowed share of each class held out for validation")
    parser.add_argument("--limit-per-class", type=int, default=0, help="use at most N images per class (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    parser.add_argument("--force", action="store_true", help="start over even if OUT holds a run")
    return parser.parse_args(argv)


def list_samples(args: argparse.Namespace, labels: list[str]) -> list[Sample]:
    if args.provenance:
        return samples_from_provenance(args.provenance, labels)
    if args.csv:
        return samples_from_csv(args.csv, labels)
    return samples_from_folders(args.data, labels)


def metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    """4-way and real-vs-fake numbers; the fake score is 1 − P(real)."""
    predicted = probabilities.argmax(axis=1)
    real = classes.index("real")
    is_fake = (labels != real).astype(int)
    fake_score = 1.0 - probabilities[:, real]
    picked = probabilities[np.arange(len(labels)), labels]
    result = {
        "n": int(len(labels)),
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "accuracy": float((predicted == labels).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "recall": {name: float((predicted[labels == k] == k).mean()) if (labels == k).any() else None
                   for k, name in enumerate(classes)},
        "real_vs_fake_accuracy": float(((fake_score >= 0.5).astype(int) == is_fake).mean()),
    }
    if 0 < is_fake.sum() < len(is_fake):
        result["real_vs_fake_auc"] = float(roc_auc_score(is_fake, fake_score))
        result["real_vs_fake_ap"] = float(average_precision_score(is_fake, fake_score))
    return result


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up that starts above zero (no lr = 0 step), then cosine to MIN_LR_RATIO at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """One training run: the split, the cached images, the model, its optimiser and the report folder."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out: Path = args.out
        self.classes = list(args.classes)
        config = PRESETS[args.preset]()
        config = replace(config, classes=tuple(self.classes), **({"freq_dim": 0} if args.no_frequency else {}),
                         **({"rgb_input": False, "high_pass_input": True} if args.residual_only else {}))
        self.config = config
        self.augment_config = AugmentConfig()
        samples = list_samples(args, self.classes + list(args.open_set_classes))
        if args.limit_per_class:
            samples = limit_per_class(samples, args.limit_per_class)
        known = [s for s in samples if s.label in self.classes]
        self.split = split_by_source(known, self.classes, args.seed, tuple(args.val_range))
        open_set = [s for s in samples if s.label in args.open_set_classes]
        self.train_samples, self.train_images, bad_train = decode_samples(self.split.train, config.crop_size,
                                                                          "decoding train")
        self.val_samples, self.val_images, bad_val = decode_samples(self.split.val, 64, "decoding validation")
        self.open_samples, self.open_images, bad_open = decode_samples(open_set, 64, "decoding open-set")
        self.bad_files = bad_train + bad_val + bad_open
        self.train_labels = np.array([self.classes.index(s.label) for s in self.train_samples])
        self.val_labels = np.array([self.classes.index(s.label) for s in self.val_samples])
        for k, name in enumerate(self.classes):
            if not (self.train_labels == k).any() or not (self.val_labels == k).any():
                raise SystemExit(f"class {name!r} has no usable training or validation images after decoding")
        self.samples_per_epoch = args.samples_per_epoch or len(self.train_samples)
        self.steps_per_epoch = max(1, self.samples_per_epoch // args.batch_size)
        torch.manual_seed(args.seed)
        self.model = FingerprintNet.for_training(config)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.plan = {"epochs": args.epochs, "steps_per_epoch": self.steps_per_epoch,
                     "warmup_steps": args.warmup_epochs * self.steps_per_epoch}
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.state = {"epoch": 0, "best": None, "history": [], "finished": False, "stopped_early": False}

    def lr_factor(self, step: int) -> float:
        return lr_factor(step, self.plan["warmup_steps"], self.plan["epochs"] * self.plan["steps_per_epoch"])

    def describe(self) -> dict:
        return {
            "classes": self.classes, "preset": self.args.preset, "config": self.config.to_dict(),
            "augmentation": asdict(self.augment_config), "seed": self.args.seed,
            "held_out": self.split.held_out, "held_out_unit": self.split.unit,
            "train_counts": {c: int((self.train_labels == k).sum()) for k, c in enumerate(self.classes)},
            "val_counts": {c: int((self.val_labels == k).sum()) for k, c in enumerate(self.classes)},
            "open_set_counts": {c: sum(s.label == c for s in self.open_samples) for c in self.args.open_set_classes},
            "bad_files": self.bad_files,
            "settings": {key: (str(value) if isinstance(value, Path) else value)
                         for key, value in vars(self.args).items() if key not in ("resume", "force")},
        }

    def save_checkpoint(self) -> None:
        """Weights as safetensors; optimiser/scheduler via torch.save (our own file, read with weights_only)."""
        _atomic_model_save(self.model, self.out / "last.safetensors", {"epoch": self.state["epoch"]})
        temp = self.out / "state.pt.tmp"
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, temp)
        os.replace(temp, self.out / "state.pt")
        _write_json(self.out / "state.json", {**self.state, "plan": self.plan, "run": self.describe()})

    def load_checkpoint(self) -> None:
        saved = json.loads((self.out / "state.json").read_text(encoding="utf-8"))
        if (saved["run"]["held_out"] != self.split.held_out or saved["run"]["config"] != self.config.to_dict()
                or saved["plan"]["steps_per_epoch"] != self.steps_per_epoch):
            raise SystemExit(f"{self.out}: the saved run used another split, config or epoch size; "
                             "repeat its arguments, or use --force to start over")
        from safetensors.torch import load_file

        load_checked(self.model, load_file(str(self.out / "last.safetensors")), str(self.out / "last.safetensors"))
        optimiser_state = torch.load(self.out / "state.pt", weights_only=True)
        self.optimizer.load_state_dict(optimiser_state["optimizer"])
        self.plan = saved["plan"]
        self.scheduler.load_state_dict(optimiser_state["scheduler"])
        self.state = {key: saved[key] for key in self.state}
        LOG.info("resumed %s after epoch %d of %d", self.out, self.state["epoch"], self.plan["epochs"])

    def train_epoch(self, epoch: int) -> dict:
        rng = np.random.default_rng([self.args.seed, epoch])
        torch.manual_seed(self.args.seed * 100_003 + epoch)
        self.model.train()
        order = balanced_indices(self.train_labels, self.steps_per_epoch * self.args.batch_size, rng)
        losses, correct = [], 0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch}/{self.plan['epochs']}", mininterval=10)
        for step in bar:
            batch = order[step * self.args.batch_size:(step + 1) * self.args.batch_size]
            crops = [augment(self.train_images[i], self.config.crop_size, rng, self.augment_config) for i in batch]
            labels = torch.from_numpy(self.train_labels[batch])
            logits = self.model(to_tensor(crops))
            loss = F.cross_entropy(logits, labels, label_smoothing=self.args.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == labels).sum())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
        return {"train_loss": float(np.mean(losses)), "train_accuracy": correct / len(order),
                "lr": self.scheduler.get_last_lr()[0]}

    def validate(self, images: list[np.ndarray] | None = None) -> tuple[dict, np.ndarray]:
        probabilities = self.model.predict_proba(images if images is not None else self.val_images)
        return metrics(self.val_labels, probabilities, self.classes), probabilities

    def run(self) -> dict:
        started = time.monotonic()
        budget = self.args.time_budget_min * 60.0
        first_epoch = self.state["epoch"] + 1
        self.state["stopped_early"] = False
        while self.state["epoch"] < self.plan["epochs"]:
            epoch = self.state["epoch"] + 1
            epoch_start = time.monotonic()
            row = {"epoch": epoch, **self.train_epoch(epoch)}
            val_start = time.monotonic()
            val, _ = self.validate()
            final_evaluation = self.final_evaluation_seconds(time.monotonic() - val_start)
            row.update({f"val_{key}": value for key, value in val.items() if not isinstance(value, dict)})
            row.update({f"val_recall_{name}": value for name, value in val["recall"].items()})
            row["seconds"] = time.monotonic() - epoch_start
            self.state["epoch"] = epoch
            self.state["history"].append(row)
            best = self.state["best"]
            key = self.args.select_on
            if best is None or (val.get(key) or 0.0, -val["loss"]) > (best.get(key) or 0.0, -best["loss"]):
                self.state["best"] = {"epoch": epoch, "balanced_accuracy": val["balanced_accuracy"],
                                      "real_vs_fake_auc": val.get("real_vs_fake_auc"), "loss": val["loss"]}
                _atomic_model_save(self.model, self.out / "best.safetensors", {"epoch": epoch, "validation": val})
            if epoch == 1 and budget:
                self.fit_plan_to_budget(budget, time.monotonic() - started, row["seconds"], final_evaluation)
            self.save_checkpoint()
            _write_epochs_csv(self.out / "epochs.csv", self.state["history"])
            LOG.info("epoch %d: train loss %.3f, val balanced acc %.3f, real-vs-fake AUC %s, %.0f s", epoch,
                     row["train_loss"], val["balanced_accuracy"], _fmt(val.get("real_vs_fake_auc")), row["seconds"])
            if self.state["epoch"] >= self.plan["epochs"]:
                break
            spent = time.monotonic() - started
            if budget and spent + row["seconds"] + final_evaluation > budget:
                LOG.warning("time budget reached after epoch %d; continue with --resume", epoch)
                self.state["stopped_early"] = True
                break
            if self.args.stop_after and epoch - first_epoch + 1 >= self.args.stop_after:
                LOG.info("stopping after %d epoch(s) as asked; continue with --resume", self.args.stop_after)
                self.state["stopped_early"] = True
                break
        return self.finish()

    def final_evaluation_seconds(self, val_seconds: float) -> float:
        """Expected cost of `finish`: the robustness conditions, the open set and one more clean pass."""
        return val_seconds * (len(ROBUSTNESS) + 1 + len(self.open_images) / max(1, len(self.val_images)))

    def fit_plan_to_budget(self, budget: float, spent: float, epoch_seconds: float, final_evaluation: float) -> None:
        """Shorten the cosine schedule once, after epoch 1 (still in warm-up), so it ends inside the budget."""
        affordable = 1 + int((budget - spent - final_evaluation) // epoch_seconds)
        if affordable < self.plan["epochs"]:
            LOG.info("epoch takes %.0f s: planning %d epochs instead of %d to fit %.0f min", epoch_seconds,
                     max(affordable, 1), self.plan["epochs"], budget / 60)
            self.plan["epochs"] = max(affordable, 1)

    def finish(self) -> dict:
        """Evaluate the best checkpoint: confusion matrix, ROC/PR, robustness, open set; write the report."""
        from safetensors.torch import load_file

        best_path = self.out / "best.safetensors"
        load_checked(self.model, load_file(str(best_path)), str(best_path))
        val, probabilities = self.validate()
        report = {"run": self.describe(), "best_epoch": self.state["best"]["epoch"], "validation": val,
                  "epochs_trained": self.state["epoch"], "planned_epochs": self.plan["epochs"],
                  "stopped_early": self.state["stopped_early"]}
        report["confusion_matrix"] = write_confusion(self.out, self.val_labels, probabilities, self.classes)
        report["roc_pr"] = write_roc_pr(self.out, self.val_labels, probabilities, self.classes)
        report["robustness"] = self.robustness(val)
        report["open_set"] = self.open_set(probabilities)
        write_curves(self.out / "curves.png", self.state["history"])
        finished = not self.state["stopped_early"]
        report["finished"] = finished
        _write_json(self.out / "summary.json", report)
        (self.out / "report.md").write_text(render_report(report), encoding="utf-8")
        self.state["finished"] = finished
        _write_json(self.out / "state.json", {**self.state, "plan": self.plan, "run": self.describe()})
        return report

    def robustness(self, clean: dict) -> list[dict]:
        rows = []
        for name, change in tqdm(ROBUSTNESS, desc="robustness", mininterval=10):
            if change is None:
                result = clean
            else:
                kind, value = change
                images = [jpeg_reencode(im, value) if kind == "jpeg" else downscale(im, value)
                          for im in self.val_images]
                result, _ = self.validate(images)
            rows.append({"condition": name, "accuracy": result["accuracy"],
                         "balanced_accuracy": result["balanced_accuracy"],
                         "real_vs_fake_auc": result.get("real_vs_fake_auc"), "recall": result["recall"]})
        with open(self.out / "robustness.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["condition", "accuracy", "balanced_accuracy", "real_vs_fake_auc"] +
                            [f"recall_{c}" for c in self.classes])
            for row in rows:
                writer.writerow([row["condition"], _fmt(row["accuracy"]), _fmt(row["balanced_accuracy"]),
                                 _fmt(row["real_vs_fake_auc"])] + [_fmt(row["recall"][c]) for c in self.classes])
        return rows

    def open_set(self, known_probabilities: np.ndarray) -> dict:
        """What the model says about generators it never saw, next to its confidence on known validation images."""
        result = {"known_validation_max_prob_median": float(np.median(known_probabilities.max(axis=1)))}
        if not self.open_images:
            return result
        probabilities = self.model.predict_proba(self.open_images)
        real = self.classes.index("real")
        for label in self.args.open_set_classes:
            rows = [i for i, s in enumerate(self.open_samples) if s.label == label]
            if not rows:
                continue
            chosen = probabilities[rows]
            predicted = chosen.argmax(axis=1)
            result[label] = {
                "n": len(rows),
                "predicted": {c: int((predicted == k).sum()) for k, c in enumerate(self.classes)},
                "called_fake": float((1.0 - chosen[:, real] >= 0.5).mean()),
                "max_prob_median": float(np.median(chosen.max(axis=1))),
                "max_prob_quartiles": [float(q) for q in np.percentile(chosen.max(axis=1), [25, 75])],
            }
        return result


def render_report(report: dict) -> str:
    """The run's numbers as Markdown tables, ready to paste into a model card."""
    run, classes = report["run"], report["run"]["classes"]
    matrix = np.asarray(report["confusion_matrix"])
    lines = ["## Split (validation holds out whole sources per class)", "",
             "| class | train | validation | held out | unit |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {run['train_counts'][c]} | {run['val_counts'][c]} | {', '.join(run['held_out'][c])} | "
              f"{run['held_out_unit'][c]} |" for c in classes]
    lines += ["", f"## Validation (best epoch {report['best_epoch']} of {report['epochs_trained']})", "",
              "| class | n | recall | precision |", "|---|---|---|---|"]
    for k, name in enumerate(classes):
        called = matrix[:, k].sum()
        precision = _fmt(matrix[k, k] / called) if called else "n/a"
        lines.append(f"| {name} | {matrix[k].sum()} | {_fmt(report['validation']['recall'][name])} | {precision} |")
    lines += ["", "Confusion matrix (rows true, columns predicted): " + ", ".join(classes), ""]
    lines += ["    " + " ".join(f"{value:4d}" for value in row) for row in matrix]
    lines += ["", "## Robustness (validation images re-encoded / downscaled before the model sees them)", "",
              "| condition | accuracy | balanced accuracy | real-vs-fake AUC | " +
              " | ".join(f"recall {c}" for c in classes) + " |", "|---" * (4 + len(classes)) + "|"]
    lines += [f"| {row['condition']} | {_fmt(row['accuracy'])} | {_fmt(row['balanced_accuracy'])} | "
              f"{_fmt(row['real_vs_fake_auc'])} | " + " | ".join(_fmt(row["recall"][c]) for c in classes) + " |"
              for row in report["robustness"]]
    open_set = report["open_set"]
    lines += ["", "## Open set (generators never trained on)", "",
              f"Median max probability on known-class validation images: "
              f"{open_set['known_validation_max_prob_median']:.3f}", "",
              "| label | n | predicted " + " / ".join(classes) + " | called fake | median max prob | "
              "max prob IQR |", "|---|---|---|---|---|---|"]
    for label, row in open_set.items():
        if isinstance(row, dict):
            lines.append(f"| {label} | {row['n']} | " + " / ".join(str(row["predicted"][c]) for c in classes) +
                         f" | {row['called_fake']:.2f} | {row['max_prob_median']:.3f} | "
                         f"{row['max_prob_quartiles'][0]:.3f}–{row['max_prob_quartiles'][1]:.3f} |")
    return "\n".join(lines) + "\n"


def write_confusion(out: Path, labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> list[list[int]]:
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), labels=list(range(len(classes))))
    _write_json(out / "confusion_matrix.json", {"classes": classes, "rows_true_columns_predicted": matrix.tolist()})
    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        axis.text(col, row, str(value), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    axis.set_xticks(range(len(classes)), classes, rotation=30)
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("validation (held-out sources)")
    figure.tight_layout()
    figure.savefig(out / "confusion_matrix.png", dpi=120)
    plt.close(figure)
    return matrix.tolist()


def write_roc_pr(out: Path, labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    is_fake = (labels != classes.index("real")).astype(int)
    if is_fake.min() == is_fake.max():
        return {}
    score = 1.0 - probabilities[:, classes.index("real")]
    fpr, tpr, _ = roc_curve(is_fake, score)
    precision, recall, _ = precision_recall_curve(is_fake, score)
    auc, ap = roc_auc_score(is_fake, score), average_precision_score(is_fake, score)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    left.plot(fpr, tpr)
    left.plot([0, 1], [0, 1], ":", color="grey")
    left.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate",
             title=f"ROC real vs fake, AUC {auc:.3f}")
    right.plot(recall, precision)
    right.set(xlabel="recall (fake)", ylabel="precision (fake)", title=f"PR, AP {ap:.3f}")
    figure.tight_layout()
    figure.savefig(out / "roc_pr.png", dpi=120)
    plt.close(figure)
    result = {"auc": float(auc), "ap": float(ap)}
    _write_json(out / "roc_pr.json", result)
    return result


def write_curves(path: Path, history: list[dict]) -> None:
    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["train_loss"] for row in history], label="train loss (augmented)")
    left.plot(epochs, [row["val_loss"] for row in history], label="validation loss")
    left.set(xlabel="epoch", title="loss")
    left.legend()
    right.plot(epochs, [row["train_accuracy"] for row in history], label="train accuracy (augmented)")
    right.plot(epochs, [row["val_balanced_accuracy"] for row in history], label="validation balanced accuracy")
    right.plot(epochs, [row.get("val_real_vs_fake_auc") or np.nan for row in history], label="real-vs-fake AUC")
    right.set(xlabel="epoch", ylim=(0, 1.02), title="accuracy")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _atomic_model_save(model: FingerprintNet, path: Path, metadata: dict) -> None:
    temp = path.with_name(path.stem + ".tmp.safetensors")
    model.save(temp, metadata)
    os.replace(temp.with_suffix(".json"), path.with_suffix(".json"))
    os.replace(temp, path)


def _write_epochs_csv(path: Path, history: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in history for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def _write_json(path: Path, document: dict) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temp, path)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_output(args.out, folder=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    state_file = args.out / "state.json"
    if state_file.exists() and not args.force:
        finished = json.loads(state_file.read_text(encoding="utf-8")).get("finished")
        if finished:
            print(f"{args.out} holds a finished run; pass --force to overwrite it", file=sys.stderr)
            return 2
        if not args.resume:
            print(f"{args.out} holds an unfinished run; pass --resume to continue or --force to restart",
                  file=sys.stderr)
            return 2
    if args.resume and not state_file.exists():
        print(f"{args.out} has no checkpoint to resume from", file=sys.stderr)
        return 2
    for name in ("data", "csv", "provenance"):
        path = getattr(args, name)
        if path is not None and not path.exists():
            print(f"--{name} {path}: no such file or folder", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        trainer = Trainer(args)
    except ValueError as err:
        print(f"cannot train: {err}", file=sys.stderr)
        return 2
    if args.resume and not args.force:
        trainer.load_checkpoint()
    LOG.info("held out for validation: %s", json.dumps(trainer.split.held_out))
    report = trainer.run()
    LOG.info("best epoch %d: balanced accuracy %.3f, real-vs-fake AUC %s; report in %s", report["best_epoch"],
             report["validation"]["balanced_accuracy"], _fmt(report["validation"].get("real_vs_fake_auc")), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
