"""Wiring and deciding: run the registered branches on a batch and turn their evidence into `Verdict`s.

What lives here: `Pipeline` (loads the branches lazily, batches, isolates failures, shares the cores out in lanes),
the branch wrappers and their registration (`branches`), the per-image record (`image_record`), evidence fusion
(`fusion`), the result (`verdict`), the words every output uses for it (`wording`), lanes and branch status. It
may import the three stages (`detector`, `encoder`, `attribution`) and `core`, never the runners, the outputs, `app.py` or `scripts/`; callers import the few names below.
"""

from pipeline.pipeline import (CSV_COLUMNS, IMAGE_SUFFIXES, LABELS, PROBABILITY_LABELS, RANDOM_WEIGHTS, SCHEMA_VERSION,
                               BranchStatus, EvidencePictures, Failure, FusionConfig, Pipeline, PipelineConfig, Result,
                               Verdict, write_csv)

__all__ = ["CSV_COLUMNS", "IMAGE_SUFFIXES", "LABELS", "PROBABILITY_LABELS", "RANDOM_WEIGHTS", "SCHEMA_VERSION",
           "BranchStatus", "EvidencePictures", "Failure", "FusionConfig", "Pipeline", "PipelineConfig", "Result",
           "Verdict", "write_csv"]
