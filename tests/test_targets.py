"""Training targets: instance erosion, the class/weight maps built on it, distance targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unetseg.targets import distance_target, erode_instances, training_target
from unetseg.weights import separate_touching


def _squares() -> np.ndarray:
    """``(40, 60)`` uint16: two 16x16 squares touching along x = 30, and one at the edge."""
    labels = np.zeros((40, 60), np.uint16)
    labels[10:26, 14:30] = 1
    labels[10:26, 30:46] = 2
    labels[0:12, 50:60] = 3
    return labels


def test_zero_radius_is_identity() -> None:
    labels = _squares()
    assert erode_instances(labels, 0) is labels


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_erosion_shrinks_each_cell_from_background_and_neighbours(radius: int) -> None:
    labels = _squares()
    eroded = erode_instances(labels, radius)
    assert eroded.dtype == labels.dtype
    for cell in (1, 2):
        expected = ndimage.binary_erosion(labels == cell, iterations=radius, border_value=0)
        np.testing.assert_array_equal(eroded == cell, expected)
    gap = 20 + np.flatnonzero(eroded[18, 20:40] == 0)
    assert gap.min() == 30 - radius and gap.max() == 29 + radius, "2 * radius gap between cells"


def test_image_edge_is_not_a_cell_border() -> None:
    eroded = erode_instances(_squares(), 2)
    assert (eroded[0, 52:58] == 3).all() and (eroded[0:10, 59] == 3).all()
    assert (eroded[10:12, 50:60] == 0).all() and (eroded[:, 50:52] == 0).all()


def test_thin_cells_vanish_and_large_ids_survive() -> None:
    labels = np.zeros((30, 30), np.int64)
    labels[5:8, 5:25] = 2**40
    labels[12:28, 5:25] = 7
    eroded = erode_instances(labels, 2)
    assert set(np.unique(eroded)) == {0, 7}


def test_training_target_is_built_on_eroded_cells() -> None:
    labels = _squares()
    plain_classes, plain_weights = training_target(labels, w0=10, sigma=5, balance=True,
                                                   separate=True)
    classes, weights = training_target(labels, w0=10, sigma=5, balance=True, separate=True,
                                       erode=2)
    np.testing.assert_array_equal(classes, erode_instances(separate_touching(labels), 2) > 0)
    assert classes.sum() < plain_classes.sum() and (classes <= plain_classes).all()
    assert weights[18, 30] > plain_weights[18, 20], "the widened gap keeps the border weight"
    assert weights.dtype == np.float32 and weights.shape == labels.shape


def test_distance_target_is_exact_where_the_tile_shows_the_nearest_background() -> None:
    yy, xx = np.mgrid[:60, :60]
    whole = ((yy - 30) ** 2 + (xx - 30) ** 2 < 15 ** 2).astype(np.uint8)
    cut = ((yy - 30) ** 2 + (xx - 55) ** 2 < 15 ** 2).astype(np.uint8)  # runs off the right edge
    full = np.ones((60, 60), np.uint8)  # no background in the tile at all
    weights = np.ones((3, 60, 60), np.float32)
    weights[0, :, :5] = 0  # mirrored context
    target, mask = distance_target(np.stack([whole, cut, full]), weights, clip=10.0)
    assert target.shape == mask.shape == (3, 60, 60) and target.dtype == mask.dtype == np.float32
    exact = np.minimum(ndimage.distance_transform_edt(whole), 10.0) / 10.0
    np.testing.assert_allclose(target[0], exact, atol=1e-6)
    assert (mask[0, :, 5:] == 1).all() and (mask[0, :, :5] == 0).all()
    assert target[0].max() == 1.0 and (target[0][whole == 0] == 0).all()
    # near the right edge the cut disk's true background may lie outside: not counted
    assert (mask[1, 30, 52:] == 0).all() and mask[1, 30, 42] == 1 and target[1, 30, 42] > 0
    inside = np.minimum(np.minimum(yy + 1, 60 - yy), np.minimum(xx + 1, 60 - xx)) >= 10
    assert (target[2] == 1).all() and (mask[2] == inside).all()


def test_annotated_region_is_the_reach_around_cells():
    from unetseg.targets import annotated_region

    mask = np.zeros((40, 60), np.uint16)
    mask[10, 10] = 3
    region = annotated_region(mask, 5.0)
    yy, xx = np.mgrid[:40, :60]
    np.testing.assert_array_equal(region, (yy - 10) ** 2 + (xx - 10) ** 2 <= 25)
    assert not annotated_region(np.zeros((5, 5), np.uint8), 5.0).any()


def test_partial_annotation_ignores_pixels_far_from_annotated_cells():
    mask = np.zeros((80, 80), np.uint16)
    mask[10:25, 10:25] = 1
    mask[10:25, 25:40] = 2
    kw = dict(w0=10.0, sigma=5.0, balance=True, separate=True)
    classes, weights = training_target(mask, **kw, ignore_beyond=8.0)
    plain_classes, plain_weights = training_target(mask, **kw)
    np.testing.assert_array_equal(classes, plain_classes)
    assert (weights[50:, :] == 0).all() and (weights[:, 60:] == 0).all()
    assert (weights[mask > 0] > 0).all() and weights[5, 20] > 0
    gap = (mask > 0) & (classes == 0)
    assert weights[gap].min() > 5, "the gap between the cells keeps Eq. 2's border weight"
    assert (weights > 0).sum() < 0.5 * (plain_weights > 0).sum()
    _, none = training_target(np.zeros((20, 20), np.uint16), **kw, ignore_beyond=8.0)
    assert not none.any()
