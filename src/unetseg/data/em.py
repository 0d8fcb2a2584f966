"""ISBI 2012 EM segmentation challenge layout: ``train/image/K.png`` + ``train/label/K.png``.

The paper's first experiment (Sec. 4, Table 1) segments neuronal membranes in these
ssTEM slices. Labels are binary (255 = cell interior, 0 = membrane); the cells are
turned into instance labels as their 4-connected components, so the same weight-map
and instance machinery serves both EM and light-microscopy data.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from unetseg.data.pairs import Sample, paired_sample
from unetseg.errors import InputError
from unetseg.images import IMAGE_SUFFIXES, check_image, read_image


def _split_folder(root: Path) -> Path | None:
    """The folder holding ``image/`` and ``label/``: ``root/train`` or ``root`` itself."""
    for folder in (root / "train", root):
        if (folder / "image").is_dir() and (folder / "label").is_dir():
            return folder
    return None


def looks_like_em(root: Path) -> bool:
    """True when ``root`` has ``train/image`` + ``train/label`` (or ``image`` + ``label``)."""
    try:
        return Path(root).is_dir() and _split_folder(Path(root)) is not None
    except OSError:
        return False


def natural_key(text: str) -> tuple[str | int, ...]:
    """Sort key that orders ``"2"`` before ``"10"``: digit runs compare as numbers."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)) + (text,)


def _images(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES \
                or not path.is_file():
            continue
        if path.stem in found:
            raise InputError(f"{path}: two files for {path.stem!r} (also {found[path.stem].name})")
        found[path.stem] = path
    return found


def cells_from_label(path: Path, label: np.ndarray) -> np.ndarray:
    """Binary EM label -> instance labels: 4-connected components of the cell pixels.

    Cell pixels are ``True`` in a boolean label, ``1`` in a 0/1 label, and
    ``>= 128`` in an 8-bit label (the 0/255 convention; intermediate values from
    resampling or lossy tools are thresholded at 128).

    Parameters
    ----------
    path : the label file, for messages.
    label : ``(Y, X)`` bool or integer label image.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` ``uint16``, 0 = membrane, cells numbered ``1..n`` in raster order.

    Raises
    ------
    InputError
        Float labels, values outside ``0..255``, or more than 65535 cells.
    """
    if label.dtype.kind == "b":
        cells = label
    elif label.dtype.kind in "iu":
        lo, hi = int(label.min()), int(label.max())
        if lo < 0 or hi > 255:
            raise InputError(f"{path}: label values must lie in 0..255 (255 = cell, "
                             f"0 = membrane); found {lo}..{hi}")
        cells = label == 1 if hi <= 1 else label >= 128
    else:
        raise InputError(f"{path}: label is {label.dtype}; expected 8-bit 0 = membrane, 255 = cell")
    instances, count = ndimage.label(cells)
    if count > 65535:
        raise InputError(f"{path}: {count} cells do not fit 16-bit instance labels")
    return instances.astype(np.uint16)


def read_em(root: Path) -> list[Sample]:
    """Read the labelled slices of an ISBI-2012-EM style folder.

    Parameters
    ----------
    root : folder with ``train/image/K.png`` and ``train/label/K.png`` (``.tif`` also
        accepted), or the split folder itself (``image/`` and ``label/`` directly).
        Unlabelled ``test/`` slices are not read.

    Returns
    -------
    list[Sample]
        In natural order of ``K``; ``name`` is ``f"em_{K}"``, ``image`` ``(Y, X)``
        ``uint8``/``uint16``, ``mask`` ``(Y, X)`` ``uint16`` cell instances (see
        :func:`cells_from_label`), ``origin`` the two paths relative to ``root``.

    Raises
    ------
    InputError
        No ``image/``+``label/`` folders, no images, an image without label (or the
        reverse), a shape mismatch, or an unreadable/invalid file.
    """
    root = Path(root)
    split = _split_folder(root) if root.is_dir() else None
    if split is None:
        raise InputError(f"{root}: expected train/image/ and train/label/ folders")
    try:
        images, labels = _images(split / "image"), _images(split / "label")
    except OSError as err:
        raise InputError(f"{split}: cannot list folder: {err.strerror or err}") from None
    if not images:
        raise InputError(f"{split / 'image'}: no images (expected K.png or K.tif)")
    for key, path in images.items():
        if key not in labels:
            raise InputError(f"{path}: no label (expected {split / 'label' / path.name})")
    for key, path in labels.items():
        if key not in images:
            raise InputError(f"{path}: label without image "
                             f"(expected {split / 'image' / path.name})")
    return [_pair(root, key, images[key], labels[key]) for key in sorted(images, key=natural_key)]


def _pair(root: Path, key: str, image_path: Path, label_path: Path) -> Sample:
    return paired_sample(root, f"em_{key}", image_path,
                         check_image(image_path, read_image(image_path)), label_path,
                         cells_from_label(label_path, read_image(label_path)))
