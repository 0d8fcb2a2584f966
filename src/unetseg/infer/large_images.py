"""Images too large to hold: read a box at a time, written a block at a time.

Inputs are OME-Zarr images (a multiscale group, NGFF 0.4 or 0.5: level 0 as its metadata names
it), plain Zarr arrays and TIFF files (tifffile: memory-mapped where the pixels lie
uncompressed in one piece, else through its Zarr view of the tiles or strips, level 0 of a
pyramid). A :class:`LazyImage` holds only the path and the layout, so it travels to dask
workers cheaply; each process opens the file once and reads boxes from it.

Outputs are OME-Zarr (NGFF 0.4: a Zarr v2 group with ``multiscales`` metadata, axes ``y``,
``x``, one level ``0``; label images also carry ``image-label``), chunked like the blocks so that
each block writes its own chunks, and tiled TIFFs streamed from such a store a band of
chunks at a time (BigTIFF beyond 2 GiB). :mod:`unetseg.images` is the whole-image
counterpart.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from unetseg.errors import InputError
from unetseg.images import TIFF_SUFFIXES, frame_shape

ZARR_SUFFIX = ".zarr"
NGFF_VERSION = "0.4"
_MARKERS = (".zarray", ".zgroup", "zarr.json")


def is_zarr(path: str | os.PathLike[str]) -> bool:
    """True for a folder named ``*.zarr`` or holding Zarr metadata (v2 or v3)."""
    path = Path(path)
    return path.is_dir() and (path.suffix.lower() == ZARR_SUFFIX
                              or any((path / m).is_file() for m in _MARKERS))


def zarr_stem(path: str | os.PathLike[str]) -> str:
    """``name`` of ``name.ome.zarr`` / ``name.zarr`` (the stem outputs are named after)."""
    name = Path(path).name
    for suffix in (".ome.zarr", ZARR_SUFFIX):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


@dataclass(frozen=True)
class LazyImage:
    """A 2-D image on disk, read box by box.

    Attributes
    ----------
    path : the TIFF file or Zarr store.
    array : the array inside a Zarr store (``""``: the store is the array; TIFF: unused).
    stored : the array's shape as stored.
    index : per stored axis, ``-1`` for Y, ``-2`` for X, ``-3`` for colour, else the position
        read on that (singleton) axis.
    dtype : the pixel type as stored.
    """

    path: Path
    array: str
    stored: tuple[int, ...]
    index: tuple[int, ...]
    dtype: str

    @property
    def shape(self) -> tuple[int, int]:
        """``(Y, X)``."""
        return self.stored[self.index.index(-1)], self.stored[self.index.index(-2)]

    @property
    def colour(self) -> bool:
        """True for ``(Y, X, C)`` colour images (read as such; see ``images.to_gray``)."""
        return -3 in self.index

    def read(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """The pixels of ``box = (y0, y1, x0, x1)``: ``(h, w)`` or ``(h, w, C)``, stored dtype."""
        y0, y1, x0, x1 = box
        where: list[Any] = [slice(y0, y1) if i == -1 else slice(x0, x1) if i == -2
                            else slice(None) if i == -3 else i for i in self.index]
        data = np.asarray(_open(self.path, self.array, _stamp(self.path))[tuple(where)])
        order = [i for i in self.index if i < 0]
        return np.transpose(data, np.argsort([-i for i in order]))


def _stamp(path: Path) -> tuple[int, int]:
    """Changes when the file is rewritten, so a cached handle is never stale."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


@functools.lru_cache(maxsize=8)
def _open(path: Path, array: str, stamp: tuple[int, int]) -> Any:
    """An array-like handle on ``path``, once per process and file version."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        with tifffile.TiffFile(path) as tif:
            contiguous = tif.series[0].levels[0].dataoffset is not None
        if contiguous:
            return tifffile.memmap(path, mode="r")
        return zarr.open(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r")
    node = zarr.open(path, mode="r")
    return node[array] if array else node


def open_image(path: str | os.PathLike[str]) -> LazyImage:
    """Describe a TIFF file or Zarr image without reading its pixels.

    Singleton axes (``t``, ``c``, ``z`` of an OME-Zarr, a leading page axis of a TIFF) are
    dropped. TIFFs may be colour ``(Y, X, C)``.

    Raises
    ------
    InputError
        One line naming the file or array: not readable, not an image, not 2-D (with its
        shape), an unsupported pixel type.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _open_tiff(path)
        return _open_zarr(path)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - decoders raise many types on malformed input
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise InputError(f"{path}: cannot read image: {reason}") from None


def _open_tiff(path: Path) -> LazyImage:
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise InputError(f"{path}: cannot read image: no image data")
        series = tif.series[0].levels[0]
        stored, dtype, axes = tuple(int(n) for n in series.shape), series.dtype, series.axes
    shape = frame_shape(path, stored, colour=True)
    colour = len(shape) == 3
    kept = len(stored) - (3 if colour else 2)
    if any(n != 1 for n in stored[:kept]):
        raise InputError(f"{path}: image is a {len(stored)}-D array (shape {stored}, axes "
                         f"{axes}); expected a single 2-D frame")
    index = (0,) * kept + ((-1, -2, -3) if colour else (-1, -2))
    return _checked(LazyImage(path, "", stored, index, str(np.dtype(dtype))), path)


