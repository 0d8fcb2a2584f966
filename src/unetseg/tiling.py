"""Overlap-tile geometry (paper §2, Fig. 2): sizes, tile grids, mirrored padding, stitching.

Conventions: arrays are ``(Y, X)`` (or ``(N, Y, X)`` stacks); a tile position is the
``(y, x)`` image coordinate of the top-left pixel of the tile's *output* window. The
input window of the same tile starts ``margin`` pixels earlier on each axis, where
``margin = (in_size - out_size) // 2`` is the context that valid convolutions consume.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


def output_size(input_size: int, depth: int, padding: str) -> int:
    """Spatial output size of a U-Net for a square input tile.

    Each level applies two 3×3 convolutions and a 2×2 max-pool; the expansive path
    mirrors it with 2×2 up-convolutions (paper §2). With ``padding="valid"`` every
    convolution loses 2 px and every pooled size must be even, so for ``depth=4``
    an input of 572 gives 388 (paper Fig. 1). With ``padding="same"`` the output
    equals the input, which must be divisible by ``2**depth``.

    Raises
    ------
    ValueError
        If the size does not fit the network, with the nearest sizes that do.
    """
    if padding == "same":
        if input_size <= 0 or input_size % 2**depth:
            raise ValueError(
                f"tile size {input_size} must be a positive multiple of 2**depth = {2**depth}"
            )
        return input_size
    if padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    out = _valid_output(input_size, depth)
    if out is None:
        below, above = nearest_valid_sizes(input_size, depth)
        hint = f"nearest valid sizes: {below}, {above}" if below else f"smallest valid: {above}"
        raise ValueError(
            f"tile size {input_size} does not fit a depth-{depth} U-Net with valid "
            f"convolutions ({hint})"
        )
    return out


def _valid_output(size: int, depth: int) -> int | None:
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    if size <= 0:
        return None
    for _ in range(depth):
        size = 2 * size - 4
    return size if size > 0 else None


def nearest_valid_sizes(input_size: int, depth: int) -> tuple[int | None, int]:
    """Largest valid input size ≤ ``input_size`` (None if none) and smallest one ≥ it."""
    below = next((s for s in range(input_size, 0, -1) if _valid_output(s, depth)), None)
    above = next(s for s in itertools.count(max(input_size, 1)) if _valid_output(s, depth))
    return below, above


def input_size_for(min_output: int, depth: int, padding: str) -> int:
    """Smallest valid input tile whose output is at least ``min_output`` pixels."""
    if padding == "same":
        return math.ceil(max(min_output, 1) / 2**depth) * 2**depth
    return next(s for s in itertools.count(1) if (_valid_output(s, depth) or 0) >= min_output)


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one image lie.

    Attributes
    ----------
    in_size, out_size : int
        Input and output tile sizes (square).
    positions : np.ndarray
        ``(N, 2)`` int64 output-window origins ``(y, x)`` in image coordinates.
    image_shape : tuple[int, int]
        ``(Y, X)`` of the image.
    """

    in_size: int
    out_size: int
    positions: np.ndarray
    image_shape: tuple[int, int]

    @property
    def margin(self) -> int:
        return (self.in_size - self.out_size) // 2

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((top, bottom), (left, right))`` mirror padding that holds every input window."""
        pad = []
        for axis in range(2):
            end = int(self.positions[:, axis].max()) + self.out_size if len(self.positions) else 0
            pad.append((self.margin, self.margin + max(end - self.image_shape[axis], 0)))
        return pad[0], pad[1]


def tile_grid(image_shape: tuple[int, int], in_size: int, out_size: int, step: int) -> TileGrid:
    """Output-tile origins ``k * step`` that cover the whole ``(Y, X)`` image.

    Positions are multiples of ``step``; choose ``step`` as a multiple of
    ``2**depth`` so that every tile sees the max-pool grid at the same phase as
    an untiled pass, which makes stitched valid-padding predictions exact.
    Tiles may run past the bottom/right edge; the mirror padding covers that.
    """
    if step <= 0 or step > out_size:
        raise ValueError(f"tile step {step} must be in 1..out_size={out_size}")
    starts = [np.arange(math.ceil(max(n - out_size, 0) / step) + 1) * step for n in image_shape]
    yy, xx = np.meshgrid(starts[0], starts[1], indexing="ij")
    positions = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.int64)
    return TileGrid(in_size, out_size, positions, (int(image_shape[0]), int(image_shape[1])))


def tiles_over(grid: TileGrid, box: tuple[int, int, int, int]) -> TileGrid:
    """The tiles of ``grid`` whose output window meets ``box = (y0, y1, x0, x1)`` (end-exclusive).

    Those are all the tiles a pixel of ``box`` gets its prediction from, in the grid's order,
    so stitching only them gives ``box`` the values the whole grid gives it: the block-wise
    prediction of a huge image predicts each block's core and not its context.
    """
    y0, y1, x0, x1 = box
    p, s = grid.positions, grid.out_size
    keep = (p[:, 0] < y1) & (p[:, 0] + s > y0) & (p[:, 1] < x1) & (p[:, 1] + s > x0)
    return TileGrid(grid.in_size, grid.out_size, p[keep], grid.image_shape)


def mirror_pad(array: np.ndarray, grid: TileGrid) -> np.ndarray:
    """Pad a ``(Y, X)`` array by mirroring (paper Fig. 2) so every input window fits.

    Uses ``numpy.pad(mode="symmetric")``, which repeats the mirroring when the
    padding is larger than the image (images smaller than one tile).
    """
    return np.pad(array, grid.padding, mode="symmetric")


def extract_tiles(padded: np.ndarray, grid: TileGrid, size: int, offset: int = 0) -> np.ndarray:
    """Cut ``(N, size, size)`` windows out of a padded array.

    ``offset`` shifts the window relative to the input window: 0 gives the input
    tiles, ``grid.margin`` gives windows aligned with the output tiles.
    """
    n = len(grid.positions)
    out = np.empty((n, size, size), dtype=padded.dtype)
    for i, (y, x) in enumerate(grid.positions):
        out[i] = padded[y + offset: y + offset + size, x + offset: x + offset + size]
    return out


def blend_window(size: int, sigma_scale: float = 0.125) -> np.ndarray:
    """``(size, size)`` float32 Gaussian importance window for blending overlapping tiles."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * (sigma_scale * size) ** 2))
    w = np.outer(g, g)
    return np.maximum(w / w.max(), 1e-3).astype(np.float32)


