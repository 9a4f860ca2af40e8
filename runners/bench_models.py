"""Speed (and bf16-vs-fp32 agreement) of each GANTrace stage on this machine, one JSON-able record per measurement.

scripts/benchmark.py parses the command line and prints what `STAGES[name](settings)` yields. Each stage uses real
weights when they are already on disk (a benchmark never downloads) and seeded random full-size weights otherwise,
the same in every dtype, so the bf16-vs-fp32 comparison is like for like; the record says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import pipeline as P
from core.device import cpu_description, cpu_supports_bf16
from core.images import list_images
from core.timing import matmul_tflops, peak_memory_mb

FACES = Path(__file__).resolve().parent.parent / "shared" / "data" / "faces"


@dataclass(frozen=True)
class BenchSettings:
    """What to measure: the device, the dtypes and batch sizes to sweep, timed repeats, and the pipeline's config."""

    device: str = "auto"
    dtypes: Sequence[str] = ("fp32", "bf16")
    batch_sizes: Sequence[int] = (1, 8)
    repeats: int = 2
    pipeline: P.PipelineConfig = field(default_factory=P.PipelineConfig)
    backend: str = "local"
    ray_actors: int = 2
    images: int = 40
    compile: bool = False


def face_images(cls: str) -> list[Path]:
    """Images of one class of the development face set beside the repository, [] when it is absent."""
    folder = FACES / cls
    return list_images(folder) if folder.is_dir() else []


STAGES: dict[str, Callable[[BenchSettings], Iterator[dict]]] = {}


def machine_record() -> dict:
    """The reference ceiling: this machine's own matmul rate in each dtype."""
    model, flags = cpu_description()
    return {
        "stage": "machine",
        "cpu": model,
        "cpu_flags": list(flags),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "matmul_tflops_fp32": round(matmul_tflops(torch.float32), 3),
        # Emulated bf16 (a CPU without AMX / AVX512-BF16) takes minutes for this matmul and measures nothing useful.
        "matmul_tflops_bf16": round(matmul_tflops(torch.bfloat16), 3) if cpu_supports_bf16() else None,
        "peak_mem_mb": round(peak_memory_mb(), 1),
    }


def bench_detector(args: BenchSettings) -> Iterator[dict]:
    """CLIP ViT-L/14 visual tower + probe on fixed 224² inputs: images/s per dtype and batch, and bf16's drift.

    Real weights are used only when already on disk (a benchmark never downloads 1.7 GB); otherwise the same
    seeded random weights in every dtype, so the bf16-vs-fp32 comparison is still like for like.
    """
    import gc

    from torch.nn.functional import cosine_similarity

    from core.device import select_precision
    from core.timing import timed
    from core.weights import weight_status
    from detector.clip_probe import CLIP_WEIGHTS, PROBE_WEIGHTS, ClipProbe

    real = all(weight_status(name) == "present" for name in (CLIP_WEIGHTS, PROBE_WEIGHTS))
    inputs = torch.randn(max(args.batch_sizes), 3, 224, 224, generator=torch.Generator().manual_seed(0))
    largest = max(args.batch_sizes)
    warm_up: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for dtype in args.dtypes:
        precision = select_precision(args.device, dtype)
        model = ClipProbe.from_registry(precision=precision) if real else ClipProbe.random_init(precision=precision)
        # int8 layers keep their weights in packed buffers that parameters() does not list
        weights_mb = None if precision.quantized else sum(p.numel() * p.element_size()
                                                          for p in model.parameters()) / 2**20
        for batch_size in args.batch_sizes:
            batch = inputs[:batch_size]
            with torch.inference_mode():
                features = model.embed(batch)
                logits = model.head(features)
                with timed() as watch:
                    for _ in range(args.repeats):
                        model(batch)
            record = {"stage": "detector", "dtype": dtype, "batch_size": batch_size,
                      "images_per_s": round(batch_size * args.repeats / watch.seconds, 3),
                      "ms_per_image": round(1000 * watch.seconds / (batch_size * args.repeats), 1),
                      "peak_mem_mb": round(peak_memory_mb(), 1), "weights": "real" if real else "random",
                      "weights_mb": weights_mb and round(weights_mb, 1), "threads": torch.get_num_threads()}
            if batch_size == largest:
                warm_up[dtype] = (logits, features)
                if dtype != "fp32" and "fp32" in warm_up:  # bf16 or int8 against fp32 listed before it
                    (logits32, features32), (logits_low, features_low) = warm_up["fp32"], warm_up[dtype]
                    record[f"max_abs_logit_diff_{dtype}_vs_fp32"] = round(
                        float((logits32 - logits_low).abs().max()), 5)
                    record[f"min_feature_cosine_{dtype}_vs_fp32"] = round(
                        float(cosine_similarity(features32, features_low).min()), 6)
            yield record
        del model
        gc.collect()


