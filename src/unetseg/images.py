"""Single 2-D images: TIFF/PNG reading with validation, deterministic PNG/TIFF writing, and the
percentile normalisation every network input gets.

Readers turn every decoding problem into a one-line :class:`~unetseg.errors.InputError`
that names the file. ``check_image`` and ``check_mask`` decide what a raw frame and an
instance mask may contain; the dataset readers (:mod:`unetseg.data.ctc`, :mod:`unetseg.data.em`)
call them on every pair.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from skimage.color import rgb2gray

from unetseg.errors import InputError
from unetseg.files import atomic_path

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png")
MAX_BYTES = 2**31
"""Largest decoded image accepted (2 GiB); a damaged header must not trigger a huge allocation."""

MAX_LABEL16 = 65535
"""Most objects a 16-bit mask holds: the Cell Tracking Challenge's result masks are 16-bit."""
MAX_LABEL32 = 2**32 - 1


def _reason(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    line = " ".join(text.split())
    return line or type(err).__name__


def frame_shape(path: str | os.PathLike[str], shape: tuple[int, ...],
                colour: bool = False) -> tuple[int, ...]:
    """``shape`` without singleton leading/trailing axes; it must be a non-empty ``(Y, X)``
    (or, with ``colour``, ``(Y, X, C)`` with 2-4 channels).

    Raises
    ------
    InputError
        ``"<path>: image is a 3-D array (shape ...)..."`` and the like, naming ``path``.
    """
    while len(shape) > 2 and shape[0] == 1:
        shape = shape[1:]
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    if colour and len(shape) == 3 and shape[-1] in (2, 3, 4) and 0 not in shape:
        return shape
    if len(shape) == 3 and shape[-1] in (2, 3, 4):
        raise InputError(f"{path}: image has {shape[-1]} colour channels (shape {shape}); "
                         "expected a 2-D grayscale image")
    if len(shape) != 2:
        raise InputError(f"{path}: image is a {len(shape)}-D array (shape {shape}); "
                         "expected a single 2-D frame")
    if 0 in shape:
        raise InputError(f"{path}: image is empty (shape {shape})")
    return shape[0], shape[1]


def _tiff_series(path: Path, tif: tifffile.TiffFile, colour: bool) -> tifffile.TiffPageSeries:
    if not tif.series:
        raise ValueError("no image data")
    if len(tif.series) > 1:
        raise InputError(f"{path}: file holds {len(tif.series)} images; expected one 2-D frame")
    series = tif.series[0]
    shape = tuple(int(n) for n in series.shape)
    frame_shape(path, shape, colour)
    if int(np.prod(shape)) * np.dtype(series.dtype).itemsize > MAX_BYTES:
        raise InputError(f"{path}: image of shape {shape} is larger than 2 GiB")
    return series


def _image_suffix(path: Path) -> str:
    """The lower-case suffix of a TIFF or PNG path; any other raises a one-line InputError."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"{path}: unsupported image format {path.suffix!r} "
                         f"(expected {', '.join(IMAGE_SUFFIXES)})")
    return suffix


def _read_tiff(path: Path, colour: bool = False) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        return _tiff_series(path, tif, colour).asarray()


def _read_pil(path: Path) -> np.ndarray:
    with Image.open(path, formats=["PNG"]) as image:
        image.load()
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        return np.asarray(image)


def read_image(path: str | os.PathLike[str], colour: bool = False) -> np.ndarray:
    """Read one 2-D image from a ``.tif``/``.tiff`` (tifffile, LZW via imagecodecs) or ``.png``.

    Singleton leading or trailing axes (``(1, Y, X)``, ``(Y, X, 1)``) are squeezed. With
    ``colour``, ``(Y, X, C)`` images with 2-4 channels pass too (see :func:`to_gray`).
    The pixel values are returned as stored; :func:`check_image` and
    :func:`check_mask` judge them.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` array in the file's dtype (native byte order).

    Raises
    ------
    InputError
        ``"<path>: cannot read image: <reason>"`` for a missing, truncated or corrupt
        file; a clear message for colour images, 3-D stacks and empty images.
    """
    path = Path(path)
    suffix = _image_suffix(path)
    try:
        array = _read_tiff(path, colour) if suffix in TIFF_SUFFIXES else _read_pil(path)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - decoders raise many types on malformed input
        raise InputError(f"{path}: cannot read image: {_reason(err)}") from None
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: unsupported pixel type {array.dtype}")
    shape = frame_shape(path, tuple(array.shape), colour)
    return array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=False)


def probe_image(path: str | os.PathLike[str], colour: bool = False) -> tuple[int, ...]:
    """The shape of the image in ``path`` from its header, without decoding the pixels.

    Catches what :func:`read_image` refuses from the header alone (a missing or non-image
    file, a stack, too many channels), so that a batch can be checked before any output
    is written. Truncated pixel data is only found by :func:`read_image`.

    Raises
    ------
    InputError
        As :func:`read_image`.
    """
    path = Path(path)
    suffix = _image_suffix(path)
    try:
        if suffix in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                shape = tuple(int(n) for n in _tiff_series(path, tif, colour).shape)
        else:
            with Image.open(path, formats=["PNG"]) as image:
                bands = len(image.getbands())
                shape = (image.height, image.width) + ((bands,) if bands > 1 else ())
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - decoders raise many types on malformed input
        raise InputError(f"{path}: cannot read image: {_reason(err)}") from None
    return frame_shape(path, shape, colour)


def to_gray(image: np.ndarray) -> np.ndarray:
    """A ``(Y, X)`` grayscale version of a ``(Y, X, C)`` colour image, in the same dtype.

    RGB(A) becomes its luminance (``skimage.color.rgb2gray``, ITU-R BT.709 weights; alpha
    dropped); gray + alpha keeps the gray channel. ``(Y, X)`` images pass unchanged.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.shape[-1] == 2:
        return image[..., 0]
    gray = rgb2gray(image[..., :3])
    if image.dtype.kind in "iu":
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(gray * info.max), info.min, info.max).astype(image.dtype)
    return gray.astype(image.dtype)


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a grayscale PNG as stored: ``(Y, X)`` ``uint8`` or ``uint16``.

    Raises
    ------
    InputError
        When the file is unreadable or not an 8- or 16-bit grayscale image.
    """
    array = read_image(path)
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: expected an 8- or 16-bit grayscale PNG, got {array.dtype}")
    return array


def _check_2d(path: str | os.PathLike[str], array: np.ndarray, what: str) -> None:
    if array.ndim == 3 and array.shape[-1] in (2, 3, 4):
        raise InputError(f"{path}: {what} has {array.shape[-1]} colour channels (shape "
                         f"{array.shape}); expected 2-D")
    if array.ndim != 2 or array.size == 0:
        raise InputError(f"{path}: {what} has shape {array.shape}; expected a non-empty 2-D array")


def check_image(path: str | os.PathLike[str], array: np.ndarray) -> np.ndarray:
    """Validate a raw frame and bring it to ``uint8`` or ``uint16``.

    ``uint8`` and ``uint16`` frames pass unchanged; boolean frames become 0/255
    ``uint8``; other integer frames whose values lie in ``0..65535`` are cast to
    ``uint16``. Float frames and integer frames outside that range are rescaled
    linearly from ``[min, max]`` to ``[0, 65535]`` ``uint16`` — the network sees
    percentile-normalised intensities anyway, so only the relative scale matters.

    Parameters
    ----------
    path : the file the frame came from, for messages.
    array : ``(Y, X)`` image of any real dtype.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` ``uint8`` or ``uint16``.

    Raises
    ------
    InputError
        Not 2-D, NaN or infinite values, or a constant image (nothing to segment).
    """
    array = np.asarray(array)
    _check_2d(path, array, "image")
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: unsupported pixel type {array.dtype}")
    if array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise InputError(f"{path}: image contains NaN or infinite values ({bad} pixels)")
    lo, hi = array.min(), array.max()
    if lo == hi:
        raise InputError(f"{path}: image is constant (every pixel is {lo}); not a usable frame")
    return as_frame(array, lo, hi)


def as_frame(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The ``uint8``/``uint16`` frame that :func:`check_image` makes of ``array``.

    ``lo`` and ``hi`` are the minimum and maximum of the whole image ``array`` belongs to, so
    that the blocks of a huge image are converted as the whole image would be.

    Parameters
    ----------
    array : ``(Y, X)`` real image (or a block of one).
    lo, hi : the whole image's minimum and maximum (``lo < hi``).

    Returns
    -------
    ``(Y, X)`` ``uint8`` or ``uint16``: 8/16-bit pass unchanged, boolean becomes 0/255, other
    integers within ``0..65535`` are cast, anything else is rescaled from ``[lo, hi]`` to
    ``[0, 65535]``.
    """
    if array.dtype in (np.uint8, np.uint16):
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype.kind in "iu" and lo >= 0 and hi <= 65535:
        return array.astype(np.uint16)
    lo_f, hi_f = float(lo), float(hi)
    scaled = (array.astype(np.float64) - lo_f) * (65535.0 / (hi_f - lo_f))
    return np.rint(np.clip(scaled, 0.0, 65535.0)).astype(np.uint16)


def check_mask(path: str | os.PathLike[str], array: np.ndarray) -> np.ndarray:
    """Validate an instance mask: 2-D, integer ids, ``0..65535`` (0 = background).

    Parameters
    ----------
    path : the file the mask came from, for messages.
    array : ``(Y, X)`` integer or boolean labels.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` ``uint16`` instance labels with the ids as stored (not relabelled).

    Raises
    ------
    InputError
        Colour or non-2-D masks, float masks ("mask ids are not integers" when values
        are fractional), negative ids or ids above 65535.
    """
    array = np.asarray(array)
    _check_2d(path, array, "mask")
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        if not finite.all() or not np.array_equal(array, np.round(array)):
            raise InputError(f"{path}: mask ids are not integers (float mask with fractional, "
                             "NaN or infinite values)")
        raise InputError(f"{path}: mask is stored as {array.dtype}; expected integer instance ids")
    if array.dtype.kind not in "biu":
        raise InputError(f"{path}: mask ids are not integers (pixel type {array.dtype})")
    if array.dtype.kind == "i" and array.min() < 0:
        raise InputError(f"{path}: mask has negative ids (min {array.min()})")
    if array.max() > 65535:
        raise InputError(f"{path}: mask ids exceed 65535 (max {array.max()}); "
                         "16-bit instance labels expected")
    return array.astype(np.uint16, copy=False)


def _check_writable(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2 or array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a 2-D uint8 or uint16 array, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save a ``(Y, X)`` ``uint8`` or ``uint16`` array as a grayscale PNG.

    Parent folders are created. The bytes depend only on the pixels (no
    timestamps or text chunks), so DVC sees unchanged outputs as unchanged.

    Raises
    ------
    ValueError
        For other dtypes or shapes (a programming error, not user input).
    """
    array = _check_writable(array)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def write_tif(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """Save ``(Y, X)`` instance labels as a zlib-compressed TIFF (CTC ``maskTTT.tif``).

    16-bit while the ids fit (``0..65535``), 32-bit beyond. No metadata, software tag or
    timestamp is written: equal labels give equal bytes. Parent folders are created.

    Raises
    ------
    ValueError
        When ``labels`` is not 2-D integers or has ids outside ``0..2**32 - 1``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "biu":
        raise ValueError(f"expected 2-D integer labels, got {labels.dtype} {labels.shape}")
    top = int(labels.max()) if labels.size else 0
    if labels.size and (labels.min() < 0 or top > MAX_LABEL32):
        raise ValueError(f"label ids must lie in 0..{MAX_LABEL32} for a TIFF")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, labels.astype(label_dtype(top)), compression="zlib",
                     photometric="minisblack", metadata=None, software=False)


def label_dtype(n_objects: int) -> np.dtype:
    """``uint16`` for up to 65,535 objects, ``uint32`` beyond: the dtype of every label file."""
    return np.dtype(np.uint16 if n_objects <= MAX_LABEL16 else np.uint32)


def write_mask(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """Save ``(Y, X)`` instance labels as a TIFF (16- or 32-bit, :func:`write_tif`) or a 16-bit
    PNG, by ``path``'s suffix, atomically.

    The file appears complete or not at all (written to a temporary name, then renamed).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".png":
            write_png(tmp, np.asarray(labels, dtype=np.uint16))
        else:
            write_tif(tmp, labels)


def write_probability(path: str | os.PathLike[str], prob: np.ndarray) -> None:
    """Save a ``(Y, X)`` probability map as a zlib-compressed float32 TIFF, atomically."""
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"expected a 2-D probability map, got shape {prob.shape}")
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, prob, compression="zlib", photometric="minisblack", metadata=None,
                         software=False)


NORMALIZE_PERCENTILES = (1.0, 99.8)
"""Percentiles of an image that :func:`normalize` maps to 0 and 1."""


def normalize(image: np.ndarray, low: float = NORMALIZE_PERCENTILES[0],
              high: float = NORMALIZE_PERCENTILES[1], *,
              levels: tuple[float, float] | None = None) -> np.ndarray:
    """Percentile-normalise a ``(Y, X)`` image to float32, ~[0, 1] between the percentiles.

    Robust to 8/16-bit sources and outliers (the CSBDeep/StarDist convention). Training,
    inference and overlays all use it. ``levels`` gives the two percentile values instead of
    computing them from ``image``: a block of a huge image is normalised as the whole image
    (see :func:`histogram_percentiles`).
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [low, high]) if levels is None else np.asarray(levels, np.float64)
    return ((image - lo) / max(float(hi - lo), 1e-6)).astype(np.float32)


def histogram_percentiles(counts: np.ndarray, percentiles: tuple[float, float]
                          = NORMALIZE_PERCENTILES) -> tuple[float, float]:
    """The values ``np.percentile`` gives for an integer image, from the image's histogram.

    Sums of block histograms give the percentiles of an image too large to hold, bit for bit
    as :func:`normalize` computes them on the whole image (linear interpolation between the
    two order statistics around rank ``(n - 1) * q``, in numpy's arithmetic).

    Parameters
    ----------
    counts : ``(V,)`` integer pixel counts of the values ``0..V-1`` (``np.bincount``).
    percentiles : in [0, 100].

    Returns
    -------
    The percentiles as float64, one per entry of ``percentiles``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    if n == 0:
        raise ValueError("empty histogram")
    q = np.true_divide(np.asarray(percentiles, dtype=np.float64), 100)
    virtual = (n - 1) * q
    below = np.floor(virtual)
    gamma = virtual - below
    below = np.minimum(below, n - 1).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    a = np.searchsorted(cumulative, below, side="right").astype(np.float32)
    b = np.searchsorted(cumulative, above, side="right").astype(np.float32)
    diff = b - a
    out = a + diff * gamma
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), out)
    return tuple(float(v) for v in out)  # type: ignore[return-value]
