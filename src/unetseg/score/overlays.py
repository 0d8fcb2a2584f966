"""Pictures for people: outlines of reference and predicted cells over the raw image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

from unetseg.files import atomic_path
from unetseg.images import normalize


def outline_overlay(image: np.ndarray, reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """An ``(Y, X, 3)`` uint8 RGB picture: the image in gray, reference outlines in green,
    predicted outlines in magenta (white where they coincide).

    ``image`` is ``(Y, X)`` of any real dtype (shown between its 1st and 99.8th
    percentiles, :func:`unetseg.images.normalize`); ``reference`` and ``predicted`` are ``(Y, X)`` instance labels.
    """
    gray = np.clip(normalize(image), 0, 1)
    rgb = np.repeat((gray * 255).astype(np.uint8)[..., None], 3, axis=-1)
    ref = find_boundaries(reference, mode="inner")
    pred = find_boundaries(predicted, mode="inner")
    rgb[ref] = (0, 255, 0)
    rgb[pred] = (255, 0, 255)
    rgb[ref & pred] = (255, 255, 255)
    return rgb


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    """Save an ``(Y, X, 3)`` uint8 picture as PNG (no metadata, deterministic bytes), atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG", optimize=False)
