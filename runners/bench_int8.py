"""The int8 benchmark stages: what int8 changes in the evidence against fp32 (`int8`), and which of e4e's convs
int8 speeds up on this CPU (`int8_layers`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import torch

from core.device import cpu_description
from runners.bench_settings import FACES, REPO, BenchSettings, call_seconds, face_images


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
    from detector.clip_probe import ClipProbe, ClipProbeConfig
    from encoder.align import FaceAligner
    from encoder.e4e import E4EConfig, Encoder4Editing

    probe = REPO / "tests" / "data" / "ufd_fc_weights.pth"
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
            config = ClipProbeConfig() if preset == "full" else replace(ClipProbeConfig.tiny(), embed_dim=768)
            model = ClipProbe.random_init(config, precision=precision)
            model.load_probe(probe)
            features[precision.dtype_name] = model.features(images)
            logits[precision.dtype_name] = model.logits_from_features(features[precision.dtype_name])
        cosine = cosine_similarity(torch.from_numpy(features["fp32"]), torch.from_numpy(features["int8"]))
        config = E4EConfig.ffhq() if preset == "full" else E4EConfig.tiny()
        latents = {precision.dtype_name: Encoder4Editing.random_init(config, seed=0, precision=precision).encode(faces)
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
    model = Encoder4Editing.random_init(E4EConfig.ffhq(), seed=0, precision=select_precision("cpu", "fp32"))
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
