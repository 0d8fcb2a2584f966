"""Instance labels from a predicted foreground probability map.

The network is trained on masks whose touching cells were separated by a thin
background gap and weighted heavily there (paper Sec. 3, Eq. 2, Fig. 3c), so
thresholded foreground components are mostly single cells. ``label_instances``
turns the probability into labels and grows each object back over the gap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import expand_labels, relabel_sequential, watershed

from unetseg.images import label_dtype

if TYPE_CHECKING:
    from unetseg.config import PostprocessParams

_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)


def _region_saddles(labels: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjacent region pairs ``(E, 2)`` (low id first) and their saddle distance ``(E,)``.

    The saddle of two watershed regions is the highest distance-to-background
    along their shared border (of each 4-neighbour pixel pair, the lower one).
    """
    pairs, values = [], []
    for a, b, da, db in ((labels[:, :-1], labels[:, 1:], distance[:, :-1], distance[:, 1:]),
                         (labels[:-1], labels[1:], distance[:-1], distance[1:])):
        cross = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.sort(np.stack([a[cross], b[cross]], axis=1), axis=1))
        values.append(np.minimum(da[cross], db[cross]))
    pair = np.concatenate(pairs)
    if not len(pair):
        return np.zeros((0, 2), np.int64), np.zeros(0)
    unique, inverse = np.unique(pair, axis=0, return_inverse=True)
    saddle = np.zeros(len(unique))
    np.maximum.at(saddle, inverse.ravel(), np.concatenate(values))
    return unique, saddle


