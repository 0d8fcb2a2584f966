"""Training targets: separated foreground classes and the weight map from an instance mask,
and the distance-to-background target of the optional distance head."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

from unetseg.config import PrepareParams
from unetseg.weights import separate_touching, weight_map


def erode_instances(labels: np.ndarray, radius: int) -> np.ndarray:
    """Shrink every instance by ``radius`` pixels, away from background and other cells.

    A pixel keeps its id only if every pixel within a disk of ``radius`` has the
    same id (grey erosion equals grey dilation). The image edge is not treated as
    a cell border (``mode="nearest"``). Instances thinner than ``2 * radius + 1``
    vanish.

    Parameters
    ----------
    labels : np.ndarray
        ``(Y, X)`` integer instance labels, 0 = background.
    radius : int
        Erosion radius in pixels; 0 returns ``labels`` unchanged.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` labels of the same dtype.
    """
    if radius <= 0:
        return labels
    footprint = disk(radius).astype(bool)
    low = ndimage.grey_erosion(labels, footprint=footprint, mode="nearest")
    high = ndimage.grey_dilation(labels, footprint=footprint, mode="nearest")
    return np.where((low == labels) & (high == labels), labels, 0).astype(labels.dtype)


def annotated_region(mask: np.ndarray, reach: float) -> np.ndarray:
    """Pixels within ``reach`` pixels (Euclidean) of an annotated cell.

    Where a mask annotates only some of the cells in its image (the Cell Tracking
    Challenge's SEG masks often do), background is known only near the annotated
    cells: farther out an unannotated cell may lie.

    Parameters
    ----------
    mask : (Y, X) integer instance mask, 0 = background.
    reach : distance in pixels, > 0.

    Returns
    -------
    (Y, X) bool; all False for a mask without cells.
    """
    mask = np.asarray(mask)
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    return ndimage.distance_transform_edt(mask == 0) <= reach


def training_target(mask: np.ndarray, *, w0: float, sigma: float, balance: bool,
                    separate: bool, erode: int = 0,
                    ignore_beyond: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Class map and weight map for one ``(Y, X)`` uint16 instance mask.

    Touching cells are first separated by a thin background gap (paper Fig. 3c),
    optionally every cell is shrunk by ``erode`` pixels (:func:`erode_instances`;
    a wide background ring then parts cells that touch or overlap, and evaluation
    grows the predicted objects back by the same distance), then the weight map
    of paper Eq. 2 is computed on these instances, so the gaps between touching
    cells get the large border weight. With ``ignore_beyond`` > 0 the mask is taken
    as a partial annotation: pixels farther than that from every annotated cell
    (:func:`annotated_region`) get weight 0 and no say in the class balance.

    Returns
    -------
    classes : (Y, X) uint8, 1 = cell, 0 = background.
    weights : (Y, X) float32.
    """
    labels = separate_touching(mask) if separate else mask
    labels = erode_instances(labels, erode)
    classes = (labels > 0).astype(np.uint8)
    known = annotated_region(mask, ignore_beyond) if ignore_beyond > 0 else None
    return classes, weight_map(labels, w0=w0, sigma=sigma, balance=balance, known=known)


def target_options(prepare: PrepareParams) -> dict[str, Any]:
    """:func:`training_target` keyword arguments for the ``prepare`` params.

    prepare builds its targets with these, and augment rebuilds them from the
    params recorded in ``train.h5``, so both stages always agree.
    """
    return {"w0": prepare.w0, "sigma": prepare.sigma, "balance": prepare.balance,
            "separate": prepare.separate_touching, "erode": prepare.erode_px,
            "ignore_beyond": prepare.ignore_beyond_px}


def distance_target(classes: np.ndarray, weights: np.ndarray,
                    clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Clipped distance to background of output tiles, and where a tile knows it exactly.

    The regression target of the distance head (``train.distance_weight``): every
    cell pixel's Euclidean distance to the nearest background pixel, clipped at
    ``clip`` pixels and scaled to [0, 1]. The separation gap (paper Fig. 3c) is
    background, so each of two touching cells gets its own peak, which the
    thresholded foreground alone does not show when a cell lies on another.
    A tile cannot see background beyond its edge, so its distance is exact only
    where it is at most the distance to that edge; elsewhere, and where the weight
    map is zero (mirrored context), the mask is 0.

    Parameters
    ----------
    classes : np.ndarray
        ``(B, Y, X)`` integer classes, 1 = cell, 0 = background.
    weights : np.ndarray
        ``(B, Y, X)`` float weight maps (Eq. 2).
    clip : float
        Distance, in pixels, that maps to 1.

    Returns
    -------
    target : (B, Y, X) float32 in [0, 1].
    mask : (B, Y, X) float32, 1 where the target is exact and counted, else 0.
    """
    classes = np.asarray(classes)
    _, h, w = classes.shape
    yy, xx = np.ogrid[:h, :w]
    to_edge = np.minimum(np.minimum(yy + 1, h - yy), np.minimum(xx + 1, w - xx))
    # One 2-D transform per tile (a handful per batch): ndimage has no batched 2-D EDT.
    # A tile without background is at least its edge distance from any: clip it.
    distance = np.stack([ndimage.distance_transform_edt(c > 0) if (c == 0).any()
                         else np.full(c.shape, np.inf) for c in classes])
    distance = np.minimum(distance, clip)
    mask = (distance <= to_edge) & (np.asarray(weights) > 0)
    return (distance / clip).astype(np.float32), mask.astype(np.float32)