STAGES["detector"] = bench_detector


def bench_align(args: BenchSettings) -> Iterator[dict]:
    """dlib detection + 68 landmarks + FFHQ warp to 256² per 1024² face image, at two detection resolutions.

    The default (detect_max_side 1024) is measured first, then 512 (half the HOG scan cost, faces from ~160 px
    in a 1024 image). Real StyleGAN2 faces from ../shared/data/faces are used when present; otherwise a seeded
    noise picture, which has no face and so measures detection alone (the record says so). dtype and batch
    size do not apply: dlib runs on one image at a time on one thread. CPU seconds are reported beside wall
    seconds because on a shared machine the wall clock mostly measures the other processes.
    """
    import time

    import numpy as np

    from core.images import load_image
    from core.timing import timed
    from encoder.align import AlignConfig, FaceAligner, NoFaceError

    folder = FACES / "stylegan2"
    paths = [p for p in face_images("stylegan2") if "kenton0607" in p.name][:4]
    if paths:
        images = [load_image(p).pixels for p in paths]
        source = f"{len(images)} StyleGAN2 FFHQ faces, 1024², from {folder}"
    else:
        images = [np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)]
        source = "synthetic 1024² noise (no face: detection cost only; the face set was not found)"
    for detect_max_side in (1024, 512):
        config = AlignConfig(detect_max_side=detect_max_side)
        aligner = FaceAligner(config)
        aligner.align_batch(images[:1])
        per_image, found = [], 0
        cpu_start = time.process_time()
        for _ in range(args.repeats):
            for image in images:
                with timed() as watch:
                    result = aligner.align_batch([image])[0]
                per_image.append(watch.seconds)
                found += not isinstance(result, NoFaceError)
        cpu_seconds = time.process_time() - cpu_start
        total = sum(per_image)
        yield {"stage": "align", "dtype": "n/a", "batch_size": 1,
               "images_per_s": round(len(per_image) / total, 3),
               "seconds_per_image": round(total / len(per_image), 4),
               "median_seconds_per_image": round(float(np.median(per_image)), 4),
               "cpu_seconds_per_image": round(cpu_seconds / len(per_image), 4),
               "peak_mem_mb": round(peak_memory_mb(), 1), "detect_max_side": config.detect_max_side,
               "upsample": config.upsample, "output_size": config.output_size,
               "faces_found": f"{found}/{len(per_image)}", "images": source}


STAGES["align"] = bench_align