def _merge_wide_necks(labels: np.ndarray, distance: np.ndarray, neck_ratio: float) -> np.ndarray:
    """Merge adjacent regions unless their saddle is at most ``neck_ratio`` x the lower peak."""
    n = int(labels.max())
    pairs, saddle = _region_saddles(labels, distance)
    peak = np.zeros(n + 1)
    np.maximum.at(peak, labels.ravel(), distance.ravel())
    parent = np.arange(n + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    # A loop over region pairs (tens per image), highest saddle first: each merge raises
    # the merged region's peak, which the next comparisons must see.
    for k in np.argsort(-saddle, kind="stable"):
        i, j = root(int(pairs[k, 0])), root(int(pairs[k, 1]))
        if i != j and saddle[k] > neck_ratio * min(peak[i], peak[j]):
            parent[j] = i
            peak[i] = max(peak[i], peak[j])
    return np.array([root(i) for i in range(n + 1)])[labels]


def _watershed_split(foreground: np.ndarray, h: float, neck_ratio: float,
                     distance: np.ndarray | None = None) -> np.ndarray:
    """Split touching blobs at narrow necks of the distance to background (given or the EDT)."""
    if distance is None:
        distance = ndimage.distance_transform_edt(foreground)
    else:
        distance = np.where(foreground, distance, 0.0)
    markers, _ = ndimage.label(h_maxima(distance, h), structure=_EIGHT)
    labels = watershed(-distance, markers, mask=foreground, connectivity=1)
    if neck_ratio < 1:
        labels = _merge_wide_necks(labels, distance, neck_ratio)
    # Components whose distance peak is lower than h got no marker: keep them whole.
    leftover = foreground & (labels == 0)
    if leftover.any():
        extra, _ = ndimage.label(leftover, structure=_FOUR)
        labels = np.where(leftover, extra + labels.max(), labels)
    return labels


def _fill_holes(labels: np.ndarray) -> np.ndarray:
    """Fill background holes that lie inside a single object (not gaps between two)."""
    holes, n = ndimage.label(ndimage.binary_fill_holes(labels > 0) & (labels == 0),
                             structure=_FOUR)
    if n == 0:
        return labels
    ring = ndimage.binary_dilation(holes > 0, _FOUR) & (labels > 0)
    owner = ndimage.grey_dilation(holes, footprint=_FOUR)[ring]
    touching = labels[ring]
    low = ndimage.minimum(touching, owner, index=np.arange(1, n + 1))
    high = ndimage.maximum(touching, owner, index=np.arange(1, n + 1))
    single = np.concatenate([[0], np.where(low == high, high, 0)]).astype(labels.dtype)
    return np.where(holes > 0, single[holes], labels)


def _grow(labels: np.ndarray, border_px: int, into: str) -> np.ndarray:
    """Expand labels by ``border_px`` into background, everywhere or only in inter-object gaps."""
    grown = expand_labels(labels, distance=border_px)
    if into == "all":
        return grown
    # A gap pixel sees two different objects in its (4b+1)^2 window, one on each side.
    size = 4 * border_px + 1
    sentinel = int(labels.max()) + 1
    top = ndimage.maximum_filter(labels, size=size, mode="constant", cval=0)
    low = ndimage.minimum_filter(np.where(labels > 0, labels, sentinel), size=size,
                                 mode="constant", cval=sentinel)
    gap = (labels == 0) & (top > 0) & (top != low)
    return np.where(gap, grown, labels)


def label_instances(
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    min_size: int = 20,
    method: Literal["components", "watershed", "distance"] = "components",
    border_px: int = 1,
    h: float = 2.0,
    neck_ratio: float = 0.5,
    fill_holes: bool = False,
    into: Literal["gaps", "all"] = "gaps",
    distance: np.ndarray | None = None,
) -> np.ndarray:
    """Turn a foreground probability map into consecutive instance labels.

    Foreground is ``prob > threshold``. ``"components"`` labels its
    4-connected components (4 rather than 8 so a one-pixel gap drawn with
    diagonal steps still separates two cells). ``"watershed"`` additionally
    splits touching cells at narrow necks: markers are the h-maxima (height
    ``h`` pixels) of the Euclidean distance transform of the foreground,
    flooded on the negated distance within the foreground (4-connected); then
    two adjacent regions are merged again, highest saddle first, unless their
    saddle (the largest distance along their shared border, half the neck's
    width) is at most ``neck_ratio`` times the lower of their two peaks (half
    the width of the thinner part). Protrusions joined by a neck as wide as
    themselves thus stay whole, while two cells touching at a waist are cut
    there. ``"distance"`` does the same on the distance to background that a
    model's distance head predicted (``distance``, smoothed by a Gaussian of
    1 px to quiet pixel noise), which has a peak in each cell even where the
    foreground shows no neck, as for a small cell lying on a larger one. Then
    objects with fewer than ``min_size`` pixels are removed,
    with ``fill_holes`` background holes enclosed by a single object are
    given to it (as Cellpose does; gaps between two objects stay), ids are
    made consecutive 1..n, and objects grow by ``border_px`` pixels into background
    (``skimage.segmentation.expand_labels``) to restore the separation gap
    removed from the training target (paper Fig. 3c). By default
    (``into="gaps"``) they grow only into that gap: background pixels with two
    different objects within ``2 * border_px`` (square window), so outer cell
    outlines keep the size the network predicted; ``into="all"`` grows them
    everywhere, which adds a ``border_px`` ring around every cell.

    Parameters
    ----------
    prob : np.ndarray
        ``(Y, X)`` float foreground probability in [0, 1].
    threshold : float
        Foreground cut-off.
    min_size : int
        Smallest object kept, in pixels (before expansion); 0 keeps all.
    method : {"components", "watershed", "distance"}
        How foreground becomes objects (see above).
    border_px : int
        Growth distance in pixels; 0 leaves objects as thresholded.
    h : float
        Watershed and distance: minimum height, in pixels of distance, of a
        marker's peak above its surroundings.
    neck_ratio : float
        Watershed and distance, in (0, 1]: split two regions only where the neck is at
        most this fraction of the thinner part's width; 1 keeps every h-maxima
        region apart (plain marker watershed).
    fill_holes : bool
        Fill holes that lie inside one object.
    into : {"gaps", "all"}
        Where objects grow by ``border_px`` (see above).
    distance : np.ndarray, optional
        ``(Y, X)`` float predicted distance to background in pixels; required by
        (and only used by) ``"distance"``.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` instance labels, 0 = background, objects 1..n in the raster
        order of their seeds; uint16 for up to 65,535 objects, uint32 beyond
        (:func:`unetseg.images.label_dtype`). Deterministic.

    Raises
    ------
    ValueError
        If ``prob`` is not 2-D, ``method`` or ``into`` is unknown, ``min_size`` or
        ``border_px`` is negative, ``neck_ratio`` is outside
        (0, 1], or ``"distance"`` lacks a ``distance`` of ``prob``'s shape.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be a (Y, X) array, got shape {prob.shape}")
    if method not in ("components", "watershed", "distance"):
        raise ValueError(f"method must be 'components', 'watershed' or 'distance', got {method!r}")
    if method == "distance" and (distance is None or np.shape(distance) != prob.shape):
        raise ValueError(f"method 'distance' needs a distance map of shape {prob.shape}, got "
                         f"{None if distance is None else np.shape(distance)}")
    if into not in ("gaps", "all"):
        raise ValueError(f"into must be 'gaps' or 'all', got {into!r}")
    if min_size < 0 or border_px < 0:
        raise ValueError(f"min_size and border_px must be >= 0, got {min_size} and {border_px}")
    if not 0 < neck_ratio <= 1:
        raise ValueError(f"neck_ratio must be in (0, 1], got {neck_ratio}")
    foreground = prob > threshold
    if method == "components":
        labels, _ = ndimage.label(foreground, structure=_FOUR)
    elif method == "watershed":
        labels = _watershed_split(foreground, h, neck_ratio)
    else:
        smooth = ndimage.gaussian_filter(np.asarray(distance, dtype=np.float64), 1.0)
        labels = _watershed_split(foreground, h, neck_ratio, smooth)
    if min_size > 1:
        # By hand: skimage's remove_small_objects warns on single-object label images.
        small = np.bincount(labels.ravel()) < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    if fill_holes:
        labels = _fill_holes(labels)
    labels, _, _ = relabel_sequential(labels)
    n = int(labels.max()) if labels.size else 0
    if border_px > 0:
        labels = _grow(labels, border_px, into)
    return labels.astype(label_dtype(n), copy=False)


def label_maps(maps: np.ndarray, postprocess: PostprocessParams) -> np.ndarray:
    """Instance labels of a :meth:`~unetseg.infer.segmenter.Segmenter.maps` output, by the
    post-processing's rules (:func:`label_instances`).

    Parameters
    ----------
    maps : ``(Y, X, K)`` float32: the cell probability, then (``K = 2``) the distance head's.
    postprocess : threshold, instances, min_size, grow_into_gaps_px, neck_ratio, fill_holes.

    Returns
    -------
    ``(Y, X)`` uint16 labels (uint32 beyond 65,535 objects).
    """
    p = postprocess
    return label_instances(maps[..., 0], threshold=p.threshold, min_size=p.min_size,
                           method=p.instances, border_px=p.grow_into_gaps_px,
                           neck_ratio=p.neck_ratio, fill_holes=p.fill_holes,
                           distance=maps[..., 1] if p.instances == "distance" else None)
