"""The one fixed-crops helper every image detector reads through: centre first, then corners, then edge midpoints."""

from __future__ import annotations

import numpy as np
import pytest

from detector.crops import crop_origins, fixed_crops, pad_to


def test_fixed_crops_are_the_centre_and_four_corners_at_native_resolution():
    assert crop_origins(300, 200, 128, 5) == [(86, 36), (0, 0), (0, 72), (172, 0), (172, 72)]
    assert crop_origins(300, 200, 128, 1) == [(86, 36)]


def test_edge_midpoints_follow_the_corners():
    assert crop_origins(300, 200, 100, 9)[5:] == [(0, 50), (200, 50), (100, 0), (100, 100)]


def test_torchvision_centre_rounds_half_to_even_where_the_floor_does_not():
    # an excess of 3 pixels: torchvision's round(1.5) = 2, the floor 1; an excess of 5: both give 2
    assert crop_origins(227, 229, 224, 1, torchvision_centre=True) == [(2, 2)]
    assert crop_origins(227, 229, 224, 1) == [(1, 2)]


def test_fixed_crops_are_the_windows_at_the_origins():
    image = np.arange(40 * 30).reshape(40, 30)
    crops = fixed_crops(image, 16, 5)
    assert [crop.shape for crop in crops] == [(16, 16)] * 5
    np.testing.assert_array_equal(crops[0], image[12:28, 7:23])
    np.testing.assert_array_equal(crops[4], image[-16:, -16:])


def test_pad_to_centres_a_short_side_in_zeros_and_leaves_a_large_image_alone():
    image = np.full((10, 40, 3), 7, np.uint8)
    padded = pad_to(image, 16)
    assert padded.shape == (16, 40, 3)
    assert (padded[3:13] == 7).all() and not padded[:3].any() and not padded[13:].any()
    assert pad_to(image, 8) is image


def test_more_crops_than_anchors_is_refused():
    with pytest.raises(ValueError, match="num_crops"):
        crop_origins(300, 300, 100, 10)
