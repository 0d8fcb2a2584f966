"""Segment an image too large to hold, block by block, as dask tasks.

Four passes over the blocks of :class:`~unetseg.infer.blocks.BlockLayout`, as dask tasks
(:class:`~unetseg.infer.cluster.Runner`) with only small results coming back to the client:

0. **levels**: per-block histograms (after the same conversion to 8/16 bit as a whole image
   gets, :func:`unetseg.images.as_frame`, with the whole image's minimum and maximum, and the
   card's resampling) summed into the exact normalisation percentiles
   (:func:`unetseg.images.histogram_percentiles`);
1. **predict**: each block's network context is read, normalised with those levels and
   predicted where its core needs it; the core's probabilities go to a scratch Zarr store;
2. **label**: each block labels its core plus the label overlap of probabilities and paints
   its core with cell keys (:mod:`unetseg.infer.seams`); it returns the keys it owns. Passes
   1 and 2 are one graph: a label task waits only for the blocks it reads, so labelling
   (numpy, one core) overlaps the network (all cores);
3. **number**: the client sorts the keys into global numbers (uint16, or uint32 beyond
   65,535 cells) and each block rewrites its core with them, into the OME-Zarr output
   or a scratch store streamed into a tiled TIFF.

No process holds the whole image: a task holds a block and its margins, the client holds the
cells' keys (8 bytes a cell) and, for TIFF output, one band of blocks. Every task writes only
its own core's chunks, so a task that a cluster runs twice writes the same bytes twice.

The probabilities equal a whole-image pass up to float rounding of differently batched
tiles (~1e-7), and with ``instances: components`` so do the labels; with resampling, where
the block alignment is exact (:mod:`unetseg.infer.blocks`). Scratch stores live in
a hidden folder beside the output (so that workers on a shared file system reach them) and
are removed at the end; outputs appear complete or not at all (:func:`unetseg.files.atomic_path`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from unetseg.config import PostprocessParams
from unetseg.errors import InputError
from unetseg.files import atomic_path, scratch_folder
from unetseg.images import as_frame, histogram_percentiles, label_dtype, to_gray
from unetseg.infer.blocks import BlockLayout, Box, box_slices, inner, network_reach, seam_guard
from unetseg.infer.cluster import Runner, worker_segmenter
from unetseg.infer.instances import label_maps
from unetseg.infer.large_images import (
    LazyImage,
    create_ome_zarr,
    open_level0,
    write_tiled_tiff,
)
from unetseg.infer.seams import block_cells, number_cells
from unetseg.prepare.resampling import resample_image
from unetseg.train.card import ModelCard

DEFAULT_BLOCK = 2048
"""Core size in px: a block and its margins stay well under 1 GB of working memory."""
DEFAULT_OVERLAP = 256
"""Label overlap in px: cells up to ``256 - guard`` px across are labelled whole across seams."""
_LABELLING = threading.Lock()
"""One labelling at a time per process: it holds the GIL most of its time, so a second one
in another thread would only add its memory (some 300 MB for a default block)."""


@dataclass(frozen=True)
class BlockJob:
    """What every task of one image needs; small, as it travels with each task."""

    model_dir: Path
    postprocess: PostprocessParams
    batch_size: int
    image: LazyImage
    layout: BlockLayout
    scratch: Path
    scale: float = 1.0
    frame_range: tuple[float, float] | None = None
    levels: tuple[float, float] | None = None
    distance: bool = False


@dataclass(frozen=True)
class BlockResult:
    """What block-wise segmentation of one image found.

    Attributes
    ----------
    objects : cells in the output (whole cells and pieces).
    pieces : parts of cells larger than the overlap allows, each labelled on its own.
    unowned : cells that neighbouring blocks labelled differently, numbered per block
        (:class:`~unetseg.infer.seams.Numbering`).
    blocks : number of blocks.
    dtype : the label dtype written.
    """

    objects: int
    pieces: int
    unowned: int
    blocks: int
    dtype: str


def block_layout(shape: tuple[int, int], card: ModelCard, postprocess: PostprocessParams,
                 block: int = DEFAULT_BLOCK, overlap: int = DEFAULT_OVERLAP) -> BlockLayout:
    """The blocks of an image of ``shape`` for this network and post-processing.

    Raises
    ------
    InputError
        ``--block-size`` below 64 px or an overlap that leaves no room for a cell.
    """
    guard = seam_guard(postprocess.grow_into_gaps_px)
    if block < 64:
        raise InputError(f"--block-size: must be >= 64 px, got {block}")
    if overlap <= guard:
        raise InputError(f"--block-overlap: must exceed {guard} px (twice the growth into gaps "
                         f"plus 16), got {overlap}")
    context, align = network_reach(card.model.tile_size, card.out_size, card.step,
                                   card.prepare.resample_factor, postprocess.label_offset)
    return BlockLayout(tuple(shape), block, context, align, overlap, guard)  # type: ignore[arg-type]


def _gray(image: LazyImage, box: Box) -> np.ndarray:
    raw = image.read(box)
    return to_gray(raw) if raw.ndim == 3 else raw


def _range_task(box: Box, image: LazyImage) -> tuple[float, float, int]:
    """Minimum, maximum and non-finite pixels of a box (of a non-8/16-bit image)."""
    gray = _gray(image, box)
    bad = int(np.count_nonzero(~np.isfinite(gray))) if gray.dtype.kind == "f" else 0
    finite = gray[np.isfinite(gray)] if bad else gray
    if not finite.size:
        return np.inf, -np.inf, bad
    return float(finite.min()), float(finite.max()), bad


def _frame(job: BlockJob, box: Box) -> np.ndarray:
    gray = _gray(job.image, box)
    return gray if job.frame_range is None else as_frame(gray, *job.frame_range)


def _histogram_task(core: Box, job: BlockJob) -> np.ndarray:
    """Pixel counts of a core as the network's normalisation sees it: resampled, when the card
    resamples (from the core's network box, so that its pixels are the whole image's)."""
    if job.scale == 1:
        frame = _frame(job, core)
    else:
        box = job.layout.network_box(core)
        net = [round(v * job.scale) - round(o * job.scale)
               for v, o in zip(core, (box[0], box[0], box[2], box[2]), strict=True)]
        frame = resample_image(_frame(job, box), job.scale)[box_slices(tuple(net))]
    return np.bincount(frame.ravel(), minlength=256 if frame.dtype == np.uint8 else 65536)


def _scratch(job: BlockJob, name: str, mode: str = "r+") -> zarr.Array:
    return open_level0(job.scratch / name, mode)


def _predict_task(core: Box, job: BlockJob) -> None:
    """Predict one core from its network context; write its maps to the scratch stores."""
    box = job.layout.network_box(core)
    frame = _frame(job, box)
    segmenter, lock = worker_segmenter(job.model_dir, job.postprocess, job.batch_size)
    c = inner(core, box)
    with lock:
        maps = segmenter.maps(frame, levels=job.levels, within=c)
    _scratch(job, "prob")[box_slices(core)] = maps[(*box_slices(c), 0)]
    if job.distance:
        _scratch(job, "distance")[box_slices(core)] = maps[(*box_slices(c), 1)]


def _label_task(core: Box, job: BlockJob, *_predicted: None) -> tuple[np.ndarray, np.ndarray,
                                                                      int]:
    """Label one core and its overlap (once the blocks it reads are predicted); paint the core
    with cell keys (scratch ``local``)."""
    box = job.layout.label_box(core)
    prob = np.asarray(_scratch(job, "prob", "r")[box_slices(box)])
    maps = prob[..., None]
    if job.distance:
        distance = np.asarray(_scratch(job, "distance", "r")[box_slices(box)])
        maps = np.stack([prob, distance], axis=-1)
    with _LABELLING:
        labels = label_maps(maps, job.postprocess)
        cells = block_cells(labels, prob > job.postprocess.threshold, box, core,
                            job.layout.shape, job.layout.max_cell)
    _scratch(job, "local")[box_slices(core)] = cells.local
    return cells.keys, cells.owned, cells.pieces


def _number_task(item: tuple[Box, np.ndarray], job: BlockJob, target: Path) -> None:
    """Rewrite one core's keys as global cell numbers into ``target``."""
    core, lut = item
    local = np.asarray(_scratch(job, "local", "r")[box_slices(core)])
    open_level0(target, "r+")[box_slices(core)] = lut[local]


