"""Training FingerprintNet: a source-held-out run that resumes, fits a time budget and writes its own report.

scripts/train_fingerprint.py parses the command line, reads the data (core.datasets) and runs a `Trainer`;
everything a run does lives here so that it can be tested and reused without the script. The output folder holds last/best checkpoints (safetensors +
JSON), optimiser state, epochs.csv, curves.png, the confusion matrix, ROC/PR, the robustness table, open-set
behaviour, summary.json and report.md.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from detector.lr_schedule import lr_factor
from core.atomic import atomic_path, write_json_atomic, write_text_atomic
from core.augment import AugmentSettings
from core.datasets import LabelledImage
from core.device import select_precision
from core.errors import InputError
from core.metrics import classification_metrics, detection_metrics, plot_confusion_matrix, plot_roc_pr, plot_series
from detector.fingerprint_data import (augment, balanced_indices, decode_samples, downscale,
                                       jpeg_reencode, split_by_source)
from detector.fingerprint_net import MIN_SIDE, FingerprintConfig, FingerprintNet, to_tensor

LOG = logging.getLogger(__name__)
PRESETS = {"full": FingerprintConfig.full, "small": FingerprintConfig.small, "tiny": FingerprintConfig.tiny}
ROBUSTNESS = (("clean", None), ("jpeg_q90", ("jpeg", 90)), ("jpeg_q75", ("jpeg", 75)), ("jpeg_q50", ("jpeg", 50)),
              ("downscale_0.75", ("scale", 0.75)), ("downscale_0.5", ("scale", 0.5)))
SELECT_ON = ("balanced_accuracy", "real_vs_fake_auc")


@dataclass
class TrainSettings:
    """Everything that shapes a run; recorded in its state so a resume with other settings is refused.

    None means "no limit" (time_budget_min, stop_after) or "the natural size" (samples_per_epoch: the number of
    training images).
    """

    out: Path
    classes: tuple[str, ...] = ("real", "progan", "stylegan2", "stylegan3")
    open_set_classes: tuple[str, ...] = ("other_gan", "diffusion")
    preset: str = "small"
    no_frequency: bool = False
    residual_only: bool = False
    select_on: str = "balanced_accuracy"
    epochs: int = 40
    time_budget_min: float | None = None
    stop_after: int | None = None
    batch_size: int = 32
    samples_per_epoch: int | None = None
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    label_smoothing: float = 0.05
    val_range: tuple[float, float] = (0.1, 0.4)
    seed: int = 0
    device: str = "auto"
    progress: bool = True


def prepare_output(out: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run by accident: a finished one needs --force, an unfinished one --resume or --force."""
    state_file = Path(out) / "state.json"
    if state_file.exists() and not force:
        if json.loads(state_file.read_text(encoding="utf-8")).get("finished"):
            raise InputError(f"{out} holds a finished run; pass --force to overwrite it")
        if not resume:
            raise InputError(f"{out} holds an unfinished run; pass --resume to continue or --force to restart")
    if resume and not state_file.exists():
        raise InputError(f"{out} has no checkpoint to resume from")
    Path(out).mkdir(parents=True, exist_ok=True)


