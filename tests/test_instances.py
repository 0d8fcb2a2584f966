"""Instance extraction from synthetic probability maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import expand_labels

from unetseg.infer.instances import _grow, label_instances
from unetseg.score.metrics import seg_score

SHAPE = (64, 96)


def _two_touching_disks(radius: int = 15, dx: int = 26) -> np.ndarray:
    """``(Y, X)`` uint16 labels: two overlapping disks, the second cut where they meet."""
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    c1, c2 = (32, 30), (32, 30 + dx)
    d1 = (yy - c1[0]) ** 2 + (xx - c1[1]) ** 2 <= radius ** 2
    d2 = (yy - c2[0]) ** 2 + (xx - c2[1]) ** 2 <= radius ** 2
    gt = np.zeros(SHAPE, np.uint16)
    gt[d1] = 1
    gt[d2 & (xx > (c1[1] + c2[1]) // 2)] = 2
    return gt


def _prob(labels: np.ndarray, gap: bool) -> np.ndarray:
    """Foreground probability of ``labels``; with ``gap``, pixels next to another cell are low."""
    fg = labels > 0
    if gap:
        top = ndimage.maximum_filter(labels, size=3)
        low = ndimage.minimum_filter(np.where(fg, labels, labels.max() + 1), size=3)
        fg &= (top == labels) & (low == labels)
    return np.where(fg, 0.9, 0.1).astype(np.float32)


def test_gap_separates_touching_cells_and_growth_restores_them() -> None:
    gt = _two_touching_disks()
    prob = _prob(gt, gap=True)
    gap_px = int(np.count_nonzero((gt > 0) & (prob < 0.5)))
    assert 20 < gap_px < 80  # a 2-px seam along the contact
    raw = label_instances(prob, border_px=0)
    grown = label_instances(prob, border_px=1)
    assert raw.dtype == np.uint16 and grown.dtype == np.uint16
    assert raw.max() == 2 and grown.max() == 2
    assert set(np.unique(grown)) == {0, 1, 2}
    missing_raw = np.count_nonzero(gt > 0) - np.count_nonzero(raw > 0)
    missing_grown = np.count_nonzero(gt > 0) - np.count_nonzero(grown > 0)
    assert missing_raw == gap_px
    assert abs(missing_grown) <= 0.3 * gap_px
    # Outer outlines untouched: growth only in the seam (and its notches at x = 43 +- 2).
    far_from_seam = np.abs(np.arange(SHAPE[1]) - 43) > 2
    assert not np.any(grown[:, far_from_seam][gt[:, far_from_seam] == 0])
    assert np.array_equal(grown[:, far_from_seam] > 0, gt[:, far_from_seam] > 0)
    assert seg_score(gt, grown) > 0.98 and seg_score(gt, grown) > seg_score(gt, raw)


def test_without_gap_components_merge_touching_cells() -> None:
    gt = _two_touching_disks()
    assert label_instances(_prob(gt, gap=False)).max() == 1


def test_grow_everywhere_is_expand_labels() -> None:
    gt = _two_touching_disks()
    prob = _prob(gt, gap=True)
    raw = label_instances(prob, border_px=0)
    everywhere = label_instances(prob, border_px=2, into="all")
    np.testing.assert_array_equal(everywhere, expand_labels(raw, distance=2))
    assert np.count_nonzero(everywhere[gt == 0]) > 0


def test_min_size_removes_specks_and_keeps_exact_size() -> None:
    labels = np.zeros((40, 40), np.uint16)
    labels[2:12, 2:12] = 1  # 100 px
    labels[20:23, 20:23] = 2  # 9 px speck
    labels[30:34, 30:35] = 3  # exactly 20 px
    prob = np.where(labels > 0, 1.0, 0.0).astype(np.float32)
    out = label_instances(prob, min_size=20, border_px=0)
    assert out.max() == 2
    assert not out[20:23, 20:23].any()
    assert np.count_nonzero(out == out[31, 31]) == 20
    assert label_instances(prob, min_size=5, border_px=0).max() == 3
    assert label_instances(prob, min_size=0, border_px=0).max() == 3


def test_threshold_and_four_connectivity() -> None:
    prob = np.zeros((10, 10), np.float32)
    prob[2:5, 2:5] = 0.7
    prob[5:8, 5:8] = 0.7  # touches the first square only diagonally
    assert label_instances(prob, min_size=0, border_px=0).max() == 2
    assert label_instances(prob, threshold=0.75, min_size=0).max() == 0


def test_watershed_splits_overlapping_disks_without_gap() -> None:
    gt = _two_touching_disks(dx=28)  # waist 11 px wide against 30-px disks
    prob = _prob(gt, gap=False)
    out = label_instances(prob, method="watershed", border_px=0)
    assert out.dtype == np.uint16 and out.max() == 2
    assert seg_score(gt, out) > 0.9
    np.testing.assert_array_equal(out > 0, gt > 0)


def test_watershed_cuts_only_necks_narrower_than_neck_ratio() -> None:
    gt = _two_touching_disks(dx=20)  # waist 22 px wide: 0.75 of the disks' 30 px
    prob = _prob(gt, gap=False)
    assert label_instances(prob, method="watershed", border_px=0).max() == 1
    assert label_instances(prob, method="watershed", border_px=0, neck_ratio=0.8).max() == 2
    assert label_instances(prob, method="watershed", border_px=0, neck_ratio=1.0).max() == 2


def test_watershed_keeps_a_lobe_whole_but_cuts_a_cell_on_a_stalk() -> None:
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    body = (yy - 32) ** 2 + (xx - 30) ** 2 <= 16 ** 2
    lobe = body | ((yy - 32) ** 2 + (xx - 52) ** 2 <= 9 ** 2)  # 18 px wide, 11-px neck
    stalk = body | ((yy - 32) ** 2 + (xx - 72) ** 2 <= 12 ** 2) \
        | ((abs(yy - 32) <= 2) & (xx > 40) & (xx < 64))
    for fg, expected in ((lobe, 1), (stalk, 2)):
        prob = np.where(fg, 0.95, 0.05).astype(np.float32)
        out = label_instances(prob, method="watershed", border_px=0, min_size=0)
        assert out.max() == expected
        np.testing.assert_array_equal(out > 0, fg)
    # without the neck test the lobe's own distance peak makes it a second cell
    lobe_prob = np.where(lobe, 0.95, 0.05).astype(np.float32)
    assert label_instances(lobe_prob, method="watershed", border_px=0, neck_ratio=1.0).max() == 2


def test_fill_holes_fills_inside_one_object_but_not_between_two() -> None:
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    r = np.hypot(yy - 32, xx - 30)
    ring = (r <= 14) & (r >= 5)
    fg = ring | (np.hypot(yy - 32, xx - 72) <= 12)  # a cell with a hole, and a plain one
    prob = np.where(fg, 0.95, 0.05).astype(np.float32)
    plain = label_instances(prob, border_px=0, min_size=0)
    filled = label_instances(prob, border_px=0, min_size=0, fill_holes=True)
    assert plain.max() == filled.max() == 2
    np.testing.assert_array_equal(filled > 0, ndimage.binary_fill_holes(fg))
    assert set(np.unique(filled[r < 5])) == {filled[32, 20]}
    # the same ring cut in two halves: its hole touches two objects and stays open
    halves = np.where(ring & (np.abs(xx - 30) > 0), 0.95, 0.05).astype(np.float32)
    split = label_instances(halves, border_px=0, min_size=0, fill_holes=True)
    assert split.max() == 2 and not split[r < 5].any()


def test_grow_handles_wide_label_dtypes() -> None:
    gt = _two_touching_disks()
    labels = label_instances(_prob(gt, gap=True), border_px=0).astype(np.int32)
    narrow = _grow(labels, 1, "gaps")
    np.testing.assert_array_equal(_grow(labels.astype(np.int64), 1, "gaps"), narrow)
    np.testing.assert_array_equal(_grow(labels.astype(np.uint16), 1, "gaps"), narrow)


def test_watershed_keeps_single_and_thin_objects() -> None:
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    fg = (yy - 30) ** 2 + (xx - 30) ** 2 <= 14 ** 2
    fg[60:62, 10:90] = True  # 2-px line: its distance peak is below h, so it has no marker
    prob = np.where(fg, 0.95, 0.05).astype(np.float32)
    out = label_instances(prob, method="watershed", border_px=0)
    assert out.max() == 2
    np.testing.assert_array_equal(out > 0, fg)


def test_deterministic_and_consecutive() -> None:
    rng = np.random.default_rng(7)
    prob = ndimage.gaussian_filter(rng.random((80, 80)), 3).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    for method in ("components", "watershed"):
        a = label_instances(prob, method=method, min_size=5)
        b = label_instances(prob.copy(), method=method, min_size=5)
        np.testing.assert_array_equal(a, b)
        assert a.max() > 1
        np.testing.assert_array_equal(np.unique(a), np.arange(a.max() + 1))


def test_more_than_65535_objects_give_uint32_labels_and_bad_arguments_fail() -> None:
    checker = (np.indices((512, 512)).sum(axis=0) % 2).astype(np.float32)  # 131072 isolated px
    many = label_instances(checker, min_size=0, border_px=0)
    assert many.dtype == np.uint32 and many.max() == 131072
    np.testing.assert_array_equal(many > 0, checker > 0.5)
    assert label_instances(checker[:256], min_size=0).dtype == np.uint32  # 65536 objects
    assert label_instances(checker[:255], min_size=0).dtype == np.uint16  # 65280
    with pytest.raises(ValueError, match="shape"):
        label_instances(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="method"):
        label_instances(np.zeros((4, 4), np.float32), method="blobs")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        label_instances(np.zeros((4, 4), np.float32), border_px=-1)
    for ratio in (0.0, 1.5):
        with pytest.raises(ValueError, match="neck_ratio"):
            label_instances(np.zeros((4, 4), np.float32), method="watershed", neck_ratio=ratio)


def test_distance_seeds_split_a_small_cell_lying_on_a_large_one() -> None:
    yy, xx = np.mgrid[:100, :100]
    big = (yy - 50) ** 2 + (xx - 45) ** 2 < 30 ** 2
    small = (yy - 50) ** 2 + (xx - 72) ** 2 < 12 ** 2  # mostly inside the big one: no neck
    truth = np.where(small, 2, np.where(big, 1, 0))
    prob = (big | small).astype(np.float32)
    distance = np.maximum(ndimage.distance_transform_edt(truth == 1),
                          ndimage.distance_transform_edt(truth == 2))
    plain = label_instances(prob, method="watershed", neck_ratio=0.5, border_px=0)
    assert plain.max() == 1, "the foreground alone shows no neck"
    split = label_instances(prob, method="distance", distance=distance, neck_ratio=0.5, border_px=0)
    assert split.max() == 2 and seg_score(truth, split) > 0.85
    assert label_instances(prob, method="distance", distance=np.where(big | small, 30.0, 0.0),
                           border_px=0).max() == 1, "one plateau, one cell"
    with pytest.raises(ValueError, match="distance map"):
        label_instances(prob, method="distance")
    with pytest.raises(ValueError, match="distance map"):
        label_instances(prob, method="distance", distance=distance[:50])
