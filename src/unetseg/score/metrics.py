"""Segmentation metrics as plain numpy: overlap table -> IoU -> matches -> scores.

Every function takes two ``(Y, X)`` integer instance label images of the same
shape (0 = background, any other value = one object; ids need not be
consecutive). ``gt`` is the reference, ``pred`` the prediction. The instance
scores (SEG, Rand error) all come from one sparse table of pixel counts per
(gt id, pred id) pair, built in O(pixels) with ``np.bincount``
(:func:`overlap_table`); :mod:`unetseg.score.matching` reads the same table.

Scores used by the U-Net paper (Ronneberger et al. 2015): the ISBI 2012 EM
challenge ranks by warping, Rand and pixel error (Sec. 3, Table 1); the ISBI
2015 cell tracking challenge ranks by IoU (Sec. 3, Table 2). SEG is the
official Cell Tracking Challenge segmentation measure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Keys that ``evaluate_pair`` adds so ``aggregate`` can pool images exactly.
_SUM_KEYS = ("seg_jaccard_sum", "fg_intersection", "fg_gt", "fg_pred", "n_pixels", "n_wrong")
_COUNT_KEYS = ("n_gt", "n_pred", "n_matched")


@dataclass(frozen=True)
class Overlap:
    """The non-zero cells of the overlap table between two label images, kept sparse.

    Objects are numbered by :func:`object_index` (0 = background, ``k`` = the k-th
    smallest non-zero id of that image).

    Attributes
    ----------
    gi, pj : np.ndarray
        ``(n_cells,)`` int64 reference / predicted object numbers of each non-zero cell,
        sorted by ``(gi, pj)``.
    count : np.ndarray
        ``(n_cells,)`` int64 pixels where reference object ``gi`` and predicted object
        ``pj`` overlap (background included as object 0).
    n_gt, n_pred : int
        Objects in the reference and in the prediction.
    gt_sizes, pred_sizes : np.ndarray
        ``(n_gt + 1,)`` / ``(n_pred + 1,)`` int64 pixel areas; index 0 = background.
    """

    gi: np.ndarray
    pj: np.ndarray
    count: np.ndarray
    n_gt: int
    n_pred: int
    gt_sizes: np.ndarray
    pred_sizes: np.ndarray

    def object_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(gi, pj, count)`` of the cells where two objects overlap (no background),
        each ``(n_pairs,)`` int64."""
        both = (self.gi > 0) & (self.pj > 0)
        return self.gi[both], self.pj[both], self.count[both]


def _check_pair(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"label images differ in shape: gt {gt.shape} vs pred {pred.shape}")
    for name, a in (("gt", gt), ("pred", pred)):
        if a.dtype != bool and not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} labels must be an integer array, got dtype {a.dtype}")
        if a.size and np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
            raise ValueError(f"{name} labels must be >= 0, got minimum {a.min()}")
    return gt, pred


