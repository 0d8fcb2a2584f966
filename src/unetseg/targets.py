"""Training targets from an instance mask: separated foreground classes and the weight map."""

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


def training_target(mask: np.ndarray, *, w0: float, sigma: float, balance: bool,
                    separate: bool, erode: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class map and weight map for one ``(Y, X)`` uint16 instance mask.

    Touching cells are first separated by a thin background gap (paper Fig. 3c),
    optionally every cell is shrunk by ``erode`` pixels (:func:`erode_instances`;
    a wide background ring then parts cells that touch or overlap, and evaluation
    grows the predicted objects back by the same distance), then the weight map
    of paper Eq. 2 is computed on these instances, so the gaps between touching
    cells get the large border weight.

    Returns
    -------
    classes : (Y, X) uint8, 1 = cell, 0 = background.
    weights : (Y, X) float32.
    """
    labels = separate_touching(mask) if separate else mask
    labels = erode_instances(labels, erode)
    classes = (labels > 0).astype(np.uint8)
    return classes, weight_map(labels, w0=w0, sigma=sigma, balance=balance)


def target_options(prepare: PrepareParams) -> dict[str, Any]:
    """:func:`training_target` keyword arguments for the ``prepare`` params.

    prepare builds its targets with these, and augment rebuilds them from the
    params recorded in ``train.h5``, so both stages always agree.
    """
    return {"w0": prepare.w0, "sigma": prepare.sigma, "balance": prepare.balance,
            "separate": prepare.separate_touching, "erode": prepare.erode_px}
