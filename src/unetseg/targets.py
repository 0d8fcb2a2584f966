"""Training targets from an instance mask: separated foreground classes and the weight map."""

from __future__ import annotations

import numpy as np

from unetseg.weights import separate_touching, weight_map


def training_target(mask: np.ndarray, *, w0: float, sigma: float, balance: bool,
                    separate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Class map and weight map for one ``(Y, X)`` uint16 instance mask.

    Touching cells are first separated by a thin background gap (paper Fig. 3c),
    then the weight map of paper Eq. 2 is computed on the separated instances, so
    the gaps between touching cells get the large border weight.

    Returns
    -------
    classes : (Y, X) uint8, 1 = cell, 0 = background.
    weights : (Y, X) float32.
    """
    labels = separate_touching(mask) if separate else mask
    classes = (labels > 0).astype(np.uint8)
    return classes, weight_map(labels, w0=w0, sigma=sigma, balance=balance)
