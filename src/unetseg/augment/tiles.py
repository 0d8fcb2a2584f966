"""The training tile set: normalised, augmented whole images cut into overlap tiles."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from unetseg.augment.deform import augment_pair
from unetseg.config import AugmentParams
from unetseg.images import normalize
from unetseg.prepare.store import PreparedReader, PreparedSample, TileWriter, recorded_prepare
from unetseg.prepare.targets import target_options, training_target
from unetseg.tiling import TileGrid, extract_tiles, mirror_pad


def training_tiles(image: np.ndarray, classes: np.ndarray, weights: np.ndarray,
                   grid: TileGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut one image into training tiles on ``grid`` (paper Fig. 2).

    Parameters
    ----------
    image : (Y, X) float32 normalised image.
    classes : (Y, X) uint8 target classes.
    weights : (Y, X) float32 weight map.

    Returns
    -------
    inputs : (N, in, in) float32 with mirrored context.
    classes, weights : (N, out, out); weights are 0 where the output window
        runs past the image, so mirrored pixels never count in the loss.
    """
    inputs = extract_tiles(mirror_pad(image, grid), grid, grid.in_size)
    padded = [mirror_pad(a, grid) for a in (classes, weights)]
    valid = np.pad(np.ones(image.shape, dtype=np.float32), grid.padding)
    m, s = grid.margin, grid.out_size
    return (inputs, extract_tiles(padded[0], grid, s, m),
            extract_tiles(padded[1] * valid, grid, s, m))


@dataclass(frozen=True)
class TileJob:
    """Everything needed to build the tiles of one prepared image (picklable for workers).

    ``augment`` holds :func:`unetseg.augment.deform.augment_pair` keyword arguments;
    ``target`` holds :func:`unetseg.prepare.targets.training_target` keyword arguments.
    """

    index: int
    sample: PreparedSample
    grid: TileGrid
    copies: int
    seed: int
    augment: dict[str, Any]
    target: dict[str, Any]


def build_tiles(job: TileJob) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Original tiles (copy 0) and ``job.copies`` augmented versions of one image.

    Copy ``c`` of image ``i`` draws from ``default_rng([seed, i, c])``, so results do
    not depend on processing order or on how many workers run. The weight map of an
    augmented copy is recomputed from its deformed mask, keeping it consistent.
    """
    s = job.sample
    image = normalize(s.image)
    out = [(0, *training_tiles(image, s.classes, s.weights, job.grid))]
    for copy in range(1, job.copies + 1):
        rng = np.random.default_rng([job.seed, job.index, copy])
        warped, mask = augment_pair(image, s.mask, rng, **job.augment)
        classes, weights = training_target(mask, **job.target)
        out.append((copy, *training_tiles(warped, classes, weights, job.grid)))
    return out


def tile_jobs(reader: PreparedReader, a: AugmentParams) -> Iterator[TileJob]:
    """One :class:`TileJob` per prepared image, its targets rebuilt as prepare built them."""
    in_size, out_size = reader.attr("in_size"), reader.attr("out_size")
    target = target_options(recorded_prepare(reader))
    augment = {k: v for k, v in dataclasses.asdict(a).items() if k not in ("copies", "seed")}
    for i, sample in enumerate(reader):
        grid = TileGrid(in_size, out_size, reader.positions(i), sample.mask.shape)
        yield TileJob(i, sample, grid, a.copies, a.seed, augment, target)


def write_tile_store(reader: PreparedReader, path: Path, a: AugmentParams, workers: int) -> int:
    """Write every image's original and ``a.copies`` augmented tiles to a tile store.

    Images are processed by ``workers`` forked processes (1: in this one), in order, so
    the store is byte-identical for any number of workers. The store's attributes record
    the augment params and, copied from the prepared store, the prepare params. Returns the
    number of tiles written.
    """
    n_tiles = len(reader.tiles) * (a.copies + 1)
    jobs = tile_jobs(reader, a)
    attrs = {"augment": dataclasses.asdict(a),
             "prepare": dataclasses.asdict(recorded_prepare(reader))}
    with TileWriter(path, n_tiles, reader.attr("in_size"), reader.attr("out_size"),
                    attrs) as writer, multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.imap(build_tiles, jobs) if workers > 1 else map(build_tiles, jobs)
        for i, per_copy in enumerate(tqdm(results, total=len(reader), desc="augment",
                                          unit="image", disable=None)):
            for copy, inputs, classes, weights in per_copy:
                writer.append(inputs, classes, weights, i, copy)
    return n_tiles
