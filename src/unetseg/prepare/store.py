"""HDF5 stores: prepared whole images and ready-to-train tile stacks.

Both are chunked, gzip-compressed, written without timestamps (byte-identical when
re-run with the same inputs) and read lazily, one sample or batch at a time, so a
dataset larger than memory streams.

Prepared store (``data/prepared/{train,test}.h5``)::

    /samples/<name>/image    (Y, X) uint8|uint16  raw intensities
    /samples/<name>/mask     (Y, X) uint16        instance labels, 0 = background
    /samples/<name>/classes  (Y, X) uint8         training target: 1 = cell, 0 = background
                                                  (touching cells separated, paper Fig. 3c)
    /samples/<name>/weights  (Y, X) float32       weight map, paper Eq. 2
    /tiles                   (N, 3) int32         (sample index, y, x) output-tile origins
                                                  on the grid the network works on
    attrs: names (JSON list), origins (JSON list), prepare (the params, JSON), in_size,
           out_size, step

The test store holds the images and masks alone (evaluate tiles them itself, at the recorded
resolution); the training store holds resampled arrays when ``prepare.resample_factor != 1``.

Tile store (``data/augmented/train.h5``)::

    /inputs   (N, in, in)   float32  normalised image tiles with mirrored context
    /classes  (N, out, out) uint8
    /weights  (N, out, out) float32  0 outside the image
    /sample   (N,) int32             index of the source image
    /copy     (N,) int32             0 = original, k ≥ 1 = k-th augmented copy
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unetseg.config import PrepareParams
from unetseg.errors import InputError

_COMPRESS: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True,
                             "track_times": False}


@dataclass(frozen=True)
class PreparedSample:
    """One prepared image; arrays as in the module docstring (no targets in a test store)."""

    name: str
    origin: str
    image: np.ndarray
    mask: np.ndarray
    classes: np.ndarray | None = None
    weights: np.ndarray | None = None


def _dataset(group: h5py.Group, name: str, data: np.ndarray, chunk: tuple[int, ...]) -> None:
    chunks = tuple(min(c, s) for c, s in zip(chunk, data.shape, strict=True)) if data.size else None
    options = _COMPRESS if data.size else {"track_times": False}
    group.create_dataset(name, data=data, chunks=chunks, **options)


def _create_file(path: Path) -> h5py.File:
    """A new HDF5 file whose objects carry no timestamps (h5py only drops them for datasets)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    fcpl.set_attr_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    return h5py.File(h5py.h5f.create(str(path).encode(), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl))


def _create_group(parent: h5py.Group, name: str) -> h5py.Group:
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    gcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def _open(path: Path) -> h5py.File:
    """Open a store for reading; a missing or unreadable file is an :class:`InputError`."""
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError:
        raise InputError(f"{path}: not a readable HDF5 store") from None


def _attrs_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def tile_table(positions: list[np.ndarray]) -> np.ndarray:
    """``(N, 3)`` int32 rows (sample index, y, x) from each sample's ``(n_i, 2)`` tile origins."""
    rows = [np.hstack([np.full((len(p), 1), i), p]) for i, p in enumerate(positions)]
    return np.concatenate(rows).astype(np.int32) if rows else np.zeros((0, 3), np.int32)


def write_prepared(path: Path, samples: list[PreparedSample], attrs: dict[str, Any],
                   tiles: np.ndarray | None = None) -> None:
    """Write a prepared store at ``path`` (the caller makes it atomic).

    ``attrs`` are stored as JSON-encoded file attributes (``prepare``, ``in_size``...);
    ``tiles`` is ``(N, 3)`` int32 (sample index, y, x), for a training store. A sample's
    ``classes`` and ``weights`` are written when it has them.
    """
    with _create_file(path) as f:
        f.attrs["names"] = _attrs_json([s.name for s in samples])
        f.attrs["origins"] = _attrs_json([s.origin for s in samples])
        for key, value in sorted(attrs.items()):
            f.attrs[key] = _attrs_json(value)
        group = _create_group(f, "samples")
        for s in samples:
            g = _create_group(group, s.name)
            for key in ("image", "mask", "classes", "weights"):
                if getattr(s, key) is not None:
                    _dataset(g, key, getattr(s, key), (256, 256))
        if tiles is not None:
            _dataset(f, "tiles", np.asarray(tiles, dtype=np.int32).reshape(-1, 3), (4096, 3))


