"""The training input pipeline: a train/validation split and a streaming batch source."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from unetseg.store import TileReader
from unetseg.targets import distance_target


def split_by_sample(sample: np.ndarray, copy: np.ndarray, val_fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile indices for training and validation, split by source image.

    Validation uses only the original (``copy == 0``) tiles of a seeded subset of
    images; training uses every tile of the other images, so no augmented copy of a
    validation image leaks into training.
    """
    images = np.unique(sample)
    n_val = min(int(round(val_fraction * len(images))), len(images) - 1) if val_fraction > 0 else 0
    if val_fraction > 0 and len(images) >= 2:
        n_val = max(n_val, 1)
    val_images = np.random.default_rng(seed).permutation(images)[:n_val]
    is_val = np.isin(sample, val_images)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val & (copy == 0))


def contact_tiles(reader: TileReader, indices: np.ndarray, w0: float, *, min_px: int = 20,
                  chunk: int = 64) -> np.ndarray:
    """Which tiles show two cells within about sigma of each other (paper Eq. 2).

    A background pixel is a contact where the border term of Eq. 2,
    ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))``, exceeds ``w0 / 2`` (so
    ``d1 + d2 < 1.18 sigma``): its weight exceeds the tile's lowest background
    weight (the class weight w_c, constant within an image) by more than ``w0 / 2``.
    Pixels outside the image (weight 0) never count. Tiles are read ``chunk`` at a time.

    Parameters
    ----------
    reader : an open tile store.
    indices : (N,) int tile indices.
    w0 : the ``w0`` the store's weight maps were built with (> 0).
    min_px : contact pixels a tile needs to count.

    Returns
    -------
    np.ndarray
        (N,) bool, True for tiles with at least ``min_px`` contact pixels.
    """
    def has_contact(classes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        background = (classes == 0) & (weights > 0)
        lowest = np.where(background, weights, np.inf).min(axis=(1, 2), keepdims=True)
        contact = background & (weights - lowest > w0 / 2)
        return contact.sum(axis=(1, 2)) >= min_px

    return _tile_test(reader, indices, has_contact, chunk)


def weighted_tiles(reader: TileReader, indices: np.ndarray, *, chunk: int = 64) -> np.ndarray:
    """Which tiles have any pixel of non-zero weight, i.e. anything to learn from.

    Tiles of a partially annotated image far from its annotated cells
    (``prepare.ignore_beyond_px``) have none.

    Returns
    -------
    np.ndarray
        (N,) bool for the (N,) int tile ``indices``.
    """
    return _tile_test(reader, indices, lambda _, weights: (weights > 0).any(axis=(1, 2)), chunk)


def _tile_test(reader: TileReader, indices: np.ndarray,
               test: Callable[[np.ndarray, np.ndarray], np.ndarray], chunk: int) -> np.ndarray:
    """``test(classes, weights)`` of (B, Y, X) tile batches, read ``chunk`` at a time; (N,) bool."""
    indices = np.asarray(indices, dtype=np.int64)
    found = np.zeros(len(indices), dtype=bool)
    for start in range(0, len(indices), chunk):
        found[start:start + chunk] = test(*reader.read(indices[start:start + chunk],
                                                       ("classes", "weights")))
    return found


def oversample(indices: np.ndarray, chosen: np.ndarray, extra: int) -> np.ndarray:
    """``indices`` followed by ``extra`` more copies of ``indices[chosen]``.

    Each epoch then draws a chosen tile ``1 + extra`` times as often as the others
    (nnU-Net oversamples foreground tiles the same way).
    """
    indices = np.asarray(indices, dtype=np.int64)
    return np.concatenate([indices] + [indices[np.asarray(chosen, dtype=bool)]] * extra)


class TileBatches(keras.utils.PyDataset):
    """Batches ``(x, y)`` streamed from a tile store, reshuffled each epoch by seed.

    ``x`` is ``(B, in, in, 1)`` float32; ``y`` is ``(B, out, out, 2)`` float32 with
    the class in channel 0 and the weight map in channel 1 (see
    :func:`unetseg.losses.weighted_cross_entropy`). With ``distance_clip`` > 0 ``y``
    has two more channels, the distance head's target and mask
    (:func:`unetseg.targets.distance_target`), computed from each batch's classes.
    Only the tiles of one batch are read at a time, in file order. The file is opened
    lazily, once per process, so the object can be sent to worker processes
    (``workers`` > 1 reads batches in that many processes ahead of training).

    With ``multiple`` > 1 (the replica count of a data-parallel run, which splits each
    batch evenly over its devices) every batch is cut to a multiple of it: a last
    partial batch loses up to ``multiple - 1`` tiles, or is left out when smaller.
    """

    def __init__(self, path: Path, indices: np.ndarray, batch_size: int, *, shuffle: bool,
                 seed: int, steps: int = 0, distance_clip: float = 0.0, multiple: int = 1,
                 workers: int = 1) -> None:
        super().__init__(workers=workers, use_multiprocessing=workers > 1)
        if batch_size % multiple:
            raise ValueError(f"batch size {batch_size} is not a multiple of {multiple}")
        self.distance_clip = distance_clip
        self.path = Path(path)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.steps = steps
        self.multiple = multiple
        self.epoch = 0
        self._reader: TileReader | None = None
        self._pid = 0
        self._order = self._make_order()

    def _make_order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng([self.seed, self.epoch])
        reps = max(1, math.ceil(self.steps * self.batch_size / max(len(self.indices), 1)))
        return np.concatenate([rng.permutation(self.indices) for _ in range(reps)])

    def __len__(self) -> int:
        if self.steps:
            return self.steps
        full, rest = divmod(len(self.indices), self.batch_size)
        return full + (rest >= self.multiple)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self._reader is None or self._pid != os.getpid():
            self._reader = TileReader(self.path)
            self._pid = os.getpid()
        batch = self._order[index * self.batch_size: (index + 1) * self.batch_size]
        batch = batch[:len(batch) - len(batch) % self.multiple]
        inputs, classes, weights = self._reader.read(batch)
        y = np.empty((*classes.shape, 4 if self.distance_clip > 0 else 2), dtype=np.float32)
        y[..., 0] = classes
        y[..., 1] = weights
        if self.distance_clip > 0:
            y[..., 2], y[..., 3] = distance_target(classes, weights, self.distance_clip)
        return inputs[..., None], y

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_reader": None, "_pid": 0}

    def set_epoch(self, epoch: int) -> None:
        """Continue the shuffling sequence at ``epoch`` (when resuming a run)."""
        self.epoch = epoch
        self._order = self._make_order()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def close(self) -> None:
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None
