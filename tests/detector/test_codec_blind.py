"""The codec-blind recipe: a pair shares its processing, every class gets the same draws, the quality estimate
reads what a JPEG was written with, and the fingerprint follows every setting."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from detector.codec_blind import (CodecBlindRecipe, apply_draw, draw_processing, estimate_jpeg_quality,
                                  pair_batch, recipe_fingerprint)


def _photo(rng: np.random.Generator, side: int = 160) -> np.ndarray:
    coarse = Image.fromarray(rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def _jpeg(pixels: np.ndarray, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


@pytest.mark.parametrize("quality", [30, 50, 75, 90, 95, 98])
def test_quality_estimate_recovers_the_quality_a_jpeg_was_written_with(quality):
    estimate = estimate_jpeg_quality(_jpeg(_photo(np.random.default_rng(quality)), quality))
    assert estimate is not None and abs(estimate - quality) <= 5


def test_quality_estimate_reads_a_file_and_calls_png_lossless(tmp_path):
    pixels = _photo(np.random.default_rng(0))
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=62)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    assert abs(estimate_jpeg_quality(tmp_path / "a.jpg") - 62) <= 5
    assert estimate_jpeg_quality(tmp_path / "a.png") is None


def test_fitted_recipe_follows_the_real_photos_qualities_and_keeps_a_lossless_floor(tmp_path):
    pixels = _photo(np.random.default_rng(0))
    paths = []
    for index, quality in enumerate([75, 75, 75, 95]):
        paths.append(tmp_path / f"{index}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=quality)
    recipe = CodecBlindRecipe.fit(paths, min_lossless_prob=0.2)
    assert dict(recipe.qualities) == pytest.approx({75: 0.75, 95: 0.25})
    assert recipe.lossless_prob == 0.2
    Image.fromarray(pixels).save(tmp_path / "x.png")
    assert CodecBlindRecipe.fit([*paths, tmp_path / "x.png"], min_lossless_prob=0.0).lossless_prob == 0.2


def test_one_draw_gives_a_pair_the_same_processing():
    rng = np.random.default_rng(3)
    image = _photo(rng)
    recipe = CodecBlindRecipe(lossless_prob=0.0, erase_prob=1.0)
    for _ in range(5):
        draw = draw_processing(recipe, rng)
        assert np.array_equal(apply_draw(image, draw, 64), apply_draw(image.copy(), draw, 64))
    # a real/fake pair differs only by what the images hold: the same draw moves both the same way
    other = _photo(rng)
    draw = draw_processing(CodecBlindRecipe(lossless_prob=1.0, erase_prob=0.0, flip=False), rng)
    top, left = round(draw.place[0] * (160 - draw.window)), round(draw.place[1] * (160 - draw.window))
    top += round(draw.offset[0] * (draw.window - 64))
    left += round(draw.offset[1] * (draw.window - 64))
    for picture in (image, other):
        assert np.array_equal(apply_draw(picture, draw, 64), picture[top:top + 64, left:left + 64])


def test_pairs_in_a_batch_hold_twins_or_same_source_reals():
    labels = ["real"] * 4 + ["stylegan2"] * 2 + ["progan"] * 2 + ["made_from_real"] * 2
    sources = ["a", "a", "b", "b", "a", "a", "c", "c", "m", "m"]
    twins = {8: 2, 9: 3}
    batch = pair_batch(labels, sources, 400, np.random.default_rng(0), twins)
    for fake, real in batch:
        assert labels[real] == "real" and labels[fake] != "real"
        if fake in twins:
            assert real == twins[fake]
        elif sources[fake] == "a":
            assert sources[real] == "a"
    counts = np.bincount([labels.index(labels[fake]) for fake, _ in batch], minlength=10)
    assert all(abs(counts[i] - 400 / 3) < 40 for i in (4, 6, 8))


def test_every_class_gets_the_same_distribution_of_draws():
    """Views are drawn per pair, never per class: over a long run real and fake views see the same qualities,
    the same lossless share and the same erase share, and crops land at every phase of the 8×8 grid."""
    recipe = CodecBlindRecipe(qualities=((60, 0.3), (75, 0.4), (95, 0.3)), lossless_prob=0.3)
    labels = ["real"] * 6 + ["progan"] * 3 + ["stylegan2"] * 3
    sources = ["r1", "r1", "r2", "r2", "p", "p", "p", "p", "p", "s", "s", "s"]
    rng = np.random.default_rng(7)
    per_class: dict[str, list] = {"real": [], "fake": []}
    for _ in range(300):
        for fake, real in pair_batch(labels, sources, 4, rng):
            draw = draw_processing(recipe, rng)
            per_class["fake"].append(draw)
            per_class["real"].append(draw)
    for draws in per_class.values():
        qualities = [d.quality for d in draws]
        assert np.mean([q is None for q in qualities]) == pytest.approx(0.3, abs=0.04)
        assert np.mean([q == 75 for q in qualities]) == pytest.approx(0.28, abs=0.04)
        assert np.mean([d.erase_factor is not None for d in draws]) == pytest.approx(0.5, abs=0.05)
        assert all(d.erase_factor is None or d.erase_factor >= 1.5 for d in draws)
        phases = {round(d.offset[0] * (d.window - 64)) % 8 for d in draws}
        assert phases == set(range(8))
    assert [d.quality for d in per_class["real"]] == [d.quality for d in per_class["fake"]]


def test_erase_downscale_removes_an_old_jpeg_grid():
    """A decoded JPEG keeps its 8×8 grid after a lossless re-save; the ≥ 1.5× downscale wipes it."""
    image = np.asarray(_jpeg(_photo(np.random.default_rng(5), 384), 40).convert("RGB"))

    def grid_strength(view: np.ndarray) -> float:
        grey = view.astype(np.float64).mean(axis=2)
        steps = np.abs(np.diff(grey, axis=1)).mean(axis=0)
        phase = np.array([steps[p::8].mean() for p in range(8)])
        return float(phase.max() / np.median(phase))

    keep = draw_processing(CodecBlindRecipe(lossless_prob=1.0, erase_prob=0.0, window=(128, 128), flip=False),
                           np.random.default_rng(0))
    keep = replace(keep, place=(0.0, 0.0), offset=(0.0, 0.0))
    assert grid_strength(apply_draw(image, keep, 128)) > 1.5
    for factor in (1.7, 2.5):
        assert grid_strength(apply_draw(image, replace(keep, erase_factor=factor, kernel="bicubic"), 128)) < 1.12
    # ×2 and ×3 keep a grid in phase with 8 pixels, so the recipe never draws them
    rng = np.random.default_rng(1)
    factors = [draw_processing(CodecBlindRecipe(erase_prob=1.0), rng).erase_factor for _ in range(500)]
    assert min(abs(f - n) for f in factors for n in (2.0, 3.0)) >= 0.15


def test_fingerprint_changes_when_a_setting_changes():
    recipe = CodecBlindRecipe()
    assert recipe_fingerprint(recipe) == recipe_fingerprint(CodecBlindRecipe())
    for change in ({"lossless_prob": 0.3}, {"erase_prob": 0.4}, {"window": (64, 96)}, {"kernels": ("box",)},
                   {"qualities": ((75, 1.0),)}, {"flip": False}, {"erase_factor": (1.5, 2.0)}):
        assert recipe_fingerprint(replace(recipe, **change)) != recipe_fingerprint(recipe), change
