"""Resampling between the acquisition grid and the grid the network works on.

Like nnU-Net's target spacing, ``prepare.resample_factor`` lets a recipe train and predict at a
lower (or higher) resolution than the images were recorded at: large cells then fit a
network's receptive field, and each CPU second covers more of the image. Images are
resampled with interpolation, instance masks by nearest neighbour (ids are kept), and
probability maps are brought back to the original grid before thresholding, so
instances and metrics are always computed at the original resolution.

``postprocess.label_offset_y`` / ``label_offset_x`` correct labels drawn a fixed sub-pixel
distance off the structures they annotate (ISBI 2012 EM: about 0.6 px up and 0.2 px left
of the membranes): the predicted maps are moved onto the labels before thresholding.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import resize


def scaled_shape(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """The ``(Y, X)`` size of an image of ``shape`` resampled by ``scale`` (at least 1 px)."""
    return tuple(max(1, round(n * scale)) for n in shape[:2])  # type: ignore[return-value]


def resample_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Resample a ``(Y, X)`` intensity image by ``scale``, keeping its integer dtype.

    Linear interpolation, with Gaussian anti-aliasing when shrinking; values are
    rounded and clipped to the dtype's range. ``scale == 1`` returns the input.
    """
    if scale == 1:
        return image
    out = resize(image, scaled_shape(image.shape, scale), order=1, preserve_range=True,
                 anti_aliasing=scale < 1, mode="reflect")
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out.astype(image.dtype)


def resample_mask(mask: np.ndarray, scale: float) -> np.ndarray:
    """Resample a ``(Y, X)`` instance-label mask by ``scale`` (nearest neighbour, same dtype).

    Objects smaller than about ``1 / scale`` pixels across may vanish when shrinking.
    """
    if scale == 1:
        return mask
    out = resize(mask, scaled_shape(mask.shape, scale), order=0, preserve_range=True,
                 anti_aliasing=False, mode="edge")
    return out.astype(mask.dtype)


def resize_probability(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bring a ``(y, x)`` float probability map to ``shape`` (linear), as float32 in [0, 1]."""
    if prob.shape == tuple(shape):
        return prob.astype(np.float32, copy=False)
    out = resize(prob, shape, order=1, preserve_range=True, anti_aliasing=False, mode="edge")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def shift_map(values: np.ndarray, offset: tuple[float, float]) -> np.ndarray:
    """Move a ``(Y, X)`` float map by ``offset = (dy, dx)`` pixels, as float32.

    Content at ``(y, x)`` moves to ``(y + dy, x + dx)`` (linear interpolation, edge values
    repeated). No offset returns the input.
    """
    if not any(offset):
        return values
    return ndi.shift(values.astype(np.float32, copy=False), offset, order=1, mode="nearest")


def offset_grid(max_px: float = 1.0, step: float = 0.25) -> np.ndarray:
    """``(K, 2)`` float64 ``(dy, dx)`` offsets on a square grid within ``±max_px``.

    Sorted by distance from ``(0, 0)``, so that among equally good offsets the smallest
    comes first.
    """
    ax = np.arange(-max_px, max_px + step / 2, step)
    grid = np.stack(np.meshgrid(ax, ax, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid[np.argsort(np.hypot(grid[:, 0], grid[:, 1]), kind="stable")]


def offset_errors(prob: np.ndarray, foreground: np.ndarray, threshold: float,
                  offsets: np.ndarray) -> np.ndarray:
    """Pixels misclassified when a probability map is moved by each of ``offsets``.

    Summed over images, the offset with the fewest errors is how far the labels sit from
    where the network draws their structures: a systematic annotation offset, which
    ``postprocess.label_offset_y`` / ``label_offset_x`` correct.

    Parameters
    ----------
    prob : (Y, X) float foreground probability, on the labels' grid.
    foreground : (Y, X) bool reference foreground.
    threshold : probability above which a pixel counts as foreground.
    offsets : (K, 2) float ``(dy, dx)`` in pixels (see :func:`offset_grid`).

    Returns
    -------
    (K,) int64 counts of wrong pixels, all taken away from a border as wide as the largest
    offset, so that every offset is scored on the same pixels.
    """
    if prob.shape != foreground.shape:
        raise ValueError(f"probability {prob.shape} and reference {foreground.shape} differ")
    m = int(np.ceil(np.abs(offsets).max())) if len(offsets) else 0
    inner = tuple(slice(m, n - m) for n in prob.shape)
    ref = foreground[inner]
    return np.array([np.count_nonzero((shift_map(prob, o)[inner] > threshold) != ref)
                     for o in offsets], dtype=np.int64)
