"""Object matching and per-object outcomes (unetseg.score.matching) on hand-built label images."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from unetseg.score.matching import (
    PREDICTED_OUTCOMES,
    REFERENCE_OUTCOMES,
    THRESHOLDS,
    match_labels,
    pool,
)
from unetseg.score.metrics import overlap_matrix


def _boxes(shape: tuple[int, int], *boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    """Label image with rectangles ``(id, y0, y1, x0, x1)`` painted in order."""
    out = np.zeros(shape, np.uint16)
    for label, y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] = label
    return out


def _outcomes(m, side: str) -> list[str]:
    names = REFERENCE_OUTCOMES if side == "reference" else PREDICTED_OUTCOMES
    return [names[k] for k in getattr(m, side)]


def test_a_perfect_match_with_other_ids_is_perfect_at_every_threshold() -> None:
    gt = _boxes((30, 30), (5, 0, 10, 0, 10), (900, 12, 20, 3, 25), (17, 22, 30, 22, 30))
    pred = _boxes((30, 30), (2, 0, 10, 0, 10), (1, 12, 20, 3, 25), (3, 22, 30, 22, 30))
    m = match_labels(gt, pred)
    assert m.tp.tolist() == [3] * 5 and m.fp.tolist() == m.fn.tolist() == [0] * 5
    assert _outcomes(m, "reference") == _outcomes(m, "predicted") == ["matched"] * 3
    summary = m.summary()
    for key in ("precision_50", "recall_50", "pq_50", "ap",
                *(f"f1_{p}" for p in range(50, 91, 10))):
        assert summary[key] == 1.0, key
    assert summary["outline_ratio"] == 1.0
    assert [summary[k] for k in ("n_missed", "n_merged", "n_split", "n_false_positive")] == \
        [0, 0, 0, 0]


def test_a_missed_cell_and_a_false_positive() -> None:
    gt = _boxes((30, 30), (1, 0, 10, 0, 10), (2, 15, 25, 15, 25))
    pred = _boxes((30, 30), (7, 0, 10, 0, 10), (8, 26, 30, 0, 5), (9, 12, 14, 12, 14))
    m = match_labels(gt, pred)
    assert _outcomes(m, "reference") == ["matched", "missed"]
    assert _outcomes(m, "predicted") == ["matched", "false_positive", "false_positive"]
    assert (m.tp[0], m.fp[0], m.fn[0]) == (1, 2, 1)
    summary = m.summary()
    assert summary["precision_50"] == pytest.approx(1 / 3)
    assert summary["recall_50"] == pytest.approx(1 / 2)
    assert summary["f1_50"] == pytest.approx(2 / (2 + 2 + 1))
    assert summary["ap_50"] == pytest.approx(1 / 4)
    assert summary["pq_50"] == pytest.approx(1 / (1 + 2 / 2 + 1 / 2))
    assert (summary["n_missed"], summary["n_false_positive"]) == (1, 2)


def test_a_cell_covered_too_poorly_is_missed_and_its_prediction_a_false_positive() -> None:
    gt = _boxes((20, 20), (1, 0, 10, 0, 10))
    pred = _boxes((20, 20), (1, 0, 10, 4, 20))  # 60 of 100 px, but IoU 60 / 200
    m = match_labels(gt, pred)
    assert _outcomes(m, "reference") == ["missed"]
    assert _outcomes(m, "predicted") == ["false_positive"]


def test_two_cells_merged_into_one_prediction() -> None:
    gt = _boxes((12, 30), (1, 0, 10, 0, 10), (2, 0, 10, 14, 24))
    pred = _boxes((12, 30), (4, 0, 10, 0, 24))  # IoU 100 / 240 with each
    m = match_labels(gt, pred)
    assert _outcomes(m, "reference") == ["merged", "merged"]
    assert _outcomes(m, "predicted") == ["merge"]
    assert (m.tp[0], m.fp[0], m.fn[0]) == (0, 1, 2)
    assert m.summary()["n_merged"] == 2 and m.summary()["outline_ratio"] == 0.0


def test_a_merge_that_still_matches_the_larger_cell() -> None:
    gt = _boxes((12, 30), (1, 0, 10, 0, 20), (2, 0, 10, 20, 26))  # 200 and 60 px
    pred = _boxes((12, 30), (3, 0, 10, 0, 26))  # IoU 200 / 260 with cell 1
    m = match_labels(gt, pred)
    assert _outcomes(m, "reference") == ["matched", "merged"]
    assert _outcomes(m, "predicted") == ["matched"]
    assert m.outline.tolist() == [260 / 200]


def test_one_cell_split_in_two() -> None:
    gt = _boxes((12, 30), (1, 0, 10, 0, 20))
    pred = _boxes((12, 30), (1, 0, 10, 0, 9), (2, 0, 10, 11, 20))  # IoU 90 / 200 each
    m = match_labels(gt, pred)
    assert _outcomes(m, "reference") == ["split"]
    assert _outcomes(m, "predicted") == ["fragment", "fragment"]
    assert m.summary()["n_split"] == 1 and m.summary()["n_false_positive"] == 0
    uneven = _boxes((12, 30), (1, 0, 10, 0, 13), (2, 0, 10, 13, 20))  # 65 / 35
    m = match_labels(gt, uneven)
    assert _outcomes(m, "reference") == ["matched"]
    assert _outcomes(m, "predicted") == ["matched", "fragment"]


def test_outline_ratio_of_a_dilated_prediction() -> None:
    gt = _boxes((30, 30), (1, 5, 15, 5, 15), (2, 20, 28, 18, 28))  # 100 and 80 px
    grown = ndimage.binary_dilation(gt == 1, np.ones((3, 3), bool))  # 12 x 12
    pred = np.where(grown, 1, np.where(gt == 2, 2, 0)).astype(np.uint16)
    m = match_labels(gt, pred)
    assert sorted(m.outline.tolist()) == [1.0, 1.44]
    assert m.summary()["outline_ratio"] == pytest.approx((1.0 + 1.44) / 2)


def test_an_iou_of_065_counts_at_05_and_06_and_not_at_07() -> None:
    gt = _boxes((3, 20), (1, 1, 2, 0, 20))  # 20 px
    pred = _boxes((3, 20), (1, 1, 2, 0, 13))  # 13 px inside: IoU 13 / 20
    m = match_labels(gt, pred)
    assert m.tp.tolist() == [1, 1, 0, 0, 0]
    summary = m.summary()
    assert (summary["ap_50"], summary["ap_60"], summary["ap_70"], summary["f1_90"]) == \
        (1.0, 1.0, 0.0, 0.0)
    assert summary["pq_50"] == pytest.approx(0.65) and summary["ap"] == pytest.approx(0.4)
    exact = _boxes((3, 20), (1, 1, 2, 0, 12))  # IoU exactly 0.6
    assert match_labels(gt, exact).tp.tolist() == [1, 1, 0, 0, 0]


def test_pooling_two_images_equals_both_side_by_side() -> None:
    gt1 = _boxes((20, 20), (1, 0, 10, 0, 10), (2, 12, 20, 12, 20))
    pred1 = _boxes((20, 20), (1, 0, 10, 1, 11))
    gt2 = _boxes((20, 20), (1, 0, 10, 0, 20))
    pred2 = _boxes((20, 20), (1, 0, 10, 0, 9), (2, 0, 10, 11, 20), (3, 15, 18, 0, 5))
    pooled = pool([match_labels(gt1, pred1), match_labels(gt2, pred2)])
    both = match_labels(np.hstack([gt1, np.where(gt2 > 0, gt2 + 10, 0)]),
                        np.hstack([pred1, np.where(pred2 > 0, pred2 + 10, 0)]))
    for name in ("tp", "fp", "fn", "iou_sum", "reference", "predicted", "outline"):
        np.testing.assert_array_equal(getattr(pooled, name), getattr(both, name), err_msg=name)
    assert pooled.summary() == both.summary()
    assert (pooled.tp[0], pooled.fp[0], pooled.fn[0]) == (1, 3, 2)
    assert pooled.summary()["ap_50"] == pytest.approx(1 / 6), "pooled, not a mean of images"


def test_empty_images_score_one_and_bad_thresholds_are_refused() -> None:
    empty = np.zeros((5, 5), np.uint8)
    summary = match_labels(empty, empty).summary()
    assert summary["ap"] == summary["precision_50"] == summary["pq_50"] == 1.0
    some = _boxes((5, 5), (1, 0, 2, 0, 2))
    assert match_labels(empty, some).summary()["precision_50"] == 0.0
    assert match_labels(some, empty).summary()["recall_50"] == 0.0
    with pytest.raises(ValueError, match="include 0.5"):
        match_labels(some, some, thresholds=(0.3, 0.5))
    with pytest.raises(ValueError, match="include 0.5"):
        match_labels(some, some, thresholds=(0.75,))
    with pytest.raises(ValueError, match="at least one"):
        pool([])


def _brute_force(gt: np.ndarray, pred: np.ndarray) -> tuple[list[str], list[str], int]:
    """The module docstring's rules, object by object from the dense overlap matrix."""
    table = overlap_matrix(gt, pred)[1:, 1:]
    r, s = overlap_matrix(gt, pred)[1:].sum(axis=1), overlap_matrix(gt, pred)[:, 1:].sum(axis=0)
    pairs = sorted(((table[i, j] / (r[i] + s[j] - table[i, j]), i, j)
                    for i in range(len(r)) for j in range(len(s)) if table[i, j]),
                   key=lambda p: (-p[0], p[1], p[2]))
    ref_match: dict[int, int] = {}
    pred_match: dict[int, int] = {}
    for value, i, j in pairs:
        if value >= 0.5 and i not in ref_match and j not in pred_match:
            ref_match[i], pred_match[j] = j, i
    ref_in = {i: j for i in range(len(r)) for j in range(len(s)) if 2 * table[i, j] > r[i]}
    pred_in = {j: i for i in range(len(r)) for j in range(len(s)) if 2 * table[i, j] > s[j]}
    hosted = [sum(1 for j in ref_in.values() if j == k) for k in range(len(s))]
    homed = [sum(1 for i in pred_in.values() if i == k) for k in range(len(r))]
    reference = ["matched" if i in ref_match else
                 "merged" if i in ref_in and hosted[ref_in[i]] >= 2 else
                 "split" if homed[i] >= 2 else "missed" for i in range(len(r))]
    predicted = ["matched" if j in pred_match else "merge" if hosted[j] >= 2 else
                 "fragment" if j in pred_in and homed[pred_in[j]] >= 2 else "false_positive"
                 for j in range(len(s))]
    return reference, predicted, len(ref_match)


