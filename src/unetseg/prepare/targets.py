"""Training targets: separated foreground classes and the weight map from an instance mask,
and the distance-to-background target of the optional distance head."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from unetseg.config import ModelParams, PrepareParams
from unetseg.prepare.resampling import resample_image, resample_mask
from unetseg.prepare.store import PreparedSample
from unetseg.prepare.weights import separate_touching, weight_map
from unetseg.tiling import tile_grid, tile_step


def training_target(mask: np.ndarray, *, w0: float, sigma: float, balance: bool,
                    separate: bool) -> tuple[np.ndarray, np.ndarray]:
    """Class map and weight map for one ``(Y, X)`` uint16 instance mask.

    Touching cells are first separated by a thin background gap (paper Fig. 3c) when
    ``separate`` is true, then the weight map of paper Eq. 2 is computed on these
    instances, so the gaps between touching cells get the large border weight.

    Returns
    -------
    classes : (Y, X) uint8, 1 = cell, 0 = background.
    weights : (Y, X) float32.
    """
    labels = separate_touching(mask) if separate else mask
    return (labels > 0).astype(np.uint8), weight_map(labels, w0=w0, sigma=sigma, balance=balance)


def target_options(prepare: PrepareParams) -> dict[str, Any]:
    """:func:`training_target` keyword arguments for the ``prepare`` params.

    prepare builds its targets with these, and augment rebuilds them from the
    params recorded in ``train.h5``, so both stages always agree.
    """
    return {"w0": prepare.w0, "sigma": prepare.sigma, "balance": prepare.balance,
            "separate": prepare.separate_touching}


def prepared_sample(name: str, origin: str, image: np.ndarray, mask: np.ndarray,
                    p: PrepareParams, m: ModelParams) -> tuple[PreparedSample, np.ndarray]:
    """One ingested training pair at the network's resolution, its training target, and its
    overlap tiles (paper Fig. 2).

    Image and mask are resampled by ``p.resample_factor`` and tiled on the
    :func:`unetseg.tiling.tile_step` grid of ``m``.

    Parameters
    ----------
    image : (Y, X) uint8/uint16 raw image.
    mask : (Y, X) integer instance mask.

    Returns
    -------
    sample : the pair (mask as uint16) with its classes and weight map.
    positions : (N, 2) int32 output-tile origins ``(y, x)``.
    """
    image, mask = resample_image(image, p.resample_factor), resample_mask(mask, p.resample_factor)
    grid = tile_grid(mask.shape, m.tile_size, m.out_size, tile_step(m.out_size, m.depth, m.padding))
    classes, weights = training_target(mask, **target_options(p))
    sample = PreparedSample(name, origin, image, mask.astype(np.uint16), classes, weights)
    return sample, grid.positions.astype(np.int32)


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