def bench_encoder(args: BenchSettings) -> Iterator[dict]:
    """Full-size e4e encoder on 256² faces: images/s and GFLOP/s per dtype and batch, and bf16's W+ drift.

    Real weights only when already on disk (a benchmark never downloads 1.2 GB); otherwise the same seeded random
    weights in every dtype, so the bf16-vs-fp32 comparison is still like for like. The FLOP count is measured
    once on a meta-device copy (convolutions + linears, 2 FLOP per multiply-add), not assumed.
    """
    import gc

    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from core.device import select_precision
    from core.timing import timed
    from core.weights import weight_status
    from encoder.e4e import REGISTRY_NAME, E4EConfig, Encoder4Editing

    config = E4EConfig.ffhq()
    with torch.device("meta"):
        meta_model = Encoder4Editing(config)
        probe = torch.empty(1, 3, config.input_size, config.input_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        meta_model(probe)
    gflop_per_image = counter.get_total_flops() / 1e9
    real = weight_status(REGISTRY_NAME) == "present"
    largest = max(args.batch_sizes)
    faces = list(np.random.default_rng(0).integers(0, 256, (largest, config.input_size, config.input_size, 3),
                                                   dtype=np.uint8))
    outputs: dict[str, np.ndarray] = {}
    for dtype in args.dtypes:
        precision = select_precision(args.device, dtype)
        model = (Encoder4Editing.from_registry(precision) if real
                 else Encoder4Editing.random_init(config, precision, seed=0))
        for batch_size in args.batch_sizes:
            batch = faces[:batch_size]
            latents = model.encode(batch, batch_size=batch_size)
            with timed() as watch:
                for _ in range(args.repeats):
                    model.encode(batch, batch_size=batch_size)
            images_per_s = batch_size * args.repeats / watch.seconds
            record = {"stage": "encoder", "dtype": dtype, "batch_size": batch_size,
                      "images_per_s": round(images_per_s, 3),
                      "gflops_per_s": round(images_per_s * gflop_per_image, 1),
                      "gflop_per_image": round(gflop_per_image, 2),
                      "peak_mem_mb": round(peak_memory_mb(), 1), "weights": "e4e-ffhq" if real else "random",
                      "channels_last": True, "threads": torch.get_num_threads()}
            if batch_size == largest:
                outputs[dtype] = latents
                if dtype != "fp32" and "fp32" in outputs:  # bf16 or int8 against fp32 listed before it
                    record[f"max_abs_wplus_diff_{dtype}_vs_fp32"] = round(
                        float(np.abs(outputs[dtype] - outputs["fp32"]).max()), 5)
                    record["wplus_std_fp32"] = round(float(outputs["fp32"].std()), 5)
            yield record
        del model
        gc.collect()


STAGES["encoder"] = bench_encoder


def bench_fingerprint(args: BenchSettings) -> Iterator[dict]:
    """FingerprintNet on 1024² images through predict_proba (5 native-resolution crops each), full and small presets.

    The small preset uses the shipped fingerprintnet-small weights when present; the full preset has no trained
    checkpoint, so seeded random weights (speed does not depend on their values). Each preset keeps the same
    weights in every dtype, so bf16's drift in probabilities is like for like. StyleGAN2 faces from
    ../shared/data/faces are the inputs when present, seeded noise otherwise.
    """
    import copy
    import gc

    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from core.device import prepare_model, select_precision
    from core.images import load_image
    from core.timing import timed
    from core.weights import weight_status
    from detector.fingerprint_net import FingerprintConfig, FingerprintNet, crop_origins

    largest = max(args.batch_sizes)
    folder = FACES / "stylegan2"
    paths = face_images("stylegan2")[:largest]
    images = [load_image(p).pixels for p in paths]
    images = [image for image in images if image.shape[:2] == (1024, 1024)]
    source = f"{len(images)} StyleGAN2 faces from {folder}" if len(images) == largest else "seeded noise"
    if len(images) < largest:
        images = list(np.random.default_rng(0).integers(0, 256, (largest, 1024, 1024, 3), dtype=np.uint8))
    fp32 = select_precision(args.device, "fp32")
    for preset in ("full", "small"):
        config = getattr(FingerprintConfig, preset)()
        shipped = preset == "small" and weight_status("fingerprintnet-small") == "present"
        if shipped:
            master = FingerprintNet.from_registry("fingerprintnet-small", fp32)
        else:
            torch.manual_seed(0)
            master = prepare_model(FingerprintNet(config), fp32)
        num_crops = len(crop_origins(1024, 1024, config.crop_size, config.num_crops))
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            master(torch.rand(1, 3, config.crop_size, config.crop_size))
        gflop_per_image = counter.get_total_flops() * num_crops / 1e9
        probabilities: dict[str, np.ndarray] = {}
        for dtype in args.dtypes:
            model = prepare_model(copy.deepcopy(master), select_precision(args.device, dtype))
            for batch_size in args.batch_sizes:
                batch = images[:batch_size]
                result = model.predict_proba(batch)
                with timed() as watch:
                    for _ in range(args.repeats):
                        model.predict_proba(batch)
                images_per_s = batch_size * args.repeats / watch.seconds
                record = {"stage": "fingerprint", "preset": preset, "dtype": dtype, "batch_size": batch_size,
                          "images_per_s": round(images_per_s, 3),
                          "ms_per_image": round(1000 / images_per_s, 1),
                          "gflop_per_image": round(gflop_per_image, 2),
                          "gflops_per_s": round(images_per_s * gflop_per_image, 1),
                          "peak_mem_mb": round(peak_memory_mb(), 1), "input": "1024x1024",
                          "crops_per_image": num_crops, "crop_size": config.crop_size,
                          "weights": "fingerprintnet-small" if shipped else "random", "images": source,
                          "threads": torch.get_num_threads()}
                if batch_size == largest and dtype in ("fp32", "bf16"):
                    probabilities[dtype] = result
                    if len(probabilities) == 2:
                        record["max_abs_prob_diff_bf16_vs_fp32"] = round(
                            float(np.abs(probabilities["bf16"] - probabilities["fp32"]).max()), 5)
                        record["argmax_agreement_bf16_vs_fp32"] = float(
                            (probabilities["bf16"].argmax(1) == probabilities["fp32"].argmax(1)).mean())
                yield record
            del model
            gc.collect()


STAGES["fingerprint"] = bench_fingerprint


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


def call_seconds(call: Callable[..., Any], repeats: int, *args: Any) -> tuple[list[float], Any]:
    """Wall seconds of each of `repeats` calls of `call(*args)`, and what the last call returned."""
    from core.timing import timed

    seconds, result = [], None
    for _ in range(repeats):
        with timed() as watch:
            result = call(*args)
        seconds.append(watch.seconds)
    return seconds, result


def stage_alone_ms(pipe: P.Pipeline, sources: Sequence[str | bytes], threads: int
                   ) -> tuple[dict[str, float], dict[str, int]]:
    """Each stage of `pipe` alone on the same images, ms per image, with the torch threads it has in the pipeline.

    Loading and alignment are single-threaded; each branch runs with `threads` (its lane's share), so
    `alone_ms × threads` is the core-time a stage needs and in-pipeline / alone is what sharing costs it.
    """
    from core.device import torch_threads
    from core.images import load_image
    from core.timing import timed

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
    with torch_threads(threads):
        for name, branch in pipe.branches.items():
            inputs = pixels if branch.level == "image" else faces
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


STAGES["pipeline"] = bench_pipeline


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
    clip = getattr(pipe.branches["clip_probe"], "model", None)
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


STAGES["latency"] = bench_latency


def bench_int8(args: BenchSettings) -> Iterator[dict]:
    """What int8 changes in the evidence against fp32, on `images` real faces of the face set (4 classes).

    For the full-size CLIP ViT-L/14 and e4e with seeded random weights (the same in both dtypes), and for the tiny
    test models: min and mean cosine of CLIP features; |Δlogit| of UFD's real probe (tests/data) and how many
    real/fake labels flip; |ΔW+| relative to the W+ scale and to its spread across faces; and how many labels a
    latent SVM fitted on the fp32 W+ gives differently on the int8 W+. Real CLIP / e4e weights are never used here:
    their fidelity is for a run of the detector and encoder stages with `--dtype fp32 int8` where they are on disk.
    """
    import numpy as np
    from torch.nn.functional import cosine_similarity

    from attribution.latent_svm import LatentAttributor
    from core.device import select_precision
    from core.images import load_image
    from detector.clip_probe import ClipProbe
    from encoder.align import FaceAligner
    from encoder.e4e import E4EConfig, Encoder4Editing

    probe = Path(__file__).resolve().parent / "tests" / "data" / "ufd_fc_weights.pth"
    classes = ("real", "progan", "stylegan2", "stylegan3")
    images, labels = [], []
    for cls in classes:
        for path in face_images(cls)[:args.images // len(classes)]:
            images.append(load_image(path).pixels)
            labels.append(cls)
    if not images:
        raise ValueError(f"the int8 stage needs real faces: none found under {FACES}")
    faces, face_labels = [], []
    for label, found in zip(labels, FaceAligner().align_batch(images)):
        if isinstance(found, list):
            faces.append(found[0].image)
            face_labels.append(label)
    fp32, int8 = select_precision("cpu", "fp32"), select_precision("cpu", "int8")
    for preset in ("full", "tiny"):
        features, logits = {}, {}
        for precision in (fp32, int8):
            model = (ClipProbe.random_init(precision=precision) if preset == "full"
                     else ClipProbe.tiny(precision=precision, embed_dim=768))
            model.load_probe(probe)
            features[precision.dtype_name] = model.features(images)
            logits[precision.dtype_name] = model.logits_from_features(features[precision.dtype_name])
        cosine = cosine_similarity(torch.from_numpy(features["fp32"]), torch.from_numpy(features["int8"]))
        config = E4EConfig.ffhq() if preset == "full" else E4EConfig.tiny()
        latents = {precision.dtype_name: Encoder4Editing.random_init(config, precision, seed=0).encode(faces)
                   for precision in (fp32, int8)}
        delta = np.abs(latents["int8"] - latents["fp32"])
        scale, spread = float(latents["fp32"].std()), float(latents["fp32"].std(axis=0).mean())
        seen, counts = np.unique(face_labels, return_counts=True)
        kept = np.isin(face_labels, seen[counts >= 6])  # the SVM's calibration folds need a few faces per class
        flips = None
        if len(set(np.array(face_labels)[kept])) >= 2:
            svm = LatentAttributor(calibration_folds=2).fit(latents["fp32"][kept], np.array(face_labels)[kept],
                                                            np.arange(int(kept.sum())))
            flips = int(sum(a != b for a, b in zip(svm.predict(latents["fp32"]), svm.predict(latents["int8"]))))
        ufd_delta = np.abs(logits["int8"] - logits["fp32"])
        yield {"stage": "int8_fidelity", "models": preset, "weights": "random (seeded), UFD's real probe",
               "images": len(images), "faces": len(faces), "source": str(FACES),
               "clip_feature_cosine_min": round(float(cosine.min()), 5),
               "clip_feature_cosine_mean": round(float(cosine.mean()), 5),
               "ufd_abs_dlogit_max": round(float(ufd_delta.max()), 4),
               "ufd_abs_dlogit_mean": round(float(ufd_delta.mean()), 4),
               "ufd_logit_std_fp32": round(float(logits["fp32"].std()), 4),
               "ufd_label_flips": int(((logits["int8"] > 0) != (logits["fp32"] > 0)).sum()),
               "wplus_abs_delta_mean_over_scale": round(float(delta.mean()) / scale, 4),
               "wplus_abs_delta_max_over_scale": round(float(delta.max()) / scale, 4),
               "wplus_abs_delta_mean_over_spread": round(float(delta.mean()) / spread, 4),
               "latent_svm_label_flips": flips, "cpu": cpu_description()[0]}


STAGES["int8"] = bench_int8


def conv_layer_ms(model: torch.nn.Module, inputs: torch.Tensor, names: Sequence[str], repeats: int) -> list[dict]:
    """Median ms of each named conv of `model` on the input it gets in `model(inputs)`, in fp32 and as
    `core.int8.Int8Conv2d` (activation quantization included), summed over the convs of one shape.

    Shows which layers int8 speeds up on this CPU and how far: a model can only gain what its convs gain.
    """
    import numpy as np

    from core.int8 import Int8Conv2d

    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    # dict.update returns None, as a pre-hook must (a returned value would replace the layer's input)
    hooks = [modules[name].register_forward_pre_hook(lambda layer, args, name=name: seen.update({name: args[0]}))
             for name in names]
    try:
        with torch.inference_mode():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    by_shape: dict[tuple, dict] = {}
    with torch.inference_mode():
        for name in names:
            conv, x = modules[name], seen[name]
            int8 = Int8Conv2d(conv)
            key = (conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], *x.shape[-2:])
            row = by_shape.setdefault(key, {"in": key[0], "out": key[1], "kernel": key[2], "stride": key[3],
                                            "input_side": key[4], "convs": 0, "fp32_ms": 0.0, "int8_ms": 0.0})
            row["convs"] += 1
            for kind, layer in (("fp32", conv), ("int8", int8)):
                layer(x)
                seconds, _ = call_seconds(layer, repeats, x)
                row[f"{kind}_ms"] += 1000 * float(np.median(seconds))
    return sorted(by_shape.values(), key=lambda row: -row["fp32_ms"])


def bench_int8_layers(args: BenchSettings) -> Iterator[dict]:
    """Each conv shape of the full-size e4e (random weights) at the largest batch: fp32 vs int8 ms, one line per
    shape and a total, so a whole-model int8 ratio can be traced to the layers that make it."""
    from core.device import select_precision
    from encoder.e4e import E4EConfig, Encoder4Editing, int8_conv_names

    batch = max(args.batch_sizes)
    model = Encoder4Editing.random_init(E4EConfig.ffhq(), select_precision("cpu", "fp32"), seed=0)
    inputs = torch.randn(batch, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    rows = conv_layer_ms(model, inputs.contiguous(memory_format=torch.channels_last), int8_conv_names(model),
                         args.repeats)
    for row in rows:
        yield {"stage": "int8_layers", "model": "e4e", "batch_size": batch, **row,
               "fp32_ms": round(row["fp32_ms"], 1), "int8_ms": round(row["int8_ms"], 1),
               "ratio": round(row["fp32_ms"] / row["int8_ms"], 2)}
    fp32_ms, int8_ms = sum(row["fp32_ms"] for row in rows), sum(row["int8_ms"] for row in rows)
    yield {"stage": "int8_layers", "model": "e4e", "batch_size": batch, "convs": sum(row["convs"] for row in rows),
           "fp32_ms": round(fp32_ms, 1), "int8_ms": round(int8_ms, 1), "ratio": round(fp32_ms / int8_ms, 2),
           "threads": torch.get_num_threads(), "cpu": cpu_description()[0]}


STAGES["int8_layers"] = bench_int8_layers


def bench_scan(args: BenchSettings) -> Iterator[dict]:
    """A scan as scan.py runs it, on the local backend or on a local Ray (`backend`), so Ray's overhead is a number.

    The same files either way: the first `images` files of ../shared/data/faces (every class, sorted), or seeded
    256² noise written to a temporary folder when the face set is absent. The pipeline is the configured one with
    the weights on disk (never downloading). The clock runs from building the pipeline to the last verdict, so
    start-up counts (for Ray: Ray itself, then each actor importing torch and loading the models; on Ray the
    actors keep working while the driver waits for the first verdict, so there is no fair "after start-up" rate).
    Each actor has one CPU and one torch thread.
    """
    import tempfile
    import time

    import numpy as np
    from PIL import Image

    from runners.ray_backend import RayOptions, analyze_on_ray

    folders = sorted(p for p in FACES.iterdir() if p.is_dir()) if FACES.is_dir() else []
    files = [str(p) for folder in folders for p in list_images(folder)][:args.images]
    with tempfile.TemporaryDirectory(prefix="gantrace-bench-scan-") as temp:
        source = f"the first {len(files)} images of {FACES}"
        if len(files) < args.images:
            rng = np.random.default_rng(0)
            files = [str(Path(temp) / f"noise-{index:04d}.png") for index in range(args.images)]
            for file in files:
                Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(file)
            source = f"{len(files)} seeded 256² noise images (the face set was not found)"
        for dtype in args.dtypes:
            batch_size = max(args.batch_sizes)
            start = time.perf_counter()
            pipe = P.Pipeline(replace(args.pipeline, device=args.device, dtype=dtype, batch_size=batch_size,
                                      download=False))
            branches = sorted(status.branch for status in pipe.load_all() if status.ready)
            if args.backend == "ray":
                results = analyze_on_ray(pipe, files, RayOptions(actors=args.ray_actors))
            else:
                results = pipe.analyze_iter(files, names=files)
            count, first = 0, None
            for _ in results:
                count += 1
                first = first or time.perf_counter()
            end = time.perf_counter()
            yield {"stage": "scan", "backend": args.backend, "dtype": dtype, "batch_size": batch_size,
                   "images": count, "images_per_s": round(count / (end - start), 3),
                   "seconds_to_first_verdict": round(first - start, 1), "seconds": round(end - start, 1),
                   "branches_run": branches, "ray_actors": args.ray_actors if args.backend == "ray" else None,
                   "threads": torch.get_num_threads(), "source": source}


STAGES["scan"] = bench_scan