def _open_zarr(path: Path) -> LazyImage:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    try:
        node = zarr.open(path, mode="r")
    except zarr.errors.BaseZarrError:
        raise InputError(f"{path}: not a Zarr array or OME-Zarr image") from None
    name, axes = "", None
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if not multiscales:
            raise InputError(f"{path}: a Zarr group without OME multiscales metadata; expected "
                             "an OME-Zarr image or a Zarr array")
        try:
            name = str(multiscales[0]["datasets"][0]["path"])
            axes = [str(a["name"]) if isinstance(a, dict) else str(a)
                    for a in multiscales[0].get("axes", [])] or None
            node = node[name]
        except (KeyError, IndexError, TypeError):
            raise InputError(f"{path}: OME multiscales metadata names no readable level 0") \
                from None
    where = f"{path}/{name}" if name else str(path)
    stored = tuple(int(n) for n in node.shape)
    if axes is not None and len(axes) != len(stored):
        raise InputError(f"{where}: {len(axes)} axes in the metadata but shape {stored}")
    yx = _yx_axes(stored, axes)
    if yx is None:
        raise InputError(f"{where}: Zarr array has shape {stored}; expected a 2-D (Y, X) image")
    index = tuple(-1 if i == yx[0] else -2 if i == yx[1] else 0 for i in range(len(stored)))
    return _checked(LazyImage(path, name, stored, index, str(node.dtype)), where)


def _yx_axes(stored: tuple[int, ...], axes: list[str] | None) -> tuple[int, int] | None:
    """Positions of Y and X: by name in OME metadata, else the last two; every other axis must
    be a singleton."""
    if axes is not None and "y" in axes and "x" in axes:
        y, x = axes.index("y"), axes.index("x")
    elif len(stored) >= 2:
        y, x = len(stored) - 2, len(stored) - 1
    else:
        return None
    others = [n for i, n in enumerate(stored) if i not in (y, x)]
    if any(n != 1 for n in others) or (axes is None and len(stored) != 2):
        return None
    return y, x


def _checked(image: LazyImage, where: str | Path) -> LazyImage:
    if np.dtype(image.dtype).kind not in "biuf":
        raise InputError(f"{where}: unsupported pixel type {image.dtype}")
    if 0 in image.shape:
        raise InputError(f"{where}: image is empty (shape {image.stored})")
    return image


def ome_metadata(name: str, labels: bool) -> dict[str, Any]:
    """NGFF 0.4 attributes of a one-level 2-D image (``image-label`` for label images)."""
    attrs: dict[str, Any] = {"multiscales": [{
        "version": NGFF_VERSION, "name": name,
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0]}]}]}]}
    if labels:
        attrs["image-label"] = {"version": NGFF_VERSION}
    return attrs


def create_ome_zarr(path: str | os.PathLike[str], shape: tuple[int, int], chunk: int,
                    dtype: np.dtype | str, *, labels: bool, name: str = "") -> zarr.Array:
    """Create an empty one-level OME-Zarr image at ``path`` (a new folder); return level 0.

    ``chunk`` x ``chunk`` chunks (the block size: each block writes its own chunks), zero
    fill, Zstd compression; ``name`` (default: the folder's name) goes into the metadata.
    """
    group = zarr.open_group(Path(path), mode="w", zarr_format=2)
    group.attrs.update(ome_metadata(name or Path(path).name, labels))
    return group.create_array("0", shape=shape, chunks=(chunk, chunk), dtype=dtype,
                              fill_value=0)


def open_level0(path: str | os.PathLike[str], mode: str = "r") -> zarr.Array:
    """Level 0 of an OME-Zarr image written by :func:`create_ome_zarr`."""
    return zarr.open_group(Path(path), mode=mode)["0"]


def _tiles(array: zarr.Array, tile: int) -> Iterator[np.ndarray]:
    """The ``tile`` x ``tile`` tiles of ``array`` in row-major order, one band of chunks read
    at a time."""
    height, width = array.shape
    band = max(array.chunks[0] // tile, 1) * tile
    for y in range(0, height, band):
        rows = np.asarray(array[y: y + band])
        for ty in range(0, rows.shape[0], tile):
            for tx in range(0, width, tile):
                yield rows[ty: ty + tile, tx: tx + tile]


def write_tiled_tiff(path: str | os.PathLike[str], array: zarr.Array, tile: int = 512) -> None:
    """Stream a 2-D Zarr array into a zlib-compressed tiled TIFF at ``path`` (no metadata,
    BigTIFF beyond 2 GiB); memory holds one band of chunks."""
    nbytes = int(np.prod(array.shape)) * array.dtype.itemsize
    tifffile.imwrite(path, _tiles(array, tile), shape=array.shape, dtype=array.dtype,
                     tile=(tile, tile), compression="zlib", photometric="minisblack",
                     metadata=None, software=False, bigtiff=nbytes >= 2**31)
