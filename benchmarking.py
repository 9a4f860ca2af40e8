"""Speed (and bf16-vs-fp32 agreement) of each GANTrace stage on this machine, one JSON-able record per measurement.

scripts/benchmark.py parses the command line and prints what `STAGES[name](settings)` yields. Each stage uses real
weights when they are already on disk (a benchmark never downloads) and seeded random full-size weights otherwise,
the same in every dtype, so the bf16-vs-fp32 comparison is like for like; the record says which.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import pipeline as P
from core.device import cpu_supports_bf16
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


def face_images(cls: str) -> list[Path]:
    """Images of one class of the development face set beside the repository, [] when it is absent."""
    folder = FACES / cls
    return list_images(folder) if folder.is_dir() else []


STAGES: dict[str, Callable[[BenchSettings], Iterator[dict]]] = {}


def machine_record() -> dict:
    """The reference ceiling: this machine's own matmul rate in each dtype."""
    return {
        "stage": "machine",
        "cpu": platform.processor() or platform.machine(),
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
        weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
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
                      "weights_mb": round(weights_mb, 1), "threads": torch.get_num_threads()}
            if batch_size == largest and dtype in ("fp32", "bf16"):
                warm_up[dtype] = (logits, features)
                if len(warm_up) == 2:
                    (logits32, features32), (logits16, features16) = warm_up["fp32"], warm_up["bf16"]
                    record["max_abs_logit_diff_bf16_vs_fp32"] = round(float((logits32 - logits16).abs().max()), 5)
                    record["min_feature_cosine_bf16_vs_fp32"] = round(
                        float(cosine_similarity(features32, features16).min()), 6)
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
            if batch_size == largest and dtype in ("fp32", "bf16"):
                outputs[dtype] = latents
                if len(outputs) == 2:
                    record["max_abs_wplus_diff_bf16_vs_fp32"] = round(
                        float(np.abs(outputs["bf16"] - outputs["fp32"]).max()), 5)
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


def bench_pipeline(args: BenchSettings) -> Iterator[dict]:
    """End to end: file → every branch that has weights → Verdict, on 1024² faces; images/s and per-stage ms.

    Inputs are real 1024² StyleGAN2 and real faces from ../shared/data/faces when present (seeded noise otherwise,
    which has no face, so the latent branch is skipped and the record says so). Missing CLIP / e4e weights are
    replaced by random full-size weights (speed does not depend on their values); without a trained latent SVM, one
    is fitted on random W+ latents. The record's `weights` field says which is which. Each dtype loads its models
    once; batch sizes reuse them, each after one untimed warm-up batch (oneDNN builds kernels per shape).
    Per-stage ms are each image's share of its batch's stage time (alignment overlaps the detectors); CPU seconds
    are reported beside wall seconds because on a shared machine the wall clock mostly measures the others.
    """
    import io
    import tempfile
    import time

    import numpy as np
    from PIL import Image

    from attribution.latent_svm import LatentAttributor
    from core.images import load_image
    from core.timing import timed

    largest = max(args.batch_sizes)
    faces = FACES
    paths: list = []
    for cls in ("stylegan2", "real"):
        sized = [p for p in face_images(cls) if load_image(p).pixels.shape[:2] == (1024, 1024)]
        paths += sized[:(largest + 1) // 2]
    if len(paths) >= largest:
        sources = [str(p) for p in paths[:largest]]
        source = f"{len(sources)} 1024² faces (StyleGAN2 and real) from {faces}"
    else:
        rng = np.random.default_rng(0)
        sources = []
        for _ in range(largest):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(buffer, format="PNG")
            sources.append(buffer.getvalue())
        source = "seeded 1024² noise (no face: the latent branch is skipped; the face set was not found)"
    with tempfile.TemporaryDirectory(prefix="gantrace-bench-") as temp:
        svm_path, svm_note = Path(temp) / "random-svm.joblib", "random fit on noise W+ latents"
        rng = np.random.default_rng(0)
        labels = np.repeat(["progan", "stylegan2", "stylegan3"], 12)
        latents = rng.normal(size=(len(labels), 18, 512)).astype(np.float32)
        LatentAttributor(calibration_folds=2).fit(latents, labels, np.arange(len(labels))).save(svm_path)
        for dtype in args.dtypes:
            options = {**args.pipeline.branch_options, "latent_svm": {"artifact": str(svm_path)}}
            config = replace(args.pipeline, dtype=dtype, batch_size=largest, random_weights_ok=True,
                             branch_options=options)
            pipe = P.Pipeline(config)
            with timed() as load_watch:
                statuses = {s.branch: s for s in pipe.load_all()}
            for batch_size in args.batch_sizes:
                pipe.config.batch_size = batch_size
                pipe.analyze(sources[:batch_size])
                verdicts = []
                cpu_start = time.process_time()
                with timed() as watch:
                    for _ in range(args.repeats):
                        verdicts += pipe.analyze(sources[:batch_size])
                cpu_seconds = time.process_time() - cpu_start
                failures = [v for v in verdicts if isinstance(v, P.Failure)]
                verdicts = [v for v in verdicts if isinstance(v, P.Verdict)]
                stages = sorted({stage for v in verdicts for stage in v.timings_ms if stage != "total"})
                per_stage = {stage: round(float(np.mean([v.timings_ms.get(stage, 0.0) for v in verdicts])), 1)
                             for stage in stages}
                models = verdicts[0].models if verdicts else {}
                weights = {branch: ("off: " + (s.reason or "")[:120]) if not s.ready else "real" for branch, s in
                           statuses.items()}
                weights.update({name: value for name, value in models.items() if value == P.RANDOM_WEIGHTS})
                if statuses["latent_svm"].ready:
                    weights["latent_svm"] = svm_note
                count = len(verdicts) + len(failures)
                yield {"stage": "pipeline", "dtype": dtype, "batch_size": batch_size,
                       "images_per_s": round(count / watch.seconds, 3),
                       "seconds_per_image": round(watch.seconds / count, 3),
                       "cpu_seconds_per_image": round(cpu_seconds / count, 3), "per_stage_ms": per_stage,
                       "branches_run": sorted({b for v in verdicts for b, e in v.evidence.items()
                                               if e["probabilities"] is not None}),
                       "faces_found": f"{sum(bool(v.faces) for v in verdicts)}/{len(verdicts)}",
                       "failures": len(failures), "load_seconds": round(load_watch.seconds, 1),
                       "peak_mem_mb": round(peak_memory_mb(), 1), "weights": weights, "images": source,
                       "threads": torch.get_num_threads()}
            del pipe


STAGES["pipeline"] = bench_pipeline


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

    from ray_backend import RayOptions, analyze_on_ray

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