def metrics(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    """Validation numbers: loss, accuracy, balanced accuracy and recall over the classes; real-vs-fake accuracy,
    ROC AUC and AP with the fake score 1 − P(real). Built on core.metrics so they match every other report."""
    names = np.asarray(classes)[labels]
    table = classification_metrics(names, probabilities, classes)
    real = classes.index("real")
    is_fake = labels != real
    fake_score = 1.0 - probabilities[:, real]
    detection = detection_metrics(is_fake, fake_score)
    picked = probabilities[np.arange(len(labels)), labels]
    result = {
        "n": table["n"],
        "loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
        "accuracy": table["accuracy"],
        "balanced_accuracy": table["balanced_accuracy"],
        "recall": {name: row["recall"] if row["support"] else None for name, row in table["per_class"].items()},
        "precision": {name: row["precision"] for name, row in table["per_class"].items()},
        "real_vs_fake_accuracy": float(((fake_score >= 0.5) == is_fake).mean()),
    }
    if detection["roc_auc"] is not None:
        result["real_vs_fake_auc"] = detection["roc_auc"]
        result["real_vs_fake_ap"] = detection["average_precision"]
    return result


class Trainer:
    """One training run: the split, the cached images, the model, its optimiser and the report folder."""

    def __init__(self, args: TrainSettings, samples: list[LabelledImage]):
        self.args = args
        self.out: Path = Path(args.out)
        self.classes = list(args.classes)
        config = PRESETS[args.preset]()
        config = replace(config, classes=tuple(self.classes), **({"freq_dim": 0} if args.no_frequency else {}),
                         **({"rgb_input": False, "high_pass_input": True} if args.residual_only else {}))
        self.config = config
        self.augment_config = AugmentSettings.fingerprint()
        known = [s for s in samples if s.label in self.classes]
        self.split = split_by_source(known, self.classes, args.seed, tuple(args.val_range))
        open_set = [s for s in samples if s.label in args.open_set_classes]
        self.train_samples, self.train_images, bad_train = decode_samples(self.split.train, config.crop_size,
                                                                          "decoding train", args.progress)
        self.val_samples, self.val_images, bad_val = decode_samples(self.split.val, 64, "decoding validation",
                                                                    args.progress)
        self.open_samples, self.open_images, bad_open = decode_samples(open_set, 64, "decoding open-set",
                                                                       args.progress)
        self.bad_files = bad_train + bad_val + bad_open
        self.train_labels = np.array([self.classes.index(s.label) for s in self.train_samples])
        self.val_labels = np.array([self.classes.index(s.label) for s in self.val_samples])
        for k, name in enumerate(self.classes):
            if not (self.train_labels == k).any() or not (self.val_labels == k).any():
                raise InputError(f"class {name!r} has no usable training or validation images after decoding")
        self.samples_per_epoch = args.samples_per_epoch or len(self.train_samples)
        self.steps_per_epoch = max(1, self.samples_per_epoch // args.batch_size)
        torch.manual_seed(args.seed)
        self.device = select_precision(args.device, "fp32").device
        self.model = FingerprintNet.for_training(config).to(self.device)
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
                         for key, value in asdict(self.args).items() if key != "progress"},
        }

    def save_checkpoint(self) -> None:
        """Weights as safetensors; optimiser/scheduler via torch.save (our own file, read with weights_only)."""
        self.model.save(self.out / "last.safetensors", {"epoch": self.state["epoch"]})
        with atomic_path(self.out / "state.pt") as temp:
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}, temp)
        write_json_atomic(self.out / "state.json", {**self.state, "plan": self.plan, "run": self.describe()})

    def load_checkpoint(self) -> None:
        saved = json.loads((self.out / "state.json").read_text(encoding="utf-8"))
        if (saved["run"]["held_out"] != self.split.held_out or saved["run"]["config"] != self.config.to_dict()
                or saved["plan"]["steps_per_epoch"] != self.steps_per_epoch):
            raise InputError(f"{self.out}: the saved run used another split, config or epoch size; "
                             "repeat its arguments, or use --force to start over")
        self.model.load_weights(self.out / "last.safetensors")
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
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch}/{self.plan['epochs']}", mininterval=10,
                   disable=not self.args.progress)
        for step in bar:
            batch = order[step * self.args.batch_size:(step + 1) * self.args.batch_size]
            crops = [augment(self.train_images[i], self.config.crop_size, rng, self.augment_config) for i in batch]
            labels = torch.from_numpy(self.train_labels[batch]).to(self.device)
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

    def validate(self, images: list[np.ndarray] | None = None,
                 labels: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
        """Metrics on the validation images (or on changed copies of them, with their labels)."""
        probabilities = self.model.predict_proba(images if images is not None else self.val_images)
        return metrics(self.val_labels if labels is None else labels, probabilities, self.classes), probabilities

    def run(self) -> dict:
        started = time.monotonic()
        budget = (self.args.time_budget_min or 0.0) * 60.0
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
                self.model.save(self.out / "best.safetensors", {"epoch": epoch, "validation": val})
            if epoch == 1 and budget:
                self.fit_plan_to_budget(budget, time.monotonic() - started, row["seconds"], final_evaluation)
            self.save_checkpoint()
            write_csv(self.out / "epochs.csv", self.state["history"])
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
        self.model.load_weights(self.out / "best.safetensors")
        val, probabilities = self.validate()
        report = {"run": self.describe(), "best_epoch": self.state["best"]["epoch"], "validation": val,
                  "epochs_trained": self.state["epoch"], "planned_epochs": self.plan["epochs"],
                  "stopped_early": self.state["stopped_early"]}
        report["confusion_matrix"] = self.write_confusion(probabilities)
        real = self.classes.index("real")
        scored = {"FingerprintNet": (self.val_labels != real, 1.0 - probabilities[:, real])}
        report["roc_pr"] = plot_roc_pr(scored, self.out / "roc_pr.png").get("FingerprintNet", {})
        report["robustness"] = self.robustness(val)
        report["open_set"] = self.open_set(probabilities)
        write_curves(self.out / "curves.png", self.state["history"])
        finished = not self.state["stopped_early"]
        report["finished"] = finished
        write_json_atomic(self.out / "summary.json", report)
        write_text_atomic(self.out / "report.md", render_report(report))
        self.state["finished"] = finished
        write_json_atomic(self.out / "state.json", {**self.state, "plan": self.plan, "run": self.describe()})
        return report

    def robustness(self, clean: dict) -> list[dict]:
        """Validation metrics after JPEG re-encoding or downscaling, the changes an uploaded image goes through.

        A downscaled image under FingerprintNet's minimum side is left out of that condition (the model cannot
        read it); `n` says how many were measured, and a condition with none left has no numbers.
        """
        rows = []
        for name, change in tqdm(ROBUSTNESS, desc="robustness", mininterval=10, disable=not self.args.progress):
            result = clean
            if change is not None:
                kind, value = change
                images = [jpeg_reencode(im, value) if kind == "jpeg" else downscale(im, value)
                          for im in self.val_images]
                kept = [i for i, image in enumerate(images) if min(image.shape[:2]) >= MIN_SIDE]
                result = self.validate([images[i] for i in kept], self.val_labels[kept])[0] if kept else {
                    "n": 0, "accuracy": None, "balanced_accuracy": None, "recall": dict.fromkeys(self.classes)}
            rows.append({"condition": name, "n": result["n"], "accuracy": result["accuracy"],
                         "balanced_accuracy": result["balanced_accuracy"],
                         "real_vs_fake_auc": result.get("real_vs_fake_auc"), "recall": result["recall"]})
        table = [{"condition": row["condition"], "n": row["n"], "accuracy": _fmt(row["accuracy"]),
                  "balanced_accuracy": _fmt(row["balanced_accuracy"]),
                  "real_vs_fake_auc": _fmt(row["real_vs_fake_auc"]),
                  **{f"recall_{c}": _fmt(row["recall"][c]) for c in self.classes}} for row in rows]
        write_csv(self.out / "robustness.csv", table)
        return rows

    def write_confusion(self, probabilities: np.ndarray) -> list[list[int]]:
        """The validation confusion matrix as JSON and PNG (rows true, columns predicted)."""
        matrix = classification_metrics(np.asarray(self.classes)[self.val_labels], probabilities,
                                        self.classes)["confusion_matrix"]["matrix"]
        write_json_atomic(self.out / "confusion_matrix.json",
                          {"classes": self.classes, "rows_true_columns_predicted": matrix})
        plot_confusion_matrix(matrix, self.classes, self.out / "confusion_matrix.png",
                              title="validation (held-out sources)")
        return matrix

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


def write_curves(path: Path, history: list[dict]) -> None:
    """Loss and accuracy per epoch, train (augmented) beside validation."""
    epochs = [row["epoch"] for row in history]
    panels = {
        "loss": {"train loss (augmented)": [row["train_loss"] for row in history],
                 "validation loss": [row["val_loss"] for row in history]},
        "accuracy": {"train accuracy (augmented)": [row["train_accuracy"] for row in history],
                     "validation balanced accuracy": [row["val_balanced_accuracy"] for row in history],
                     "real-vs-fake AUC": [row.get("val_real_vs_fake_auc") for row in history]},
    }
    plot_series(panels, epochs, path, x_label="epoch", y_limits={"accuracy": (0, 1.02)})


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows as CSV with the union of their keys as columns, written atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as temp, open(temp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
