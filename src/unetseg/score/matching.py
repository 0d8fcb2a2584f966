"""Object matching: which predicted cell is which reference cell, and what went wrong per cell.

From the one overlap table of two ``(Y, X)`` label images
(:func:`unetseg.score.metrics.overlap_table`) this module computes the intersection over
union (IoU) of every overlapping (reference, prediction) pair, then

**Matching at IoU thresholds** ``t`` in :data:`THRESHOLDS` (0.5 ... 0.9): a pair matches when
its IoU >= t, one to one. IoU >= 0.5 implies that the pair shares at least half of each
object, so the matches are unique without an assignment solver (StarDist's
``matching.py`` solves one for every threshold); the one tie left, an object made of exactly
two halves of the other at IoU exactly 0.5, goes to the lower id. From the matches:
true positives TP, false positives FP = predictions - TP, false negatives FN = references -
TP, and

- precision TP / (TP + FP), recall TP / (TP + FN), F1 2TP / (2TP + FP + FN);
- average precision AP = TP / (TP + FP + FN) (the DSB 2018 / StarDist "accuracy");
- panoptic quality PQ = (sum of the matched pairs' IoU) / (TP + FP / 2 + FN / 2).

A ratio whose denominator is 0 is 1.0 when there is no reference and no predicted object
at all (nothing to find, nothing found), else 0.0.

**One outcome per object**, from the matches at IoU 0.5 and two "majority" relations:
a reference cell R *lies in* a prediction S when ``|R ∩ S| > |R| / 2`` (the Cell Tracking
Challenge's SEG match; at most one S), and S *lies in* R when ``|R ∩ S| > |S| / 2``.
The first rule that holds decides (:data:`REFERENCE_OUTCOMES`, :data:`PREDICTED_OUTCOMES`):

reference cell R
    1. ``matched``: matched at IoU >= 0.5;
    2. ``merged``: R lies in a prediction in which at least one other reference cell lies too;
    3. ``split``: at least two predictions lie in R;
    4. ``missed``: anything else (nothing there, or covered too poorly for IoU 0.5).

predicted cell S
    1. ``matched``: matched at IoU >= 0.5;
    2. ``merge``: at least two reference cells lie in S;
    3. ``fragment``: S lies in a reference cell in which at least one other prediction lies;
    4. ``false_positive``: anything else.

So a prediction that swallows a small cell but still matches its large neighbour at IoU
>= 0.5 counts as ``matched``, and the small cell as ``merged``; a cell cut 60/40 is matched
by its larger piece and the smaller piece is a ``fragment``. The outcomes partition each
side: ``matched + merged + split + missed`` = reference cells, with ``merged + split +
missed`` = FN at 0.5; ``matched + merge + fragment + false_positive`` = predicted cells, with
``merge + fragment + false_positive`` = FP at 0.5.

**Outline ratio**: predicted area / reference area of each pair matched at IoU 0.5; above
1 the predicted cells are too large, below too small. Reports take its median.

**Pooling** a test split (:func:`pool`) sums TP, FP, FN and the IoU sums over the images
before any ratio is taken, as the Cell Tracking Challenge pools SEG, and takes the median
outline ratio over all matched pairs of the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from unetseg.score.metrics import Overlap, overlap_table

THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
"""IoU thresholds of the matching statistics."""

REFERENCE_OUTCOMES: tuple[str, ...] = ("matched", "merged", "split", "missed")
"""What can happen to a reference cell; :attr:`Matching.reference` holds indices into this."""

PREDICTED_OUTCOMES: tuple[str, ...] = ("matched", "merge", "fragment", "false_positive")
"""What a predicted cell can be; :attr:`Matching.predicted` holds indices into this."""

ERROR_COUNTS: dict[str, tuple[str, str]] = {
    "n_missed": ("reference", "missed"),
    "n_merged": ("reference", "merged"),
    "n_split": ("reference", "split"),
    "n_false_positive": ("predicted", "false_positive"),
}
"""The per-object error counts a report shows: key -> (side, outcome)."""


@dataclass(frozen=True)
class Matching:
    """The matching of one image, or of several pooled (:func:`pool`).

    Attributes
    ----------
    thresholds : tuple of float
        The IoU thresholds, ``(T,)``.
    tp, fp, fn : np.ndarray
        ``(T,)`` int64 true positives, false positives and false negatives per threshold.
    iou_sum : np.ndarray
        ``(T,)`` float64 sum of the matched pairs' IoU per threshold.
    reference : np.ndarray
        ``(n_gt,)`` int8 outcome of every reference cell, an index into
        :data:`REFERENCE_OUTCOMES`; cell ``k - 1`` is object ``k`` of
        :func:`unetseg.score.metrics.object_index` (ids in increasing order).
    predicted : np.ndarray
        ``(n_pred,)`` int8 outcome of every predicted cell, an index into
        :data:`PREDICTED_OUTCOMES`, ordered likewise.
    outline : np.ndarray
        ``(TP at 0.5,)`` float64 predicted area / reference area of every pair matched at
        IoU 0.5, in reference order.
    """

    thresholds: tuple[float, ...]
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou_sum: np.ndarray
    reference: np.ndarray
    predicted: np.ndarray
    outline: np.ndarray

    def count(self, side: str, outcome: str) -> int:
        """How many ``"reference"`` or ``"predicted"`` cells have ``outcome``."""
        names = REFERENCE_OUTCOMES if side == "reference" else PREDICTED_OUTCOMES
        return int(np.count_nonzero(getattr(self, side) == names.index(outcome)))

    def stats(self, threshold: float) -> dict[str, float]:
        """``precision``, ``recall``, ``f1``, ``ap`` and ``pq`` at one of the thresholds."""
        k = self.thresholds.index(threshold)
        tp, fp, fn = int(self.tp[k]), int(self.fp[k]), int(self.fn[k])
        empty = self.reference.size == 0 and self.predicted.size == 0

        def ratio(num: float, den: float) -> float:
            return float(num / den) if den else (1.0 if empty else 0.0)

        return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
                "f1": ratio(2 * tp, 2 * tp + fp + fn), "ap": ratio(tp, tp + fp + fn),
                "pq": ratio(float(self.iou_sum[k]), tp + fp / 2 + fn / 2)}

    def error_counts(self) -> dict[str, int]:
        """The :data:`ERROR_COUNTS`: ``n_missed``, ``n_merged``, ``n_split``,
        ``n_false_positive``."""
        return {key: self.count(side, outcome) for key, (side, outcome) in ERROR_COUNTS.items()}

    def outline_ratio(self) -> float:
        """Median predicted / reference area over the matched pairs; 0.0 without any."""
        return float(np.median(self.outline)) if self.outline.size else 0.0

    def summary(self) -> dict[str, float | int]:
        """The flat keys a report shows (all thresholds' suffix is the IoU in percent).

        ``precision_50``, ``recall_50`` and ``pq_50`` at IoU 0.5 (they share TP with F1 and
        AP); ``f1_50`` ... ``f1_90`` and ``ap_50`` ... ``ap_90`` at every threshold, ``ap``
        their mean (the AP averaged over thresholds, as in the DSB 2018 ranking); the
        :meth:`error_counts`; ``outline_ratio`` (:meth:`outline_ratio`). Plain Python
        numbers. Needs 0.5 among the thresholds.
        """
        at = {t: self.stats(t) for t in self.thresholds}
        out: dict[str, float | int] = {f"{k}_50": at[0.5][k] for k in ("precision", "recall", "pq")}
        for key in ("f1", "ap"):
            out.update({f"{key}_{_percent(t)}": at[t][key] for t in self.thresholds})
        out["ap"] = float(np.mean([at[t]["ap"] for t in self.thresholds]))
        out.update(self.error_counts())
        out["outline_ratio"] = self.outline_ratio()
        return out


def _percent(threshold: float) -> str:
    return str(round(threshold * 100))


def _at_least(count: np.ndarray, union: np.ndarray, threshold: float) -> np.ndarray:
    """``count / union >= threshold`` in exact integer arithmetic (0.6 is 3/5, not 0.59999...)."""
    frac = Fraction(threshold).limit_denominator(1000)
    return count * frac.denominator >= frac.numerator * union


def _one_to_one(gi: np.ndarray, pj: np.ndarray, iou: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Indices of the pairs kept as matches among the candidates ``hit``, one per object.

    Best IoU first, then lower ids; with IoU >= 0.5 an object has two candidates only in the
    exact-halves tie, which has no chains, so keeping the first per reference and then the
    first per prediction is the optimal assignment.
    """
    cand = np.flatnonzero(hit)
    order = cand[np.lexsort((pj[cand], gi[cand], -iou[cand]))]
    order = order[np.sort(np.unique(gi[order], return_index=True)[1])]
    return np.sort(order[np.unique(pj[order], return_index=True)[1]])


def match_overlap(ov: Overlap, thresholds: Sequence[float] = THRESHOLDS) -> Matching:
    """The :class:`Matching` of an overlap table (rules in the module docstring).

    Parameters
    ----------
    ov : the table of the two label images (:func:`unetseg.score.metrics.overlap_table`).
    thresholds : IoU thresholds, each in [0.5, 1], 0.5 among them (the outcomes use it).

    Raises
    ------
    ValueError
        On a threshold outside [0.5, 1], or without 0.5.
    """
    thresholds = tuple(float(t) for t in thresholds)
    if not all(0.5 <= t <= 1 for t in thresholds) or 0.5 not in thresholds:
        raise ValueError(f"IoU thresholds must lie in [0.5, 1] and include 0.5, got {thresholds}")
    gi, pj, c = ov.object_pairs()
    r, s = ov.gt_sizes[gi], ov.pred_sizes[pj]
    union = r + s - c
    iou = c / union
    kept = {t: _one_to_one(gi, pj, iou, _at_least(c, union, t)) for t in thresholds}
    tp = np.array([kept[t].size for t in thresholds], np.int64)
    iou_sum = np.array([iou[kept[t]].sum() for t in thresholds], np.float64)
    at_half = kept[0.5]
    ref_matched = np.zeros(ov.n_gt + 1, bool)
    ref_matched[gi[at_half]] = True
    pred_matched = np.zeros(ov.n_pred + 1, bool)
    pred_matched[pj[at_half]] = True
    ref_in_pred = 2 * c > r  # R lies in S
    pred_in_ref = 2 * c > s  # S lies in R
    refs_per_pred = np.bincount(pj[ref_in_pred], minlength=ov.n_pred + 1)
    preds_per_ref = np.bincount(gi[pred_in_ref], minlength=ov.n_gt + 1)
    merged = np.zeros(ov.n_gt + 1, bool)
    merged[gi[ref_in_pred & (refs_per_pred[pj] >= 2)]] = True
    fragment = np.zeros(ov.n_pred + 1, bool)
    fragment[pj[pred_in_ref & (preds_per_ref[gi] >= 2)]] = True
    reference = np.select([ref_matched, merged, preds_per_ref >= 2], [0, 1, 2], 3)[1:]
    predicted = np.select([pred_matched, refs_per_pred >= 2, fragment], [0, 1, 2], 3)[1:]
    return Matching(thresholds=thresholds, tp=tp, fp=ov.n_pred - tp, fn=ov.n_gt - tp,
                    iou_sum=iou_sum,
                    reference=reference.astype(np.int8), predicted=predicted.astype(np.int8),
                    outline=(s[at_half] / r[at_half]).astype(np.float64))


def match_labels(gt: np.ndarray, pred: np.ndarray,
                 thresholds: Sequence[float] = THRESHOLDS) -> Matching:
    """Match two label images (see :func:`match_overlap`).

    Parameters
    ----------
    gt, pred : np.ndarray
        ``(Y, X)`` non-negative integer instance labels of the same shape, 0 = background;
        ``gt`` is the reference.
    thresholds : as :func:`match_overlap`.

    Raises
    ------
    ValueError
        On different shapes, non-integer dtype, negative ids or bad thresholds.
    """
    return match_overlap(overlap_table(gt, pred), thresholds)


def pool(matchings: Sequence[Matching]) -> Matching:
    """The matchings of several images as one: counts and IoU sums summed, outcomes and
    outline ratios concatenated in the given order.

    Raises
    ------
    ValueError
        With no matchings, or matchings at different thresholds.
    """
    if not matchings:
        raise ValueError("pool needs at least one matching, got none")
    thresholds = matchings[0].thresholds
    if any(m.thresholds != thresholds for m in matchings):
        raise ValueError("cannot pool matchings at different IoU thresholds")

    def total(name: str) -> np.ndarray:
        return np.sum([getattr(m, name) for m in matchings], axis=0)

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(m, name) for m in matchings])

    return Matching(thresholds=thresholds, tp=total("tp"), fp=total("fp"), fn=total("fn"),
                    iou_sum=total("iou_sum"), reference=joined("reference"),
                    predicted=joined("predicted"), outline=joined("outline"))
