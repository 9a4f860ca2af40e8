"""The per-model benchmark stages: CLIP's detector, dlib's alignment, e4e and FingerprintNet, each alone.

Each measures one model's speed per dtype and batch size and, for bf16 or int8, its drift from fp32 on the same
inputs: real weights when they are already on disk (a benchmark never downloads), seeded random full-size weights
otherwise, the same in every dtype so the comparison is like for like; the record says which.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from core.timing import peak_memory_mb
from runners.bench_settings import FACES, BenchSettings, face_images


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
        model = ClipProbe.from_pretrained(precision=precision) if real else ClipProbe.random_init(precision=precision)
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
        model = (Encoder4Editing.from_pretrained(precision=precision) if real
                 else Encoder4Editing.random_init(config, seed=0, precision=precision))
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
    from detector.crops import crop_origins
    from detector.fingerprint_net import FingerprintConfig, FingerprintNet

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
            master = FingerprintNet.from_pretrained("fingerprintnet-small", fp32)
        else:
            master = FingerprintNet.random_init(config, seed=0, precision=fp32)
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
