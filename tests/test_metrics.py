"""Segmentation metrics on hand-built label images with hand-computed expected values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error

from unetseg.score.metrics import (
    aggregate,
    dice,
    evaluate_pair,
    iou,
    object_counts,
    object_index,
    overlap_matrix,
    overlap_table,
    pixel_error,
    rand_error,
    seg_score,
)


def _boxes(shape: tuple[int, int], *boxes: tuple[int, int, int, int, int],
           dtype: type = np.uint16) -> np.ndarray:
    """Label image with rectangles ``(id, y0, y1, x0, x1)`` painted in order."""
    out = np.zeros(shape, dtype)
    for label, y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] = label
    return out


# ---------------------------------------------------------------- overlap_matrix

def test_overlap_matrix_hand_built_with_non_consecutive_ids() -> None:
    gt = np.array([[0, 0, 7, 7],
                   [3, 3, 7, 7],
                   [3, 3, 0, 0]], np.int32)
    pred = np.array([[0, 50, 50, 0],
                     [9, 9, 50, 0],
                     [0, 9, 0, 0]], np.int64)
    # rows: bg, 3, 7; cols: bg, 9, 50
    expected = np.array([[3, 0, 1],
                         [1, 3, 0],
                         [2, 0, 2]])
    table = overlap_matrix(gt, pred)
    assert table.dtype == np.int64
    np.testing.assert_array_equal(table, expected)


def test_overlap_matrix_huge_ids_match_small_ids() -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 6, (40, 50))
    pred = rng.integers(0, 9, (40, 50))
    small = overlap_matrix(gt, pred)
    huge = overlap_matrix(gt * 10**12, pred.astype(np.uint64) * np.uint64(2**60 // 9))
    np.testing.assert_array_equal(small, huge)
    assert small.sum() == gt.size
    np.testing.assert_array_equal(small[1:].sum(axis=1), np.bincount(gt.ravel())[1:])


def test_overlap_matrix_thousand_objects() -> None:
    gt = (np.arange(32 * 32).reshape(32, 32) + 1).repeat(2, 0).repeat(2, 1)  # 1024 2x2 blocks
    pred = np.roll(gt, 1, axis=1)
    table = overlap_matrix(gt, pred)
    assert table.shape == (1025, 1025)
    assert table[1:, 1:].max() == 2 and table[0].sum() == 0
    np.testing.assert_array_equal(np.diag(table)[1:], np.full(1024, 2))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        seg_score(np.zeros((4, 5), np.uint16), np.zeros((5, 4), np.uint16))


def test_rejects_float_and_negative_labels() -> None:
    with pytest.raises(ValueError, match="integer"):
        iou(np.zeros((3, 3), np.float32), np.zeros((3, 3), np.uint16))
    with pytest.raises(ValueError, match=">= 0"):
        overlap_matrix(np.zeros((3, 3), np.uint16), np.full((3, 3), -1, np.int32))


# ---------------------------------------------------------------- seg_score

def test_seg_identity_with_permuted_non_consecutive_ids() -> None:
    gt = _boxes((30, 30), (5, 0, 10, 0, 10), (60000, 12, 20, 3, 25), (17, 22, 30, 22, 30))
    pred = _boxes((30, 30), (2, 0, 10, 0, 10), (1, 12, 20, 3, 25), (900, 22, 30, 22, 30),
                  dtype=np.int64)
    assert seg_score(gt, pred) == 1.0
    assert object_counts(gt, pred) == {"n_gt": 3, "n_pred": 3, "n_matched": 3}


def test_seg_shifted_object_exact_jaccard() -> None:
    gt = _boxes((20, 20), (1, 5, 15, 5, 15))
    pred = _boxes((20, 20), (1, 5, 15, 7, 17))  # 10x8 = 80 shared, union 120
    assert seg_score(gt, pred) == pytest.approx(80 / 120, rel=1e-12)


def test_seg_split_in_halves_scores_zero_for_that_object() -> None:
    gt = _boxes((20, 30), (1, 0, 10, 0, 10), (2, 0, 10, 15, 25))
    pred = _boxes((20, 30), (1, 0, 5, 0, 10), (2, 5, 10, 0, 10), (3, 0, 10, 15, 25))
    # object 1 split 50/50: neither half is > 50 %; object 2 exact
    assert seg_score(gt, pred) == pytest.approx(0.5, rel=1e-12)
    assert object_counts(gt, pred)["n_matched"] == 1


def test_seg_merge_matches_each_reference_by_its_own_overlap() -> None:
    gt = _boxes((20, 30), (1, 0, 10, 0, 10), (2, 0, 10, 10, 16))  # 100 and 60 px
    merged = _boxes((20, 30), (4, 0, 10, 0, 16))  # covers both: 160 px
    assert seg_score(gt, merged) == pytest.approx((100 / 160 + 60 / 160) / 2, rel=1e-12)
    partial = _boxes((20, 30), (4, 0, 10, 0, 10), (4, 0, 5, 10, 15))  # all of 1, 25 of 60 of 2
    assert seg_score(gt, partial) == pytest.approx((100 / 125 + 0) / 2, rel=1e-12)
    assert object_counts(gt, partial) == {"n_gt": 2, "n_pred": 1, "n_matched": 1}


def test_seg_just_over_half_matches_and_exactly_half_does_not() -> None:
    gt = _boxes((4, 10), (1, 0, 1, 0, 10))  # 10 px
    over = _boxes((4, 10), (1, 0, 1, 0, 6))  # 6 > 5
    half = _boxes((4, 10), (1, 0, 1, 0, 5))  # 5 = 5
    assert seg_score(gt, over) == pytest.approx(0.6, rel=1e-12)
    assert seg_score(gt, half) == 0.0


def test_seg_missing_object_and_extra_predictions() -> None:
    gt = _boxes((30, 30), (1, 0, 10, 0, 10), (2, 15, 25, 15, 25))
    pred = _boxes((30, 30), (1, 0, 10, 0, 10))
    assert seg_score(gt, pred) == pytest.approx(0.5, rel=1e-12)
    extra = pred.copy()
    extra[26:30, 0:5] = 8
    extra[12:14, 12:14] = 9
    assert seg_score(gt, extra) == seg_score(gt, pred)


def test_seg_empty_reference() -> None:
    empty = np.zeros((8, 8), np.uint16)
    assert seg_score(empty, empty) == 1.0
    assert seg_score(empty, _boxes((8, 8), (1, 2, 4, 2, 4))) == 0.0


def test_seg_thousands_of_objects() -> None:
    gt = (np.arange(64 * 64).reshape(64, 64) + 1).repeat(3, 0).repeat(3, 1)  # 4096 3x3 blocks
    pred = np.roll(gt, 1, axis=1)  # each block keeps 6 of 9 px: J = 6 / 12
    assert seg_score(gt, pred) == pytest.approx(0.5, rel=1e-12)
    assert object_counts(gt, pred)["n_matched"] == 4096


# ---------------------------------------------------------------- iou / dice / pixel_error

def test_foreground_scores_exact() -> None:
    gt = np.array([[1, 1, 1, 0, 0],
                   [2, 2, 2, 0, 0],
                   [0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0]], np.uint16)  # 6 px
    pred = np.array([[0, 0, 5, 5, 0],
                     [3, 3, 0, 0, 0],
                     [0, 0, 0, 0, 0],
                     [0, 0, 0, 0, 4]], np.uint16)  # 5 px, 3 shared
    assert iou(gt, pred) == pytest.approx(3 / 8, rel=1e-12)
    assert dice(gt, pred) == pytest.approx(6 / 11, rel=1e-12)
    assert pixel_error(gt, pred) == pytest.approx(5 / 20, rel=1e-12)


def test_foreground_scores_ignore_ids_and_handle_empty() -> None:
    a = _boxes((10, 10), (1, 0, 5, 0, 5), (2, 5, 10, 5, 10))
    b = np.where(a > 0, 77, 0)
    assert iou(a, b) == 1.0 and dice(a, b) == 1.0 and pixel_error(a, b) == 0.0
    empty = np.zeros((10, 10), np.uint8)
    assert iou(empty, empty) == 1.0 and dice(empty, empty) == 1.0
    assert pixel_error(empty, empty) == 0.0
    assert iou(a, empty) == 0.0 and pixel_error(a, empty) == pytest.approx(0.5)


# ---------------------------------------------------------------- rand_error

def test_rand_error_zero_for_identical_and_permuted() -> None:
    gt = _boxes((20, 20), (1, 0, 10, 0, 10), (2, 0, 10, 10, 20), (3, 10, 20, 0, 20))
    assert rand_error(gt, gt) == 0.0
    permuted = np.choose(gt, [0, 30, 10, 20]).astype(np.int32)
    assert rand_error(gt, permuted) == 0.0


def test_rand_error_merge_hand_computed() -> None:
    gt = np.array([[1, 1, 2, 2]], np.uint16)
    merged = np.array([[5, 5, 5, 5]], np.uint16)
    # n_ij = [2, 2]: (8 - 4); t = [2, 2]: (8 - 4); s = [4]: (16 - 4) -> F = 8 / 16
    assert rand_error(gt, merged) == pytest.approx(0.5, rel=1e-12)
    assert rand_error(gt, merged) == pytest.approx(adapted_rand_error(gt, merged)[0], rel=1e-12)


def test_rand_error_ignores_predictions_on_gt_background() -> None:
    gt = _boxes((20, 20), (1, 0, 10, 0, 10), (2, 12, 20, 12, 20))
    pred = _boxes((20, 20), (1, 0, 10, 0, 10), (2, 12, 20, 12, 20), (3, 0, 5, 14, 20))
    assert rand_error(gt, pred) == 0.0
    assert rand_error(np.zeros_like(gt), pred) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_rand_error_agrees_with_skimage(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 5, (30, 40)).repeat(2, 0)
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 8, gt.shape)) * 3
    expected = adapted_rand_error(gt, pred)[0]
    assert 0 < expected < 1
    assert rand_error(gt, pred) == pytest.approx(expected, rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------- evaluate_pair / aggregate

def test_evaluate_pair_matches_single_metrics_and_is_json_ready() -> None:
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 4, (16, 16)).repeat(2, 1)
    pred = np.roll(gt, 1, axis=0)
    result = evaluate_pair(gt, pred)
    for key, fn in (("iou", iou), ("seg", seg_score), ("dice", dice),
                    ("pixel_error", pixel_error), ("rand_error", rand_error)):
        assert result[key] == fn(gt, pred), key
        assert type(result[key]) is float, key
    assert {k: result[k] for k in ("n_gt", "n_pred", "n_matched")} == object_counts(gt, pred)
    assert all(type(result[k]) is int for k in ("n_gt", "n_pred", "n_matched", "n_pixels"))
    assert json.loads(json.dumps(result)) == result


def test_aggregate_pools_objects_and_pixels() -> None:
    gt1 = _boxes((10, 10), (1, 0, 4, 0, 4))
    r1 = evaluate_pair(gt1, gt1)  # one object, J = 1
    gt2 = _boxes((20, 20), (1, 5, 15, 5, 15), (2, 0, 2, 18, 20), (3, 18, 20, 0, 2))
    pred2 = _boxes((20, 20), (1, 5, 15, 7, 17))  # J = 80/120 for object 1; 2 and 3 missed
    r2 = evaluate_pair(gt2, pred2)
    summary = aggregate([r1, r2])
    assert summary["seg"] == pytest.approx((1 + 80 / 120) / 4, rel=1e-12)
    # foreground: image 1: 16 & 16 shared 16; image 2: gt 108, pred 100, shared 80
    assert summary["iou"] == pytest.approx(96 / (16 + 128), rel=1e-12)
    assert summary["dice"] == pytest.approx(2 * 96 / (32 + 208), rel=1e-12)
    assert summary["pixel_error"] == pytest.approx(48 / 500, rel=1e-12)
    assert summary["rand_error"] == pytest.approx((r1["rand_error"] + r2["rand_error"]) / 2)
    assert (summary["n_gt"], summary["n_pred"], summary["n_matched"]) == (4, 2, 2)
    assert summary["n_images"] == 2


def test_aggregate_of_one_image_equals_that_image() -> None:
    gt = _boxes((20, 20), (1, 0, 8, 0, 8), (2, 10, 20, 10, 20))
    pred = _boxes((20, 20), (3, 1, 9, 0, 8), (4, 10, 20, 10, 16))
    result = evaluate_pair(gt, pred)
    summary = aggregate([result])
    for key in ("iou", "seg", "dice", "pixel_error", "rand_error", "n_gt", "n_pred", "n_matched"):
        assert summary[key] == pytest.approx(result[key], rel=1e-12), key


def test_aggregate_empty_references_and_bad_input() -> None:
    empty = np.zeros((6, 6), np.uint16)
    assert aggregate([evaluate_pair(empty, empty)])["seg"] == 1.0
    some = _boxes((6, 6), (1, 0, 2, 0, 2))
    assert aggregate([evaluate_pair(empty, empty), evaluate_pair(empty, some)])["seg"] == 0.0
    with pytest.raises(ValueError, match="at least one"):
        aggregate([])
    with pytest.raises(ValueError, match="seg_jaccard_sum"):
        aggregate([{"iou": 1.0}])


def test_overlap_table_is_the_sparse_overlap_matrix() -> None:
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 5, (20, 30)) * 11
    pred = rng.integers(0, 4, (20, 30)) * 1000
    ov = overlap_table(gt, pred)
    table = overlap_matrix(gt, pred)
    assert (ov.n_gt, ov.n_pred) == (4, 3)
    np.testing.assert_array_equal(table[ov.gi, ov.pj], ov.count)
    assert ov.count.sum() == gt.size and np.all(ov.count > 0)
    gi, pj, count = ov.object_pairs()
    assert np.all(gi > 0) and np.all(pj > 0) and count.sum() == table[1:, 1:].sum()
    index, n = object_index(gt)
    np.testing.assert_array_equal(index.reshape(gt.shape), gt // 11)
    assert n == 4