class PreparedReader:
    """Lazy reader of a prepared store: nothing is loaded until a sample is asked for."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = _open(self.path)
        self.names: list[str] = json.loads(self._file.attrs["names"])
        self.origins: list[str] = json.loads(self._file.attrs["origins"])

    def attr(self, key: str) -> Any:
        """A JSON-decoded file attribute."""
        return json.loads(self._file.attrs[key])

    @property
    def tiles(self) -> np.ndarray:
        """``(N, 3)`` int32 (sample index, y, x)."""
        return self._file["tiles"][()]

    def positions(self, index: int) -> np.ndarray:
        """``(n, 2)`` int64 output-tile origins ``(y, x)`` of sample ``index``."""
        tiles = self.tiles
        return tiles[tiles[:, 0] == index, 1:].astype(np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> PreparedSample:
        name = self.names[index]
        g = self._file["samples"][name]
        targets = [g[key][()] if key in g else None for key in ("classes", "weights")]
        return PreparedSample(name, self.origins[index], g["image"][()], g["mask"][()], *targets)

    def __iter__(self) -> Iterator[PreparedSample]:
        return (self[i] for i in range(len(self)))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PreparedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TileWriter:
    """Append tiles to a tile store of known final length ``n`` at ``path``."""

    def __init__(self, path: Path, n: int, in_size: int, out_size: int,
                 attrs: dict[str, Any]) -> None:
        self._file = _create_file(path)
        for key, value in sorted(attrs.items()):
            self._file.attrs[key] = _attrs_json(value)
        shapes = {"inputs": ((n, in_size, in_size), np.float32),
                  "classes": ((n, out_size, out_size), np.uint8),
                  "weights": ((n, out_size, out_size), np.float32),
                  "sample": ((n,), np.int32), "copy": ((n,), np.int32)}
        for key, (shape, dtype) in shapes.items():
            chunks = (1, *shape[1:]) if len(shape) > 1 else (max(min(n, 4096), 1),)
            self._file.create_dataset(key, shape=shape, dtype=dtype, chunks=chunks if n else None,
                                      **(_COMPRESS if n else {"track_times": False}))
        self.n = n
        self._pos = 0

    def append(self, inputs: np.ndarray, classes: np.ndarray, weights: np.ndarray,
               sample: int, copy: int) -> None:
        """Append ``(k, in, in)`` inputs and ``(k, out, out)`` classes/weights of one image."""
        k = len(inputs)
        sl = slice(self._pos, self._pos + k)
        self._file["inputs"][sl] = inputs
        self._file["classes"][sl] = classes
        self._file["weights"][sl] = weights
        self._file["sample"][sl] = sample
        self._file["copy"][sl] = copy
        self._pos += k

    def close(self) -> None:
        if self._pos != self.n:
            self._file.close()
            raise RuntimeError(f"tile store expected {self.n} tiles, got {self._pos}")
        self._file.close()

    def __enter__(self) -> TileWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()


class TileReader:
    """Random access to a tile store, reading only the requested tiles."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = _open(self.path)
        self.sample: np.ndarray = self._file["sample"][()]
        self.copy: np.ndarray = self._file["copy"][()]
        self.in_size = int(self._file["inputs"].shape[1]) if len(self.sample) else 0
        self.out_size = int(self._file["classes"].shape[1]) if len(self.sample) else 0

    def attr(self, key: str) -> Any:
        return json.loads(self._file.attrs[key])

    def __len__(self) -> int:
        return len(self.sample)

    def read(self, indices: np.ndarray,
             fields: tuple[str, ...] = ("inputs", "classes", "weights")) -> tuple[np.ndarray, ...]:
        """The tiles' ``fields``, in that order and in the order of ``indices``.

        By default inputs ``(B, in, in)``, classes ``(B, out, out)``, weights ``(B, out, out)``;
        pass fewer names to read only those datasets.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        order = np.argsort(indices, kind="stable")
        out = []
        for key in fields:
            dataset = self._file[key]
            found = np.empty((len(indices), *dataset.shape[1:]), dtype=dataset.dtype)
            # One chunk per tile, read in file order straight into place (a repeated
            # index is copied): h5py's fancy indexing is several times slower.
            previous, last = -1, 0
            for pos in order:
                if indices[pos] == previous:
                    found[pos] = found[last]
                else:
                    dataset.read_direct(found, np.s_[indices[pos]], np.s_[pos])
                previous, last = indices[pos], pos
            out.append(found)
        return tuple(out)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recorded_prepare(store: PreparedReader | TileReader) -> PrepareParams:
    """The ``prepare`` params a prepared or tile store was made with: the one reader of that fact.

    prepare records them in its stores; augment copies them into the tile store, so that
    augment rebuilds the targets of deformed copies as prepare built the originals, and train
    writes them into the model card.

    Raises
    ------
    InputError
        When the store does not record them (an older or foreign store).
    """
    try:
        return PrepareParams(**store.attr("prepare"))
    except (KeyError, TypeError):
        raise InputError(f"{store.path}: the store does not record the prepare params it was "
                         "made with; re-run the prepare and augment stages") from None
