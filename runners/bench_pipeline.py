"""The pipeline benchmark stage: file → every branch → Verdict, beside the core-time bound of its stages alone.

Also the pieces the latency stage shares with it: the 1024² inputs, a random latent SVM and the pipeline with
every branch loaded (random CLIP / e4e weights where the real ones are absent).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

import pipeline as P
from core.device import cpu_description
from core.timing import peak_memory_mb
from runners.bench_settings import FACES, BenchSettings, face_images


def pipeline_faces(count: int) -> tuple[list[str | bytes], str]:
    """`count` 1024² faces (StyleGAN2 and real, half each) from the face set, or seeded noise PNGs without it."""
    import io

    import numpy as np
    from PIL import Image

    paths: list[Path] = []
    for cls in ("stylegan2", "real"):
        sized = [p for p in face_images(cls) if Image.open(p).size == (1024, 1024)]  # reads the header only
        paths += sized[:(count + 1) // 2]
    if len(paths) >= count:
        return [str(p) for p in paths[:count]], f"{count} 1024² faces (StyleGAN2 and real) from {FACES}"
    rng = np.random.default_rng(0)
    sources: list[str | bytes] = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(buffer, format="PNG")
        sources.append(buffer.getvalue())
    return sources, "seeded 1024² noise (no face: the latent branch is skipped; the face set was not found)"


RANDOM_SVM = "random fit on noise W+ latents"


@contextmanager
def random_svm() -> Iterator[Path]:
    """A latent SVM fitted on random W+ latents, in a temporary folder for the block (speed does not depend on its
    values; the records call it RANDOM_SVM)."""
    import tempfile

    import numpy as np

    from attribution.latent_svm import LatentAttributor

    rng = np.random.default_rng(0)
    labels = np.repeat(["progan", "stylegan2", "stylegan3"], 12)
    latents = rng.normal(size=(len(labels), 18, 512)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="gantrace-bench-") as temp:
        path = Path(temp) / "random-svm.joblib"
        LatentAttributor(calibration_folds=2).fit(latents, labels, np.arange(len(labels))).save(path)
        yield path


def full_pipeline(args: BenchSettings, svm_path: Path, **config: object) -> P.Pipeline:
    """Every branch loaded: random CLIP/e4e weights where the real ones are absent, the given SVM."""
    options = {**args.pipeline.branch_options, "latent_svm": {"artifact": str(svm_path)}}
    pipe = P.Pipeline(replace(args.pipeline, device=args.device, random_weights_ok=True, download=False,
                              branch_options=options, **config))
    pipe.load_all()
    return pipe


def stage_alone_ms(pipe: P.Pipeline, sources: Sequence[str | bytes], threads: int
                   ) -> tuple[dict[str, float], dict[str, int]]:
    """Each stage of `pipe` alone on the same images, ms per image, with the torch threads it has in the pipeline.

    Loading and alignment are single-threaded; each branch runs with `threads` (its lane's share), so
    `alone_ms × threads` is the core-time a stage needs and in-pipeline / alone is what sharing costs it.
    """
    from core.device import torch_threads
    from core.images import load_image
    from core.timing import timed
    from pipeline.branch import SourceFile

    alone, used = {}, {}
    with timed() as watch:
        images = [load_image(source) for source in sources]
    alone["load"], used["load"] = 1000 * watch.seconds / len(images), 1
    pixels = [image.pixels for image in images]
    with timed() as watch:
        found = pipe.face_finder.find(pixels, [f"image {index}" for index in range(len(pixels))])
    alone["align"], used["align"] = 1000 * watch.seconds / len(images), 1
    faces = [face for out in found if isinstance(out, list) for face in out[:pipe.config.max_faces]]
    ready = {status.branch for status in pipe.status() if status.ready}
    by_level = {"image": pixels, "face": faces,
                "file": [SourceFile(f"image {index}", source) for index, source in enumerate(sources)]}
    with torch_threads(threads):
        for name, branch in pipe.branches.items():
            inputs = by_level[branch.level]
            if inputs and name in ready:
                with timed() as watch:
                    branch.run(inputs)
                alone[name], used[name] = 1000 * watch.seconds / len(images), threads
    return {stage: round(ms, 1) for stage, ms in alone.items()}, used


def measure_pipeline(pipe: P.Pipeline, batch: Sequence[str | bytes], repeats: int) -> tuple[dict, list[P.Verdict]]:
    """Images/s of `pipe` on `batch` beside the core-time bound, and each stage in the pipeline and alone.

    One untimed call first (oneDNN builds kernels per shape, and the pipeline learns which jobs are long); then
    `repeats` timed calls; then `stage_alone_ms` on the same images. Returns the figures and the verdicts.
    """
    import time

    import numpy as np

    from core.timing import timed

    cores = torch.get_num_threads()
    lanes = pipe.config.lanes
    pipe.analyze(batch)
    results = []
    cpu_start = time.process_time()
    with timed() as watch:
        for _ in range(repeats):
            results += pipe.analyze(batch)
    cpu_seconds = time.process_time() - cpu_start
    alone, stage_threads = stage_alone_ms(pipe, batch, max(cores // lanes, 1))
    verdicts = [v for v in results if isinstance(v, P.Verdict)]
    stages = [stage for stage in verdicts[0].timings_ms if stage != "total"] if verdicts else []
    in_pipeline = {stage: round(float(np.mean([v.timings_ms.get(stage, 0.0) for v in verdicts])), 1)
                   for stage in stages}
    images_per_s = len(results) / watch.seconds
    bound = 1000 * cores / sum(ms * stage_threads[stage] for stage, ms in alone.items())
    return {"images_per_s": round(images_per_s, 3), "bound_images_per_s": round(bound, 3),
            "of_bound": round(images_per_s / bound, 3), "in_pipeline_ms": in_pipeline, "alone_ms": alone,
            "slowdown": {stage: round(in_pipeline[stage] / ms, 2) for stage, ms in alone.items()
                         if in_pipeline.get(stage) and ms > 0},
            "stage_threads": stage_threads, "lanes": lanes, "cores": cores,
            "seconds_per_image": round(watch.seconds / len(results), 3),
            "cpu_seconds_per_image": round(cpu_seconds / len(results), 3),
            "branches_run": sorted({b for v in verdicts for b, e in v.evidence.items()
                                    if e["probabilities"] is not None}),
            "faces_found": f"{sum(bool(v.faces) for v in verdicts)}/{len(verdicts)}",
            "failures": len(results) - len(verdicts)}, verdicts


def bench_pipeline(args: BenchSettings) -> Iterator[dict]:
    """End to end: file → every branch → Verdict on 1024² faces: images/s beside the core-time bound, per stage.

    Inputs come from `pipeline_faces` (noise without the face set: then the latent branch is skipped and the
    record says so). Missing CLIP / e4e weights are replaced by random full-size weights, a missing latent SVM by
    one fitted on random W+ (speed does not depend on their values); `weights` says which is which. After one
    untimed batch (oneDNN builds kernels per shape, and the pipeline learns which jobs are long):
    * `in_pipeline_ms`: each stage's ms per image inside the pipeline (its share of its part's stage time);
    * `alone_ms`: the same stage alone on the same images in the same process, with the threads it has in the
      pipeline (`stage_threads`), measured right after the pipeline runs;
    * `bound_images_per_s`: cores / Σ(alone_ms × stage_threads), what perfect packing of the stages would give.
    CPU seconds are reported beside wall seconds: on a shared machine the wall clock also measures the others.
    """
    from core.timing import timed

    largest = max(args.batch_sizes)
    sources, source = pipeline_faces(largest)
    with random_svm() as svm_path:
        for dtype in args.dtypes:
            with timed() as load_watch:
                pipe = full_pipeline(args, svm_path, dtype=dtype, batch_size=largest)
            for batch_size in args.batch_sizes:
                pipe.config.batch_size = batch_size
                record, verdicts = measure_pipeline(pipe, sources[:batch_size], args.repeats)
                statuses = {status.branch: status for status in pipe.status()}  # the face finder has loaded now
                models = verdicts[0].models if verdicts else {}
                weights = {branch: ("off: " + (s.reason or "")[:120]) if not s.ready else "real" for branch, s in
                           statuses.items()}
                weights.update({name: value for name, value in models.items() if value == P.RANDOM_WEIGHTS})
                if statuses["latent_svm"].ready:
                    weights["latent_svm"] = RANDOM_SVM
                yield {"stage": "pipeline", "dtype": pipe.precision.dtype_name, "batch_size": batch_size, **record,
                       "load_seconds": round(load_watch.seconds, 1), "peak_mem_mb": round(peak_memory_mb(), 1),
                       "weights": weights, "images": source, "cpu": cpu_description()[0]}
            del pipe
