"""Train FingerprintNet on labelled face images and write a report that shows what it learned.

DATA is a folder of class subfolders, a CSV path,label[,group], or the development face set's provenance.csv
(groups = its `repo` column); see core.datasets. Validation holds out whole sources per class (chosen by --seed)
so it never shares a source with training; every class gets the same random downscale + JPEG re-encoding, crops
are taken at native resolution, and batches are class-balanced.

    python scripts/train_fingerprint.py ../shared/data/faces/provenance.csv \\
        --preset small --epochs 40 --time-budget-min 38 --out runs/fp-small

The output folder holds last/best checkpoints (safetensors + JSON), optimizer state (resume with --resume),
epochs.csv, curves.png, confusion matrix, ROC/PR, the robustness table, open-set behaviour and summary.json.

Exit status: 0 done; 2 bad input (no such data, a class without usable images, OUT holding another run without
--resume/--force, a resume with other settings); 3 stopped early by --stop-after or --time-budget-min (continue
with --resume).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from runners.cli import EXIT_OK, EXIT_STOPPED, add_runtime_arguments, apply_runtime, positive_int, run
from core.datasets import limit_per_class, read_dataset
from runners.preflight import require_output
from detector.fingerprint_training import PRESETS, SELECT_ON, Trainer, TrainSettings, prepare_output

LOG = logging.getLogger("train_fingerprint")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="folder of class subfolders, a CSV path,label[,group], or a "
                                                "provenance.csv")
    parser.add_argument("--classes", nargs="+", default=list(TrainSettings.classes))
    parser.add_argument("--open-set-classes", nargs="*", default=list(TrainSettings.open_set_classes),
                        help="labels never trained on; the report shows what the model calls them")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--no-frequency", action="store_true", help="drop the FFT path (for ablations)")
    parser.add_argument("--residual-only", action="store_true",
                        help="trunk sees only the high-pass residual, no RGB (keeps content/colour out)")
    parser.add_argument("--select-on", choices=SELECT_ON, default="balanced_accuracy",
                        help="validation number that picks the best epoch (ties: lower validation loss); "
                             "real_vs_fake_auc favours a model that tells real from fake over one that attributes")
    parser.add_argument("--epochs", type=positive_int, default=40)
    parser.add_argument("--time-budget-min", type=float, default=None,
                        help="wall-clock budget of this invocation (default: none); after epoch 1 the schedule is "
                             "shortened to fit")
    parser.add_argument("--stop-after", type=positive_int, default=None,
                        help="stop this invocation after N epochs, keeping the schedule (continue with --resume)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--samples-per-epoch", type=positive_int, default=None,
                        help="default: the number of training images")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--label-smoothing", type=float, default=0.05)
    parser.add_argument("--val-range", type=float, nargs=2, default=(0.1, 0.4),
                        help="allowed share of each class held out for validation")
    parser.add_argument("--limit-per-class", type=positive_int, default=None,
                        help="use at most N images per class, spread over sources (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    add_runtime_arguments(parser)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resume", action="store_true", help="continue from OUT's last checkpoint")
    parser.add_argument("--force", action="store_true", help="start over even if OUT holds a run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_output(args.out, folder=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    apply_runtime(args)
    prepare_output(args.out, args.resume, args.force)
    samples, _ = read_dataset(args.data, [*args.classes, *args.open_set_classes])
    if args.limit_per_class is not None:
        samples = limit_per_class(samples, args.limit_per_class, args.seed)
    settings = TrainSettings(
        out=args.out, classes=tuple(args.classes), open_set_classes=tuple(args.open_set_classes), preset=args.preset,
        no_frequency=args.no_frequency, residual_only=args.residual_only, select_on=args.select_on,
        epochs=args.epochs, time_budget_min=args.time_budget_min, stop_after=args.stop_after,
        batch_size=args.batch_size, samples_per_epoch=args.samples_per_epoch, lr=args.lr,
        weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        val_range=tuple(args.val_range), seed=args.seed, device=args.device, progress=not args.no_progress)
    trainer = Trainer(settings, samples)
    if args.resume and not args.force:
        trainer.load_checkpoint()
    LOG.info("held out for validation: %s", json.dumps(trainer.split.held_out))
    report = trainer.run()
    auc = report["validation"].get("real_vs_fake_auc")
    LOG.info("best epoch %d: balanced accuracy %.3f, real-vs-fake AUC %s; report in %s", report["best_epoch"],
             report["validation"]["balanced_accuracy"], "n/a" if auc is None else f"{auc:.3f}", args.out)
    return EXIT_OK if report["finished"] else EXIT_STOPPED
