"""Where the blocks of a huge image lie, and what each reads, so that blocks equal one pass.

A huge image is cut into square *cores* (``block`` px, raster order) that together cover it
once. Two reaches extend a core, clipped to the image:

- the **network context** (:meth:`BlockLayout.network_box`): the pixels the network must see
  to predict the core. It reaches ``out + margin`` px beyond the core (the tiles that cover a
  core pixel start up to ``out - 1`` px before it and read ``margin`` px of context more) and
  starts on a multiple of the tile step, so that the block's tiles are the whole image's tiles
  (paper Fig. 2: same tiles, same max-pool phase, same mirrored borders at the image's edges).
  Only the tiles that meet the core are predicted (:func:`unetseg.tiling.tiles_over`). With
  ``prepare.resample_factor == 1`` a block's probabilities therefore equal a whole-image pass
  in its core. With another factor the box also ends on the alignment, so that it resamples
  onto the whole image's network grid; that is exact where ``step / factor`` and the image's
  size times the factor are whole numbers, and otherwise off by a fraction of a pixel;
- the **label overlap** (:meth:`BlockLayout.label_box`): the probabilities labelled around a
  core, ``overlap`` px on each side, so that every cell that meets the core lies whole in the
  labelled window (see :mod:`unetseg.infer.seams`).

Boxes are ``(y0, y1, x0, x1)`` in image pixels, end-exclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Box = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)``: rows ``y0..y1-1`` and columns ``x0..x1-1`` of an image."""


def block_boxes(shape: tuple[int, int], block: int) -> list[Box]:
    """The cores of ``block`` x ``block`` px that tile an image of ``shape`` ``(Y, X)``.

    In raster order; the last row and column of cores are cut at the image's edge.
    """
    if block < 1:
        raise ValueError(f"block size must be >= 1, got {block}")
    return [(y, min(y + block, shape[0]), x, min(x + block, shape[1]))
            for y in range(0, shape[0], block) for x in range(0, shape[1], block)]


def network_reach(in_size: int, out_size: int, step: int, scale: float = 1.0,
                  offset: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int]:
    """``(context, align)`` in image px for a network of ``in_size`` → ``out_size`` tiles.

    Parameters
    ----------
    in_size, out_size, step : the card's tile geometry, on the network's grid.
    scale : ``prepare.resample_factor`` (network px per image px).
    offset : the post-processing's label offset ``(dy, dx)`` in px.

    Returns
    -------
    context : px of image a core needs on each side: the tiles over its edge pixels, their
        context, the label offset's reach and, when resampled, the interpolation's support.
    align : network boxes start on multiples of this: the tile step in image px where that is
        a whole number (always at ``scale == 1``), else 1 (no exact alignment exists).
    """
    margin = (in_size - out_size) // 2
    reach = math.ceil(max(abs(offset[0]), abs(offset[1]))) + 1
    if scale == 1:
        return out_size + margin + reach, step
    context = math.ceil((out_size + margin + 4) / scale) + reach
    ratio = step / scale
    return context, int(round(ratio)) if abs(ratio - round(ratio)) < 1e-9 else 1


def seam_guard(grow_px: int) -> int:
    """Px around a cell that labelling it must see: the window of the growth into gaps
    (``2 * grow_px``) and room for its neighbours to keep their size (16 px)."""
    return 2 * grow_px + 16


@dataclass(frozen=True)
class BlockLayout:
    """How one huge image is cut into blocks.

    Attributes
    ----------
    shape : ``(Y, X)`` of the image.
    block : core size in px.
    context, align : the network's reach and alignment (:func:`network_reach`).
    overlap : px of probabilities labelled on each side of a core; cells up to
        ``overlap - guard`` px across are labelled whole and equal to a whole-image pass.
    guard : px of context a cell needs around it (:func:`seam_guard`).
    """

    shape: tuple[int, int]
    block: int
    context: int
    align: int
    overlap: int
    guard: int

    def __post_init__(self) -> None:
        if self.block < 1 or self.context < 0 or self.align < 1 or self.guard < 0:
            raise ValueError(f"bad block layout {self}")
        if self.overlap <= self.guard:
            raise ValueError(f"overlap {self.overlap} px must exceed the guard {self.guard} px")

    @property
    def cores(self) -> list[Box]:
        """The cores, in raster order (:func:`block_boxes`)."""
        return block_boxes(self.shape, self.block)

    @property
    def chunk(self) -> int:
        """Zarr chunk size: the block, or the largest divisor of it not above 1024 px (and not
        below 256), so that each block writes whole chunks and a reader decodes less."""
        sizes = [self.block // k for k in range(1, self.block // 256 + 1)
                 if self.block % k == 0 and self.block // k <= 1024]
        return sizes[0] if sizes else self.block

    @property
    def max_cell(self) -> int:
        """Largest extent (height or width, px) of a cell labelled whole across seams."""
        return self.overlap - self.guard

    def network_box(self, core: Box) -> Box:
        """The image pixels the network reads to predict ``core``; it starts and ends on
        multiples of :attr:`align` (or at the image's edge), so that a resampled box maps
        onto the network grid as the whole image does."""
        y0, y1, x0, x1 = core
        a, c = self.align, self.context
        return ((max(y0 - c, 0) // a) * a, min(-(-(y1 + c) // a) * a, self.shape[0]),
                (max(x0 - c, 0) // a) * a, min(-(-(x1 + c) // a) * a, self.shape[1]))

    def neighbours(self, core: Box) -> list[int]:
        """Indices (into :attr:`cores`) of the cores that ``core``'s label box reads."""
        y0, y1, x0, x1 = self.label_box(core)
        b, columns = self.block, math.ceil(self.shape[1] / self.block)
        return [r * columns + c for r in range(y0 // b, (y1 - 1) // b + 1)
                for c in range(x0 // b, (x1 - 1) // b + 1)]

    def label_box(self, core: Box) -> Box:
        """The probabilities labelled for ``core``: ``overlap`` px more on each side."""
        y0, y1, x0, x1 = core
        o = self.overlap
        return (max(y0 - o, 0), min(y1 + o, self.shape[0]),
                max(x0 - o, 0), min(x1 + o, self.shape[1]))


def inner(box: Box, outer: Box) -> Box:
    """``box`` in the coordinates of ``outer`` (which contains it)."""
    return (box[0] - outer[0], box[1] - outer[0], box[2] - outer[2], box[3] - outer[2])


def box_slices(box: Box) -> tuple[slice, slice]:
    """``box`` as a ``(rows, columns)`` index."""
    return slice(box[0], box[1]), slice(box[2], box[3])