def _levels(job: BlockJob, runner: Runner) -> BlockJob:
    """``job`` with the image's conversion range and normalisation levels."""
    cores, where = job.layout.cores, job.image.path
    if np.dtype(job.image.dtype) not in (np.uint8, np.uint16):
        parts = runner.map("unetseg-range", _range_task, cores, job.image)
        bad = sum(p[2] for p in parts)
        if bad:
            raise InputError(f"{where}: image contains NaN or infinite values ({bad} pixels)")
        lo, hi = min(p[0] for p in parts), max(p[1] for p in parts)
        if lo == hi:
            raise InputError(f"{where}: image is constant (every pixel is {lo:g}); not a "
                             "usable frame")
        job = dataclasses.replace(job, frame_range=(lo, hi))
    counts = sum(runner.map("unetseg-histogram", _histogram_task, cores, job))
    values = np.flatnonzero(counts)
    if len(values) < 2:
        raise InputError(f"{where}: image is constant (every pixel is {values[0]}); not a "
                         "usable frame")
    return dataclasses.replace(job, levels=histogram_percentiles(counts))


def segment_blockwise(image: LazyImage, target: Path, *, model_dir: Path, card: ModelCard,
                      postprocess: PostprocessParams, runner: Runner, batch_size: int = 4,
                      block: int = DEFAULT_BLOCK, overlap: int = DEFAULT_OVERLAP,
                      probability: Path | None = None,
                      max_objects: int | None = None) -> BlockResult:
    """Segment ``image`` block by block and write its labels to ``target``.

    Parameters
    ----------
    image : the input, read lazily.
    target : ``*.zarr`` (OME-Zarr, chunked like the blocks) or ``*.tif`` (tiled TIFF).
    model_dir, card, postprocess, batch_size : the model folder (workers load it themselves),
        its card and the post-processing to use.
    runner : where the tasks run.
    block, overlap : core size and label overlap in px (:class:`BlockLayout`).
    probability : where to write the cell probability too (float32, OME-Zarr or TIFF).
    max_objects : refuse to write labels with more cells (the challenge layout: 65,535).

    Returns
    -------
    The :class:`BlockResult`.

    Raises
    ------
    InputError
        A constant image, NaN or infinite pixels, a bad block size or overlap, more cells
        than ``max_objects``; nothing is written then.
    """
    layout = block_layout(image.shape, card, postprocess, block, overlap)
    image = dataclasses.replace(image, path=image.path.absolute())
    target = target.absolute()
    probability = probability.absolute() if probability is not None else None
    with scratch_folder(target) as scratch:
        job = BlockJob(Path(model_dir).resolve(), postprocess, batch_size, image, layout,
                       scratch, card.prepare.resample_factor,
                       distance=postprocess.instances == "distance")
        job = _levels(job, runner)
        for name in ("prob", "distance")[: 1 + job.distance]:
            create_ome_zarr(scratch / name, layout.shape, layout.chunk, np.float32,
                            labels=False, name=probability.name if probability else name)
        create_ome_zarr(scratch / "local", layout.shape, layout.chunk, np.uint32, labels=True)
        cores = layout.cores
        predicted = runner.tasks("unetseg-predict-block", _predict_task, cores, job)
        cells = runner.compute(runner.tasks(
            "unetseg-label-block", _label_task, cores, job,
            after=[[predicted[i] for i in layout.neighbours(core)] for core in cores]))
        numbering = number_cells([c[0] for c in cells], [c[1] for c in cells])
        if max_objects is not None and numbering.total > max_objects:
            raise InputError(f"{image.path}: {numbering.total} cells, more than the "
                             f"{max_objects} a 16-bit challenge mask holds")
        dtype = label_dtype(numbering.total)
        luts = [lut.astype(dtype) for lut in numbering.luts]
        if probability is not None:
            _publish(scratch / "prob", probability)
        if target.suffix.lower() == ".tif":
            create_ome_zarr(scratch / "labels", layout.shape, layout.chunk, dtype, labels=True,
                            name=target.name)
            runner.map("unetseg-number-block", _number_task, list(zip(cores, luts, strict=True)),
                       job, scratch / "labels")
            _publish(scratch / "labels", target)
        else:
            with atomic_path(target) as tmp:
                create_ome_zarr(tmp, layout.shape, layout.chunk, dtype, labels=True,
                                name=target.name)
                runner.map("unetseg-number-block", _number_task,
                           list(zip(cores, luts, strict=True)), job, tmp)
    pieces = int(sum(c[2] for c in cells))
    return BlockResult(numbering.total, pieces, numbering.unowned, len(cores),
                       str(np.dtype(dtype)))


def _publish(store: Path, target: Path) -> None:
    """Move a finished scratch OME-Zarr store to ``target`` (``*.zarr``), or stream it into a
    tiled TIFF there; atomically either way."""
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".tif":
            write_tiled_tiff(tmp, open_level0(store))
        else:
            os.replace(store, tmp)
