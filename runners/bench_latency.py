"""The latency stage: one face at batch 1 through every branch, as the app and the API analyse it, and each torch
model alone eager beside frozen TorchScript (and torch.compile when asked)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

import pipeline as P
from core.device import cpu_description
from runners.bench_pipeline import full_pipeline, pipeline_faces, random_svm
from runners.bench_settings import BenchSettings, call_seconds


def bench_latency(args: BenchSettings) -> Iterator[dict]:
    """One 1024² face through every branch at batch 1, as the app and the API analyse it: p50/p95 of `analyze_one`.

    For lanes 1 (one job at a time with every thread) and 2 (the face chain beside the image-level branches), after
    one untimed call, over max(repeats, 5) calls; weights as in the pipeline stage. Then each torch model alone at
    batch 1: eager beside frozen TorchScript (`torch.jit.freeze` + `optimize_for_inference`, which folds and
    pre-packs the weights once) and, with `compile`, `torch.compile` with inductor's freezing, each with its one-off
    warm-up cost.
    """
    import numpy as np

    sources, source = pipeline_faces(1)
    repeats = max(args.repeats, 5)
    with random_svm() as svm_path:
        for dtype in args.dtypes:
            for lanes in (1, 2):
                pipe = full_pipeline(args, svm_path, dtype=dtype, batch_size=1, lanes=lanes)
                pipe.analyze_one(sources[0])
                seconds, verdict = call_seconds(pipe.analyze_one, repeats, sources[0])
                yield {"stage": "latency", "dtype": pipe.precision.dtype_name, "lanes": lanes, "batch_size": 1,
                       "calls": repeats, "p50_ms": round(1000 * float(np.percentile(seconds, 50)), 1),
                       "p95_ms": round(1000 * float(np.percentile(seconds, 95)), 1),
                       "stage_ms": getattr(verdict, "timings_ms", None), "images": source,
                       "threads": torch.get_num_threads(), "cpu": cpu_description()[0]}
            yield from _eager_vs_frozen(pipe, sources[0], repeats, args.compile)
            del pipe


def _eager_vs_frozen(pipe: P.Pipeline, source: str | bytes, repeats: int, compile_models: bool) -> Iterator[dict]:
    """Batch-1 median ms of the pipeline's CLIP tower and e4e: eager, frozen TorchScript, and compiled if asked."""
    import numpy as np

    from core.images import load_image
    from core.timing import timed
    from encoder.e4e import preprocess

    pixels = load_image(source).pixels
    found = pipe.face_finder.find([pixels], ["face"])[0]
    face = found[0].image if isinstance(found, list) else np.ascontiguousarray(pixels[:256, :256])
    models = {}
    clip = getattr(pipe.branches["clip_probe"], "estimator", None)
    if clip is not None:
        models["clip_visual"] = (clip.visual, clip.visual_input(clip.preprocess([pixels])))
    encoder = getattr(pipe.branches["latent_svm"], "encoder", None)
    if encoder is not None:
        models["e4e"] = (encoder, encoder.network_input(preprocess([face])))
    for name, (model, inputs) in models.items():
        timings: dict[str, float | str | None] = {"freeze_warmup_s": None}
        candidates = [("eager", model)]
        with torch.inference_mode():
            if pipe.precision.quantized:
                # int8 layers take each activation's scale from its own range per call: a trace would freeze the
                # first input's scale into every later call
                timings["frozen"] = "not applicable to int8 layers"
            else:
                with timed() as freeze_watch:
                    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, inputs).eval()))
                    frozen(inputs)
                timings["freeze_warmup_s"] = round(freeze_watch.seconds, 1)
                candidates.append(("frozen", frozen))
            if compile_models:
                import torch._inductor.config as inductor

                inductor.freezing = True
                try:
                    with timed() as compile_watch:
                        compiled = torch.compile(model)
                        compiled(inputs)
                    timings["compile_warmup_s"] = round(compile_watch.seconds, 1)
                    candidates.append(("compiled", compiled))
                except Exception as err:  # noqa: BLE001 - a compiler failure is a measurement too
                    timings["compile_error"] = f"{type(err).__name__}: {str(err)[:160]}"
            for kind, run in candidates:
                run(inputs)
                seconds, _ = call_seconds(run, repeats, inputs)
                timings[f"{kind}_ms"] = round(1000 * float(np.median(seconds)), 1)
        yield {"stage": "latency_model", "model": name, "dtype": pipe.precision.dtype_name, "batch_size": 1,
               **timings, "threads": torch.get_num_threads(), "cpu": cpu_description()[0]}
