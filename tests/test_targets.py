"""Training targets: the class/weight maps of separated cells and the distance targets."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from unetseg.prepare.targets import distance_target, training_target
from unetseg.prepare.weights import separate_touching


def _squares() -> np.ndarray:
    """``(40, 60)`` uint16: two 16x16 squares touching along x = 30, and one at the edge."""
    labels = np.zeros((40, 60), np.uint16)
    labels[10:26, 14:30] = 1
    labels[10:26, 30:46] = 2
    labels[0:12, 50:60] = 3
    return labels


def test_training_target_separates_touching_cells_and_weighs_the_gap() -> None:
    labels = _squares()
    classes, weights = training_target(labels, w0=10, sigma=5, balance=True, separate=True)
    np.testing.assert_array_equal(classes, separate_touching(labels) > 0)
    assert classes[18, 29] == 0 or classes[18, 30] == 0, "a background gap parts cells 1 and 2"
    assert weights[18, 29:31].max() > weights[18, 20] + 5, "the gap gets Eq. 2's border weight"
    assert weights.dtype == np.float32 and weights.shape == labels.shape
    joined, _ = training_target(labels, w0=10, sigma=5, balance=True, separate=False)
    np.testing.assert_array_equal(joined, labels > 0)


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
