"""Grad-CAM for FingerprintNet: which regions of the image pushed it towards a class.

Computed on the last spatial feature map (the fingerprint block's output, the map the classifier pools), not on
the self-attention value projection that the original GANFingerprint code picked by accident: that path is scaled by
a learned γ and shows only the attention residual. The gradient is that of the predicted (or requested) class's
logit, so for an image called "stylegan2" the map shows evidence for stylegan2, not for "real".

The network sees native-resolution crops, so a large image is tiled with crops that cover it; each crop's map is
resized to the crop and the overlapping maps are averaged into the full image frame. Maps are normalised once
over the whole image (by the 99th percentile, clipped, so one extreme crop does not leave the rest invisible),
so crops stay comparable. The frequency path's evidence is not spatial and
is not shown here (the spectrum picture shows it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from detector.fingerprint_net import FingerprintNet, to_tensor


def gradcam(model: FingerprintNet, images: Sequence[np.ndarray], target: str | None = None) -> list[np.ndarray]:
    """One H×W float32 map in [0,1] per image, for `target` (a class name) or, when None, the predicted class."""
    if target is not None and target not in model.classes_:
        raise ValueError(f"target {target!r} is not one of the model's classes {model.classes_}")
    was_training = model.training
    model.eval()
    maps = []
    for image in images:
        index = model.classes_.index(target) if target else int(model.predict_proba([image])[0].argmax())
        maps.append(_image_cam(model, image, index))
    model.train(was_training)
    return maps


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured heatmap onto the image, weighted by the heat so cold regions stay readable."""
    from matplotlib import colormaps

    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image's {image.shape[:2]}; "
                         "compute it with gradcam() on this image")
    heat = np.clip(heatmap.astype(np.float32), 0.0, 1.0)
    colour = colormaps["jet"](heat)[..., :3] * 255.0
    weight = (alpha * heat)[..., None]
    blended = image.astype(np.float32) * (1.0 - weight) + colour * weight
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def tile_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of crops of `size` that cover the image; the last row/column is flush with the edge."""
    rows = list(range(0, height - size + 1, size))
    cols = list(range(0, width - size + 1, size))
    if rows[-1] != height - size:
        rows.append(height - size)
    if cols[-1] != width - size:
        cols.append(width - size)
    return [(top, left) for top in rows for left in cols]


def _image_cam(model: FingerprintNet, image: np.ndarray, class_index: int) -> np.ndarray:
    height, width = image.shape[:2]
    size = min(model.config.crop_size, height, width)
    origins = tile_origins(height, width, size)
    total = np.zeros((height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.float64)
    for start in range(0, len(origins), model.config.batch_size):
        chunk = origins[start:start + model.config.batch_size]
        crops = to_tensor([image[top:top + size, left:left + size] for top, left in chunk])
        for (top, left), cam in zip(chunk, _crop_cams(model, crops, class_index, size)):
            total[top:top + size, left:left + size] += cam
            count[top:top + size, left:left + size] += 1.0
    heat = total / count
    scale = np.percentile(heat, 99.0)
    scale = scale if scale > 0 else heat.max()
    return (np.clip(heat / scale, 0.0, 1.0) if scale > 0 else heat).astype(np.float32)


def _crop_cams(model: FingerprintNet, crops: torch.Tensor, class_index: int, size: int) -> np.ndarray:
    """Grad-CAM per crop: ReLU(Σ_c mean(∂score/∂A_c) · A_c), bilinearly resized to the crop."""
    with torch.inference_mode(False), torch.enable_grad():
        crops = crops.clone().requires_grad_(True)
        logits, feature_map = model.logits_and_map(crops)
        gradients, = torch.autograd.grad(logits[:, class_index].sum(), feature_map)
    weights = gradients.float().mean(dim=(2, 3), keepdim=True)
    cams = F.relu((weights * feature_map.detach().float()).sum(dim=1, keepdim=True))
    cams = F.interpolate(cams, size=(size, size), mode="bilinear", align_corners=False)
    return cams[:, 0].cpu().numpy().astype(np.float64)
