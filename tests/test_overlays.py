"""Pictures of the segmentation errors (unetseg.score.overlays)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from unetseg.score.matching import match_labels
from unetseg.score.overlays import ERROR_COLOURS, TINT, error_image, write_rgb_png

SHAPE = (40, 80)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """One matched, one missed, two merged and one split cell, and one false positive."""
    gt, pred = np.zeros(SHAPE, np.uint16), np.zeros(SHAPE, np.uint16)
    gt[2:12, 2:12], pred[2:12, 2:12] = 1, 11  # matched
    gt[2:12, 20:30] = 2  # missed
    gt[20:30, 2:12], gt[20:30, 16:26], pred[20:30, 2:26] = 3, 4, 12  # merged
    gt[20:30, 40:60], pred[20:30, 40:49], pred[20:30, 51:60] = 5, 13, 14  # split
    pred[2:12, 60:70] = 15  # false positive
    return gt, pred


def test_each_kind_of_error_is_drawn_in_its_colour() -> None:
    gt, pred = _scene()
    image = np.tile(np.linspace(0, 200, SHAPE[1]), (SHAPE[0], 1)).astype(np.uint8)
    rgb = error_image(image, gt, pred)
    assert rgb.shape == (*SHAPE, 3) and rgb.dtype == np.uint8
    assert len(set(ERROR_COLOURS.values())) == len(ERROR_COLOURS) == 5
    edges = {"matched": (2, 5), "missed": (2, 25), "merged": (20, 5), "split": (25, 40),
             "false_positive": (2, 65)}
    for kind, (y, x) in edges.items():
        assert tuple(rgb[y, x]) == ERROR_COLOURS[kind], kind
    assert tuple(rgb[20, 14]) == ERROR_COLOURS["merged"], "the merging prediction's outline"
    assert tuple(rgb[25, 48]) == ERROR_COLOURS["split"], "a fragment's outline"
    gray = rgb[35, 70]
    assert gray[0] == gray[1] == gray[2], "background stays gray"
    inside_matched, inside_missed = rgb[7, 7], rgb[7, 25]
    assert inside_matched[0] == inside_matched[1] == inside_matched[2], "matched cells untinted"
    base = rgb[35, 25].astype(float)  # the same column, so the same gray
    expected = np.round((1 - TINT) * base + TINT * np.array(ERROR_COLOURS["missed"]))
    np.testing.assert_array_equal(inside_missed, expected)


def test_a_given_matching_draws_the_same_picture_and_it_saves_as_png(tmp_path) -> None:
    gt, pred = _scene()
    image = np.random.default_rng(0).integers(0, 4000, SHAPE).astype(np.uint16)
    rgb = error_image(image, gt, pred, match_labels(gt, pred))
    np.testing.assert_array_equal(rgb, error_image(image, gt, pred))
    write_rgb_png(tmp_path / "errors" / "a.png", rgb)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "errors" / "a.png")), rgb)