def object_index(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Number the objects of a label image by id: 0 = background, k = the k-th smallest id.

    Parameters
    ----------
    labels : np.ndarray
        ``(Y, X)`` non-negative integer (or bool) instance labels.

    Returns
    -------
    tuple
        The ``(Y * X,)`` int64 object number of every pixel (row-major), and the number of
        objects.
    """
    flat = labels.ravel()
    if flat.dtype == bool:
        flat = flat.view(np.uint8)
    top = int(flat.max()) if flat.size else 0
    if top < max(2 * flat.size, 1 << 16):
        present = np.bincount(flat.astype(np.intp, copy=False), minlength=top + 1) > 0
        present[0] = False
        lut = np.cumsum(present, dtype=np.int64)
        return lut[flat], int(lut[-1])
    ids, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.astype(np.int64, copy=False)
    if ids[0] != 0:
        inverse += 1
    return inverse, int(np.count_nonzero(ids))


def _overlap(gt: np.ndarray, pred: np.ndarray) -> Overlap:
    g, n_gt = object_index(gt)
    p, n_pred = object_index(pred)
    width = n_pred + 1
    key = g * width + p
    cells = (n_gt + 1) * width
    if cells <= max(4 * key.size, 1 << 20):
        dense = np.bincount(key, minlength=cells)
        keys = np.flatnonzero(dense)
        count = dense[keys].astype(np.int64, copy=False)
    else:  # too many objects for a dense table: sort the pair keys instead
        keys, count = np.unique(key, return_counts=True)
        count = count.astype(np.int64, copy=False)
    gi, pj = np.divmod(keys.astype(np.int64, copy=False), width)
    gt_sizes = np.zeros(n_gt + 1, np.int64)
    pred_sizes = np.zeros(n_pred + 1, np.int64)
    np.add.at(gt_sizes, gi, count)
    np.add.at(pred_sizes, pj, count)
    return Overlap(gi, pj, count, n_gt, n_pred, gt_sizes, pred_sizes)


def _seg_matches(ov: Overlap) -> tuple[float, int]:
    """Sum of Jaccard over matched reference objects, and how many matched (CTC SEG)."""
    gi, pj, c = ov.object_pairs()
    r = ov.gt_sizes[gi]
    s = ov.pred_sizes[pj]
    match = 2 * c > r
    jaccard = c[match] / (r[match] + s[match] - c[match])
    return float(jaccard.sum()), int(np.count_nonzero(match))


def _seg_from(jaccard_sum: float, n_gt: int, n_pred: int) -> float:
    if n_gt == 0:
        return 1.0 if n_pred == 0 else 0.0
    return jaccard_sum / n_gt


def _rand_error(ov: Overlap) -> float:
    # Mirrors skimage.metrics.adapted_rand_error (alpha=0.5, ignore gt 0) on the shared table.
    fg = ov.gi > 0
    c = ov.count[fg]
    n = int(c.sum())
    t = ov.gt_sizes[1:]
    s = np.bincount(ov.pj[fg], weights=c, minlength=ov.n_pred + 1).astype(np.int64)
    same_both = int(c @ c) - n
    denominator = (int(t @ t) - n) + (int(s @ s) - n)
    if denominator == 0:
        return 0.0
    return 1.0 - 2.0 * same_both / denominator


def _fg_stats(gt: np.ndarray, pred: np.ndarray) -> tuple[int, int, int]:
    a, b = gt > 0, pred > 0
    return int(np.count_nonzero(a & b)), int(np.count_nonzero(a)), int(np.count_nonzero(b))


def _iou_from(inter: int, area_gt: int, area_pred: int) -> float:
    union = area_gt + area_pred - inter
    return 1.0 if union == 0 else inter / union


def _dice_from(inter: int, area_gt: int, area_pred: int) -> float:
    total = area_gt + area_pred
    return 1.0 if total == 0 else 2 * inter / total


def overlap_table(gt: np.ndarray, pred: np.ndarray) -> Overlap:
    """The sparse overlap table of two label images, built in O(pixels) with ``np.bincount``.

    Parameters
    ----------
    gt, pred : np.ndarray
        ``(Y, X)`` non-negative integer instance labels of the same shape, 0 = background;
        ids need not be consecutive.

    Returns
    -------
    Overlap
        Every score of this module and of :mod:`unetseg.score.matching` is read from it.

    Raises
    ------
    ValueError
        On different shapes, non-integer dtype or negative ids.
    """
    return _overlap(*_check_pair(gt, pred))


def overlap_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Pixel counts of every (reference object, predicted object) pair.

    Parameters
    ----------
    gt, pred : np.ndarray
        ``(Y, X)`` non-negative integer instance labels, 0 = background; ids
        need not be consecutive.

    Returns
    -------
    np.ndarray
        ``(n_gt + 1, n_pred + 1)`` int64; ``[i, j]`` is the number of pixels in
        the i-th gt object and the j-th pred object, objects ordered by
        increasing id, row/column 0 = background. Sums to ``gt.size``.

    Raises
    ------
    ValueError
        On different shapes, non-integer dtype or negative ids.
    """
    ov = overlap_table(gt, pred)
    table = np.zeros((ov.n_gt + 1, ov.n_pred + 1), np.int64)
    table[ov.gi, ov.pj] = ov.count
    return table


def seg_score(gt_labels: np.ndarray, pred_labels: np.ndarray) -> float:
    """Cell Tracking Challenge SEG: mean Jaccard of reference objects with their match.

    A reference object R matches the predicted object S with
    ``|R ∩ S| > 0.5 |R|`` (at most one S can qualify); its score is
    ``J = |R ∩ S| / |R ∪ S|``, or 0 without a match. SEG is the mean of J over
    all reference objects, so extra predicted objects do not lower it, while
    one S may match several R (a merge scores each R by its own overlap).

    Parameters
    ----------
    gt_labels, pred_labels : np.ndarray
        ``(Y, X)`` non-negative integer instance labels of the same shape.

    Returns
    -------
    float
        SEG in [0, 1]. With no reference objects: 1.0 if ``pred_labels`` has
        no objects either, else 0.0.
    """
    ov = overlap_table(gt_labels, pred_labels)
    return _seg_from(_seg_matches(ov)[0], ov.n_gt, ov.n_pred)


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Foreground Jaccard index ``|A ∩ B| / |A ∪ B|`` of ``gt > 0`` and ``pred > 0``.

    The "IOU" of the ISBI cell tracking results (paper Sec. 3, Table 2).
    Takes ``(Y, X)`` integer labels of the same shape; both empty -> 1.0.
    """
    return _iou_from(*_fg_stats(*_check_pair(gt, pred)))


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Foreground Dice ``2 |A ∩ B| / (|A| + |B|)`` of ``gt > 0`` and ``pred > 0``.

    Takes ``(Y, X)`` integer labels of the same shape; both empty -> 1.0.
    """
    return _dice_from(*_fg_stats(*_check_pair(gt, pred)))


def pixel_error(gt: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of pixels whose foreground/background class differs (paper Sec. 3, Table 1).

    Takes ``(Y, X)`` integer labels of the same shape; returns a float in [0, 1]
    (0.0 for empty images).
    """
    gt, pred = _check_pair(gt, pred)
    return float(np.count_nonzero((gt > 0) != (pred > 0)) / gt.size) if gt.size else 0.0


def rand_error(gt: np.ndarray, pred: np.ndarray) -> float:
    """ISBI 2012 / SNEMI3D adapted Rand error: 1 - foreground-restricted Rand F-score.

    Counted over the pixels where ``gt > 0`` (paper Sec. 3, Table 1), with the
    contingency counts ``n_ij`` (gt object i, pred label j; pred background 0
    is one more label there), gt object sizes ``t_i`` and pred sizes ``s_j``::

        F = 2 (Σ n_ij² - n) / ((Σ t_i² - n) + (Σ s_j² - n)),   error = 1 - F

    where ``n`` is the number of gt-foreground pixels: exactly
    ``skimage.metrics.adapted_rand_error(gt, pred)[0]``. Invariant to
    permuting ids; blind to predictions on gt background.

    Parameters
    ----------
    gt, pred : np.ndarray
        ``(Y, X)`` non-negative integer instance labels of the same shape.

    Returns
    -------
    float
        In [0, 1]; 0.0 when there are no pixel pairs to compare (fewer than two
        pixels in every gt object, e.g. an empty gt), where skimage gives NaN.
    """
    return _rand_error(overlap_table(gt, pred))


def object_counts(gt: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Object counts ``n_gt``, ``n_pred`` and ``n_matched`` (gt objects matched as in SEG).

    Takes ``(Y, X)`` integer labels of the same shape.
    """
    ov = overlap_table(gt, pred)
    return {"n_gt": ov.n_gt, "n_pred": ov.n_pred, "n_matched": _seg_matches(ov)[1]}


def evaluate_pair(gt: np.ndarray, pred: np.ndarray) -> dict[str, float | int]:
    """All metrics of one image pair, plus the sums that ``aggregate`` pools exactly.

    Parameters
    ----------
    gt, pred : np.ndarray
        ``(Y, X)`` non-negative integer instance labels of the same shape.

    Returns
    -------
    dict
        Floats ``iou``, ``seg``, ``dice``, ``pixel_error``, ``rand_error``
        (as the functions of the same names); ints ``n_gt``, ``n_pred``,
        ``n_matched``; and the per-image sums ``seg_jaccard_sum`` (float, J
        summed over gt objects), ``fg_intersection``, ``fg_gt``, ``fg_pred``
        (foreground pixel counts), ``n_pixels`` and ``n_wrong`` (ints).
        All values are plain Python numbers (JSON-ready).
    """
    gt, pred = _check_pair(gt, pred)
    ov = _overlap(gt, pred)
    jaccard_sum, n_matched = _seg_matches(ov)
    inter, area_gt, area_pred = _fg_stats(gt, pred)
    n_wrong = area_gt + area_pred - 2 * inter
    return {
        "iou": _iou_from(inter, area_gt, area_pred),
        "seg": _seg_from(jaccard_sum, ov.n_gt, ov.n_pred),
        "dice": _dice_from(inter, area_gt, area_pred),
        "pixel_error": n_wrong / gt.size if gt.size else 0.0,
        "rand_error": _rand_error(ov),
        "n_gt": ov.n_gt,
        "n_pred": ov.n_pred,
        "n_matched": n_matched,
        "seg_jaccard_sum": jaccard_sum,
        "fg_intersection": inter,
        "fg_gt": area_gt,
        "fg_pred": area_pred,
        "n_pixels": int(gt.size),
        "n_wrong": n_wrong,
    }


def aggregate(results: list[dict]) -> dict[str, float | int]:
    """Pool per-image ``evaluate_pair`` results into dataset scores.

    - ``seg``: the CTC way, mean J over all reference objects of all images
      (``Σ seg_jaccard_sum / Σ n_gt``; no reference objects anywhere -> 1.0 if
      no predicted objects either, else 0.0).
    - ``iou``, ``dice``: pooled ("micro") over all pixels, from summed
      intersections and areas, so large images weigh more.
    - ``pixel_error``: pixel-weighted (``Σ n_wrong / Σ n_pixels``).
    - ``rand_error``: mean over images (the ISBI 2012 convention per slice).
    - ``n_gt``, ``n_pred``, ``n_matched``: summed; ``n_images``: ``len(results)``.

    Parameters
    ----------
    results : list of dict
        Outputs of :func:`evaluate_pair`, one per image.

    Returns
    -------
    dict
        The keys above, as plain Python floats and ints.

    Raises
    ------
    ValueError
        If ``results`` is empty or a dict lacks a key ``evaluate_pair`` writes.
    """
    if not results:
        raise ValueError("aggregate needs at least one per-image result, got none")
    for i, r in enumerate(results):
        missing = [k for k in (*_SUM_KEYS, *_COUNT_KEYS, "rand_error") if k not in r]
        if missing:
            raise ValueError(f"result {i} lacks keys {missing} (use evaluate_pair)")
    total = {k: sum(r[k] for r in results) for k in (*_SUM_KEYS, *_COUNT_KEYS)}
    inter, area_gt, area_pred = total["fg_intersection"], total["fg_gt"], total["fg_pred"]
    return {
        "iou": float(_iou_from(inter, area_gt, area_pred)),
        "seg": float(_seg_from(total["seg_jaccard_sum"], total["n_gt"], total["n_pred"])),
        "dice": float(_dice_from(inter, area_gt, area_pred)),
        "pixel_error": float(total["n_wrong"] / total["n_pixels"]) if total["n_pixels"] else 0.0,
        "rand_error": float(np.mean([r["rand_error"] for r in results])),
        "n_gt": int(total["n_gt"]),
        "n_pred": int(total["n_pred"]),
        "n_matched": int(total["n_matched"]),
        "n_images": len(results),
    }