class Stitcher:
    """Accumulate ``(out, out, C)`` tile predictions into a ``(Y, X, C)`` image.

    With ``window=None`` overlapping tiles simply overwrite each other (exact for
    aligned valid-padding tiles, whose overlaps agree); otherwise each tile is
    weighted by ``window`` and the result is the weighted mean, which blends the
    seams of ``same``-padding models away.
    """

    def __init__(self, grid: TileGrid, channels: int, window: np.ndarray | None = None) -> None:
        self.grid = grid
        self.window = window
        padded = [s + p[0] + p[1] - 2 * grid.margin
                  for s, p in zip(grid.image_shape, grid.padding, strict=True)]
        self._sum = np.zeros((*padded, channels), dtype=np.float32)
        self._weight = np.zeros(padded, dtype=np.float32) if window is not None else None

    def add(self, index: int, prediction: np.ndarray) -> None:
        """Place the prediction ``(out, out, C)`` of tile ``index``."""
        y, x = self.grid.positions[index]
        s = self.grid.out_size
        if self.window is None:
            self._sum[y: y + s, x: x + s] = prediction
        else:
            self._sum[y: y + s, x: x + s] += prediction * self.window[..., None]
            self._weight[y: y + s, x: x + s] += self.window

    def result(self) -> np.ndarray:
        """The ``(Y, X, C)`` float32 stitched prediction, cropped to the image (0 where no tile
        lies)."""
        h, w = self.grid.image_shape
        out = self._sum[:h, :w]
        if self._weight is not None:
            weight = self._weight[:h, :w, None]
            out = np.divide(out, weight, out=np.zeros_like(out), where=weight > 0)
        return out


def tile_step(out_size: int, depth: int, padding: str) -> int:
    """Stride between output tiles.

    For ``valid`` padding: the largest multiple of ``2**depth`` not above
    ``out_size``, so tiles tile the image seamlessly and exactly. For ``same``
    padding: about half a tile, so neighbouring tiles overlap and can be blended.
    """
    unit = 2**depth
    if padding == "valid":
        return max(unit * (out_size // unit), min(unit, out_size))
    return max(unit, unit * ((out_size // 2) // unit))
