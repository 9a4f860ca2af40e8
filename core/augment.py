"""How a training view is degraded on its way in: one settings type for every detector trainer.

Why one type: the spectral baseline, FingerprintNet and the residual net all fight the same shortcut (the classes
of the face set differ by codec, quality and size, so a model learns those instead of the generator), with the
same tools applied identically to every class: a random downscale with some resampling kernel, a JPEG re-encode,
a mild blur, sensor-like noise, a flip. Each trainer's recipe is a named preset of the same fields; a field a
recipe has no step for keeps the value that means "off" in its preset.

The latent SVM's resolution augmentation (attribution/resolution.py) is another recipe, not another setting of
this one: it draws a target resolution in pixels, and re-encodes at that size, before e4e's fixed-size input.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

KERNELS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
           "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


@dataclass(frozen=True)
class AugmentSettings:
    """What happens to a training view; every class gets the same treatment.

    `views` is how many augmented views of an image are made at once (the spectral baseline caches them);
    `resize_prob` the share of views downscaled by a factor drawn from `scale`, with a kernel drawn from `kernels`
    (names in KERNELS); `jpeg_prob` the share re-encoded at a quality drawn from `jpeg_quality` (inclusive);
    `blur_prob` and `noise_prob` the shares blurred (Gaussian, radius from `blur_sigma`) and noised (Gaussian,
    sigma from `noise_sigma`, in grey levels); `flip` allows a random horizontal flip. The defaults are the
    residual net's `analyst` recipe.
    """

    views: int = 1
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 100)
    resize_prob: float = 0.5
    scale: tuple[float, float] = (0.5, 1.0)
    kernels: tuple[str, ...] = tuple(KERNELS)
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 1.0)
    noise_prob: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 3.0)
    flip: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kernels) - set(KERNELS))
        if not self.kernels or unknown:
            raise ValueError(f"kernels must be among {', '.join(KERNELS)}, got {self.kernels}")

    @classmethod
    def none(cls) -> AugmentSettings:
        """Native crops and flips only: the NPR paper's setting, the residual left as the generator made it."""
        return cls(jpeg_prob=0.0, resize_prob=0.0, blur_prob=0.0)

    @classmethod
    def analyst(cls) -> AugmentSettings:
        """JPEG 60–100, downscale 0.5–1 with any of four kernels, mild blur: how photos reach an analyst."""
        return cls()

    @classmethod
    def reencoded(cls) -> AugmentSettings:
        """`analyst` with JPEG on 90 % of views: with half the views lossless, the CV showed JPEG q75 test images
        drop to chance (AUC 0.53), i.e. the model had learned "no JPEG grid = fake"; this takes that cue away."""
        return cls(jpeg_prob=0.9)

    @classmethod
    def fingerprint(cls) -> AugmentSettings:
        """FingerprintNet's recipe: every view downscaled 0.5–1 (bilinear, bicubic or Lanczos) and re-encoded at
        JPEG 60–100, no blur."""
        return cls(jpeg_prob=1.0, resize_prob=1.0, kernels=("bilinear", "bicubic", "lanczos"), blur_prob=0.0)

    @classmethod
    def spectral(cls) -> AugmentSettings:
        """The spectral baseline's recipe: four views per image, downscale 0.25–1, JPEG 50–100 on 80 %, blur and
        sensor noise on 20 % each."""
        return cls(views=4, jpeg_prob=0.8, jpeg_quality=(50, 100), resize_prob=1.0, scale=(0.25, 1.0),
                   kernels=("bilinear", "bicubic", "lanczos"), blur_prob=0.2, blur_sigma=(0.3, 1.0), noise_prob=0.2)
