"""Scoring a test split image by image."""

import numpy as np
import pytest

from unetseg.score.report import Evaluation
from unetseg.score.metrics import aggregate


def _disk(shape, centre, radius):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_summary_pools_images_and_finds_the_label_offset():
    evaluation = Evaluation(threshold=0.5)
    results = []
    for k in range(3):
        reference = _disk((40, 40), (15 + k, 20), 8).astype(np.uint16)
        drawn = _disk((40, 40), (16 + k, 20), 8)
        prob = drawn.astype(np.float32)
        results.append(evaluation.add(f"im{k}", reference, drawn.astype(np.uint16), prob))
    summary = evaluation.summary()
    pooled = aggregate(results)
    assert summary["seg"] == pytest.approx(pooled["seg"], abs=1e-6)
    assert summary["n_images"] == 3 and [p["name"] for p in evaluation.per_image] == \
        ["im0", "im1", "im2"]
    assert -1.0 <= summary["offset_y"] < -0.5 and summary["offset_x"] == 0.0


def test_an_empty_evaluation_has_no_summary():
    with pytest.raises(ValueError):
        Evaluation(0.5).summary()
