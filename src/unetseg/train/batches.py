"""The training input pipeline: a train/validation split and a streaming batch source."""

from __future__ import annotations

import math
import os
from pathlib import Path

import keras
import numpy as np

from unetseg.config import ModelParams, TrainParams
from unetseg.errors import InputError
from unetseg.prepare.store import TileReader
from unetseg.prepare.targets import distance_target


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


def training_batches(path: Path, m: ModelParams, p: TrainParams,
                     replicas: int = 1) -> tuple[TileBatches, TileBatches | None]:
    """Training and validation batches of a tile store, split by image (:func:`split_by_sample`).

    The training batches are reshuffled every epoch, ``p.fixed_steps_per_epoch`` of them (0: one
    pass); the validation batches (None when fewer images than ``replicas`` are held out) are
    not shuffled. With ``p.distance_weight`` > 0 both carry the distance head's targets. Every
    batch is a multiple of ``replicas`` tiles (see :class:`TileBatches`), read by
    ``p.workers`` processes.

    Raises
    ------
    InputError
        When the store's tiles do not match ``m``'s tile geometry, or it has no tiles.
    """
    with TileReader(path) as reader:
        if reader.in_size != m.tile_size or reader.out_size != m.out_size:
            raise InputError(f"{path}: tiles are {reader.in_size}->{reader.out_size} px but "
                             f"model.tile_size gives {m.tile_size}->{m.out_size}; re-run prepare")
        if len(reader) == 0:
            raise InputError(f"{path}: no training tiles")
        train_idx, val_idx = split_by_sample(reader.sample, reader.copy, p.val_fraction, p.seed)
    clip = p.distance_clip if p.distance_head else 0.0
    common = {"distance_clip": clip, "multiple": replicas, "workers": p.workers, "seed": p.seed}
    train = TileBatches(path, train_idx, p.batch_size, shuffle=True,
                        steps=p.fixed_steps_per_epoch, **common)
    val = (TileBatches(path, val_idx, p.batch_size, shuffle=False, **common)
           if len(val_idx) >= replicas else None)
    return train, val


class TileBatches(keras.utils.PyDataset):
    """Batches ``(x, y)`` streamed from a tile store, reshuffled each epoch by seed.

    ``x`` is ``(B, in, in, 1)`` float32; ``y`` is ``(B, out, out, 2)`` float32 with
    the class in channel 0 and the weight map in channel 1 (see
    :func:`unetseg.train.losses.weighted_cross_entropy`). With ``distance_clip`` > 0 ``y``
    has two more channels, the distance head's target and mask
    (:func:`unetseg.prepare.targets.distance_target`), computed from each batch's classes.
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
