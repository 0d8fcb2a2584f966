"""Pictures for people: outlines of reference and predicted cells over the raw image, and the
per-object errors of a segmentation (:mod:`unetseg.score.matching`) in colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

from unetseg.files import atomic_path
from unetseg.images import normalize
from unetseg.score.matching import PREDICTED_OUTCOMES, REFERENCE_OUTCOMES, Matching, match_labels
from unetseg.score.metrics import object_index

ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "matched": (0, 158, 115),  # bluish green
    "missed": (213, 94, 0),  # vermillion
    "false_positive": (204, 121, 167),  # reddish purple
    "merged": (230, 159, 0),  # orange
    "split": (86, 180, 233),  # sky blue
}
"""Colour of each outcome in :func:`error_image`: the Okabe-Ito palette, told apart with the
common colour-vision deficiencies."""

_AS_SHOWN = {"matched": "matched", "merged": "merged", "split": "split", "missed": "missed",
             "merge": "merged", "fragment": "split", "false_positive": "false_positive"}
"""Outcome -> the colour it is drawn in: a merging prediction in the merged colour, the
fragments of a split cell in the split colour."""

TINT = 0.4
"""Weight of the error colour on the pixels of a missed, merged, split or false-positive cell."""


def _gray_rgb(image: np.ndarray) -> np.ndarray:
    """``(Y, X)`` image of any real dtype -> ``(Y, X, 3)`` uint8 gray, between its 1st and 99.8th
    percentiles (:func:`unetseg.images.normalize`)."""
    gray = np.clip(normalize(image), 0, 1)
    return np.repeat((gray * 255).astype(np.uint8)[..., None], 3, axis=-1)


def outline_overlay(image: np.ndarray, reference: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """An ``(Y, X, 3)`` uint8 RGB picture: the image in gray, reference outlines in green,
    predicted outlines in magenta (white where they coincide).

    ``image`` is ``(Y, X)`` of any real dtype (shown between its 1st and 99.8th
    percentiles, :func:`unetseg.images.normalize`); ``reference`` and ``predicted`` are
    ``(Y, X)`` instance labels.
    """
    rgb = _gray_rgb(image)
    ref = find_boundaries(reference, mode="inner")
    pred = find_boundaries(predicted, mode="inner")
    rgb[ref] = (0, 255, 0)
    rgb[pred] = (255, 0, 255)
    rgb[ref & pred] = (255, 255, 255)
    return rgb


def _outcome_map(labels: np.ndarray, outcomes: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """``(Y, X)`` int8 index into :data:`ERROR_COLOURS` of every pixel's object, -1 on
    background."""
    shown = np.array([list(ERROR_COLOURS).index(_AS_SHOWN[n]) for n in names], np.int8)
    per_object = np.concatenate([[-1], shown[outcomes]]).astype(np.int8)
    return per_object[object_index(labels)[0]].reshape(labels.shape)


def error_image(image: np.ndarray, reference: np.ndarray, predicted: np.ndarray,
                matching: Matching | None = None) -> np.ndarray:
    """An ``(Y, X, 3)`` uint8 RGB picture of what went wrong, cell by cell.

    Over the image in gray (as :func:`outline_overlay`), every reference and predicted cell's
    outline takes the :data:`ERROR_COLOURS` colour of its outcome: matched green, missed
    vermillion, false positive reddish purple, merged orange (the merged reference cells and
    the prediction that merges them), split sky blue (the split reference cell and its
    fragments). Missed, merged and split reference cells and false-positive predictions are
    also tinted (:data:`TINT`). Predicted outlines are drawn over reference ones.

    Parameters
    ----------
    image : ``(Y, X)`` raw image, any real dtype.
    reference, predicted : ``(Y, X)`` integer instance labels, 0 = background.
    matching : their :func:`unetseg.score.matching.match_labels`, computed when None.
    """
    if matching is None:
        matching = match_labels(reference, predicted)
    rgb = _gray_rgb(image)
    colours = np.array(list(ERROR_COLOURS.values()), np.float32)
    kinds = list(ERROR_COLOURS)
    ref = _outcome_map(reference, matching.reference, REFERENCE_OUTCOMES)
    pred = _outcome_map(predicted, matching.predicted, PREDICTED_OUTCOMES)
    for where, codes in (((ref >= 0) & (ref != kinds.index("matched")), ref),
                         (pred == kinds.index("false_positive"), pred)):
        rgb[where] = np.round((1 - TINT) * rgb[where] + TINT * colours[codes[where]])
    for labels, codes in ((reference, ref), (predicted, pred)):
        edge = find_boundaries(labels, mode="inner")
        rgb[edge] = colours[codes[edge]]
    return rgb


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    """Save an ``(Y, X, 3)`` uint8 picture as PNG (no metadata, deterministic bytes), atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG", optimize=False)
