"""The field's own evaluator as the oracle: our pooled SEG equals py-ctcmetrics' SEG.

``metrics/evaluate.json``'s ``seg`` is ``aggregate([evaluate_pair(gt, pred), ...])["seg"]``;
py-ctcmetrics (the Cell Tracking Challenge's Python evaluator) scores the same masks
written in the challenge's layout: ``RES/maskTTT.tif`` against ``GT/SEG/man_segTTT.tif``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from ctc_metrics.scripts.evaluate import evaluate_sequence
from scipy import ndimage

from unetseg.score.metrics import aggregate, evaluate_pair, seg_score

U373 = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "PhC-C2DH-U373"
BOTH = ("010", "035", "059", "085", "092", "112")  # frames with GT and ST masks


def ctc_seg(gts: list[np.ndarray], preds: list[np.ndarray], folder: Path) -> float:
    """py-ctcmetrics' SEG of ``preds`` against ``gts`` (``(Y, X)`` uint16 each), pooled."""
    res, seg, tra = folder / "01_RES", folder / "01_GT" / "SEG", folder / "01_GT" / "TRA"
    for path in (res, seg, tra):
        path.mkdir(parents=True)
    for t, (gt, pred) in enumerate(zip(gts, preds, strict=True)):
        tifffile.imwrite(res / f"mask{t:03d}.tif", pred.astype(np.uint16))
        tifffile.imwrite(seg / f"man_seg{t:03d}.tif", gt.astype(np.uint16))
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", gt.astype(np.uint16))  # counted only
    return evaluate_sequence(str(res), str(folder / "01_GT"), metrics=["SEG"], threads=1)["SEG"]


def ours(gts: list[np.ndarray], preds: list[np.ndarray]) -> float:
    return aggregate([evaluate_pair(g, p) for g, p in zip(gts, preds, strict=True)])["seg"]


def _cells(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    """Touching Voronoi cells inside blobs, non-consecutive ids, background at the border."""
    seeds = np.zeros(shape, np.int32)
    ids = rng.choice(np.arange(1, 900), n, replace=False)
    seeds[rng.integers(2, shape[0] - 2, n), rng.integers(2, shape[1] - 2, n)] = ids
    _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    labels = seeds[iy, ix]
    fg = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5
    labels[~fg] = 0
    labels[[0, -1], :], labels[:, [0, -1]] = 0, 0
    return labels.astype(np.uint16)


def _predict(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """A flawed segmentation of ``gt``: shifted, relabelled, some cells merged, cut, lost, added."""
    pred = np.roll(gt, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)).astype(np.int64)
    ids = np.unique(pred[pred > 0])
    if ids.size >= 4:
        pred[pred == ids[1]] = ids[0]  # merge
        pred[pred == ids[2]] = 0  # miss
        ys, xs = np.nonzero(pred == ids[3])
        cut = pred == ids[3]
        cut[: int(np.median(ys)) + rng.integers(-3, 4)] = False
        pred[cut] = 2000  # split in two, one part maybe over half the cell
    y, x = rng.integers(5, gt.shape[0] - 10), rng.integers(5, gt.shape[1] - 10)
    pred[y:y + 6, x:x + 6] = 3000  # an extra object over whatever was there
    relabel = np.zeros(int(pred.max()) + 1, np.int64)
    present = np.unique(pred[pred > 0])
    relabel[present] = rng.choice(np.arange(1, 20000), present.size, replace=False)
    pred = relabel[pred]
    pred[[0, -1], :] = 0
    return pred.astype(np.uint16)


def test_pooled_seg_equals_py_ctcmetrics_on_synthetic_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    gts = [_cells(rng, (64 + 8 * k, 80), n) for k, n in enumerate((3, 9, 15, 25, 40, 6))]
    preds = [_predict(rng, gt) for gt in gts]
    gts.append(np.zeros((40, 40), np.uint16))  # a frame without reference cells...
    preds.append(_cells(rng, (40, 40), 5))  # ...where extra objects cost nothing
    expected = ctc_seg(gts, preds, tmp_path)
    assert 0.2 < expected < 0.95, "the flaws lower SEG without zeroing it"
    assert ours(gts, preds) == pytest.approx(expected, abs=1e-6)


def test_half_covered_reference_cell_is_not_a_match(tmp_path: Path) -> None:
    gt = np.zeros((10, 10), np.uint16)
    gt[2:6, 2:6] = 5
    pred = np.zeros_like(gt)
    pred[2:4, 2:6] = 9  # exactly half of the reference cell
    pred[4:6, 2:6] = 4
    assert ours([gt], [pred]) == seg_score(gt, pred) == 0.0 == ctc_seg([gt], [pred], tmp_path)


@pytest.mark.skipif(not U373.is_dir(), reason=f"needs the shared datasets at {U373.parent}")
def test_pooled_seg_equals_py_ctcmetrics_on_real_u373_masks(tmp_path: Path) -> None:
    gts = [tifffile.imread(U373 / "02_GT" / "SEG" / f"man_seg{t}.tif") for t in BOTH]
    sts = [tifffile.imread(U373 / "02_ST" / "SEG" / f"man_seg{t}.tif") for t in BOTH]
    expected = ctc_seg(gts, sts, tmp_path / "st_vs_gt")
    assert ours(gts, sts) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.88, abs=0.005), "the README's figure for ST against GT"
    swapped = ctc_seg(sts, gts, tmp_path / "gt_vs_st")
    assert ours(sts, gts) == pytest.approx(swapped, abs=1e-6)
    for k, (gt, st) in enumerate(zip(gts, sts, strict=True)):
        assert seg_score(gt, st) == pytest.approx(ctc_seg([gt], [st], tmp_path / str(k)),
                                                  abs=1e-6), BOTH[k]