grids = hnp.arrays(np.uint8, (6, 7), elements=st.integers(0, 5))


@settings(max_examples=150, deadline=None)
@given(grids, grids, hnp.arrays(bool, (12, 14)),
       hnp.arrays(np.uint8, 6, elements=st.integers(0, 4)))
def test_every_object_has_exactly_one_outcome_and_the_outcomes_partition(gt_grid, other_grid,
                                                                         noise, lut) -> None:
    """Random reference blocks; the prediction relabels them through ``lut`` (several cells to
    one: merges) and is overwritten by other random blocks where ``noise`` (splits, misses)."""
    gt = gt_grid.repeat(2, 0).repeat(2, 1)
    pred = np.where(noise, other_grid.repeat(2, 0).repeat(2, 1) * 7, lut[gt] * 3)
    m = match_labels(gt, pred)
    reference, predicted, n_matched = _brute_force(gt, pred)
    assert _outcomes(m, "reference") == reference
    assert _outcomes(m, "predicted") == predicted
    n_gt, n_pred = len(np.unique(gt[gt > 0])), len(np.unique(pred[pred > 0]))
    assert m.reference.size == n_gt and m.predicted.size == n_pred
    assert m.tp[0] == n_matched == reference.count("matched") == predicted.count("matched")
    assert m.fn[0] == sum(reference.count(k) for k in ("merged", "split", "missed"))
    assert m.fp[0] == sum(predicted.count(k) for k in ("merge", "fragment", "false_positive"))
    assert np.all(np.diff(m.tp) <= 0) and m.outline.size == m.tp[0]
    assert len(m.thresholds) == len(THRESHOLDS)
