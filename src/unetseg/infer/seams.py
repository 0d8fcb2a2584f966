"""One global instance labelling from labels computed block by block.

Each block labels its core plus ``overlap`` px of probabilities on every side
(:meth:`~unetseg.infer.blocks.BlockLayout.label_box`). The choice here is **ownership by a
key pixel**, not linking labels that overlap in the shared strips (Cellpose's distributed
segmentation links with union-find, which can chain two touching cells into one when two blocks
disagree). A cell's *key* is its first foreground pixel in raster order, as a flat index
``y * X + x`` into the whole image. A cell is *whole* when its bounding box, height and width,
is at most ``overlap - guard`` px: then every block whose core it meets sees it entirely,
with ``guard`` px of context around it (the growth into gaps and its neighbours), labels it as
a whole-image pass does and finds the same key. So blocks agree on whole cells without talking
to each other:

- the block whose core holds a cell's key *owns* it and reports the key;
- the keys of all blocks, sorted, number the cells ``1..n`` in raster order of their keys,
  which is the order ``scipy.ndimage.label`` gives, so that with ``instances: components``
  the labels equal a whole-image pass's exactly, ids included;
- every block paints its core with the numbers of the cells it sees there, owned or not, so
  a cell across a seam gets one number on both sides and no block writes outside its core.

A cell larger than ``overlap - guard`` px cannot be seen whole by every block; each block
then labels the part in its core as a cell of its own (a *piece*, numbered after the whole
cells), so it is split at the seams, and the count of pieces is reported so that the user can
raise the overlap. A larger overlap costs only labelling time, not network time. Should two
blocks still label a cell differently (post-processing that reaches farther than the overlap,
as a watershed through a confluent sheet of cells can), a cell that a block sees and no block
owns is numbered like a piece: its pixels stay a cell, split at the seam, never background.

With ``instances: components`` the labels of cells up to ``overlap - guard`` px equal a
whole-image pass exactly; with ``watershed`` and ``distance`` they match it at IoU >= 0.95 in
the tests (tests/test_blocks.py, tests/test_predict_blocks.py), as their seeds depend on the
distance to the background, which the overlap holds for cells that size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from unetseg.infer.blocks import Box, box_slices, inner


@dataclass(frozen=True)
class BlockCells:
    """One block's share of the global labelling, before the cells are numbered.

    Attributes
    ----------
    local : ``(h, w)`` uint32 over the core: 0 background, ``i`` the cell ``keys[i]``.
    keys : ``(m + 1,)`` int64: ``keys[0] = 0`` (unused); ``keys[i] >= 0`` the key of a whole
        cell; ``keys[i] = -j`` (``j >= 1``) the block's ``j``-th piece of a cell too large to
        label whole.
    owned : ``(k,)`` int64 sorted keys of the whole cells whose key lies in this core.
    pieces : number of pieces.
    """

    local: np.ndarray
    keys: np.ndarray
    owned: np.ndarray
    pieces: int


def _key_pixels(labels: np.ndarray, foreground: np.ndarray, n: int) -> np.ndarray:
    """``(n + 1,)`` int64 raster index (in ``labels``) of each label's first foreground pixel,
    or of its first pixel where it has no foreground; ``-1`` for absent labels."""
    first = np.full(n + 1, -1, dtype=np.int64)
    for mask in (foreground & (labels > 0), labels > 0):
        flat = np.flatnonzero(mask)
        ids, at = np.unique(labels.ravel()[flat], return_index=True)
        todo = first[ids] < 0
        first[ids[todo]] = flat[at[todo]]
    return first


def block_cells(labels: np.ndarray, foreground: np.ndarray, box: Box, core: Box,
                image_shape: tuple[int, int], max_cell: int) -> BlockCells:
    """Which cells of a labelled window are whole, which the core owns, and the core's paint.

    Parameters
    ----------
    labels : ``(h, w)`` integer labels of the window ``box`` (0 background, 1..n).
    foreground : ``(h, w)`` bool: probability above the threshold in ``box``.
    box : the window in image coordinates (the block's label box).
    core : the block's core, inside ``box``.
    image_shape : ``(Y, X)`` of the whole image (keys are flat indices into it).
    max_cell : largest height or width of a whole cell, px (``overlap - guard``).

    Returns
    -------
    The block's :class:`BlockCells`.
    """
    n = int(labels.max()) if labels.size else 0
    width = labels.shape[1]
    first = _key_pixels(labels, foreground, n)
    ky, kx = np.divmod(np.maximum(first, 0), width)
    keys = (ky + box[0]) * image_shape[1] + (kx + box[2])
    extent = np.zeros(n + 1, dtype=np.int64)
    for i, found in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if found is not None:
            extent[i] = max(found[0].stop - found[0].start, found[1].stop - found[1].start)
    whole = (extent <= max_cell) & (first >= 0)
    whole[0] = False
    c = inner(core, box)
    seen = np.zeros(n + 1, dtype=bool)
    seen[np.unique(labels[box_slices(c)])] = True
    seen[0] = False
    in_core = (ky >= c[0]) & (ky < c[1]) & (kx >= c[2]) & (kx < c[3])
    owned = np.sort(keys[whole & in_core & seen])
    big = seen & ~whole
    table = np.concatenate([[0], keys[seen & whole], -np.arange(1, big.sum() + 1)])
    index = np.zeros(n + 1, dtype=np.uint32)
    index[seen & whole] = np.arange(1, (seen & whole).sum() + 1, dtype=np.uint32)
    index[big] = np.arange((seen & whole).sum() + 1, len(table), dtype=np.uint32)
    local = index[labels[box_slices(c)]]
    return BlockCells(local, table.astype(np.int64), owned.astype(np.int64), int(big.sum()))


@dataclass(frozen=True)
class Numbering:
    """The global numbers of all blocks' cells.

    Attributes
    ----------
    luts : per block, ``(m + 1,)`` int64 (``lut[0] = 0``): the global number of each entry
        of its ``keys`` table, so that ``labels = lut[local]``.
    total : number of cells: whole cells ``1..n`` by key, then each block's pieces, block
        after block.
    unowned : whole cells that a block saw but no block owns, numbered as pieces. 0 unless the
        blocks labelled a cell differently (post-processing that reaches farther than the
        overlap, as a watershed through a confluent sheet of cells can).
    """

    luts: list[np.ndarray]
    total: int
    unowned: int


def number_cells(keys: list[np.ndarray], owned: list[np.ndarray]) -> Numbering:
    """Number the whole cells ``1..n`` in raster order of their keys, then each block's pieces.

    Parameters
    ----------
    keys : per block, its :attr:`BlockCells.keys` table.
    owned : per block, its :attr:`BlockCells.owned` keys.

    Raises
    ------
    ValueError
        When two blocks own the same key (blocks that overlap in their cores).
    """
    order = np.sort(np.concatenate([np.asarray(o, np.int64) for o in owned] or
                                   [np.zeros(0, np.int64)]))
    if len(order) > 1 and (np.diff(order) == 0).any():
        raise ValueError("two blocks own the same cell")
    luts, total, unowned = [], len(order), 0
    for table in keys:
        table = np.asarray(table, np.int64)
        lut = np.zeros(len(table), dtype=np.int64)
        whole = np.flatnonzero(table >= 0)[1:] if len(table) else np.zeros(0, np.int64)
        at = np.searchsorted(order, table[whole])
        found = at < len(order)
        found[found] = order[at[found]] == table[whole[found]]
        lut[whole[found]] = at[found] + 1
        extra = np.concatenate([np.flatnonzero(table < 0), whole[~found]])
        lut[np.sort(extra)] = total + np.arange(1, len(extra) + 1)
        total += len(extra)
        unowned += int((~found).sum())
        luts.append(lut)
    return Numbering(luts, total, unowned)
