"""Scoring a test split image by image."""

import numpy as np
import pytest

from unetseg.score.metrics import aggregate
from unetseg.score.report import Evaluation


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


ERROR_REPORT = ["precision_50", "recall_50", "pq_50", "f1_50", "f1_60", "f1_70", "f1_80",
                "f1_90", "ap_50", "ap_60", "ap_70", "ap_80", "ap_90", "ap", "n_missed",
                "n_merged", "n_split", "n_false_positive", "outline_ratio"]


def test_summary_has_the_pooled_per_object_error_report():
    evaluation = Evaluation(threshold=0.5)
    reference = np.zeros((30, 40), np.uint16)
    reference[2:12, 2:12], reference[2:12, 20:30], reference[15:25, 2:22] = 1, 2, 3
    predicted = np.zeros_like(reference)
    predicted[2:12, 2:12], predicted[15:25, 2:11], predicted[15:25, 13:22] = 5, 6, 7
    predicted[26:30, 30:40] = 8  # 1 matched, 2 missed, 3 split in 6 and 7, 8 false positive
    prob = (predicted > 0).astype(np.float32)
    evaluation.add("a", reference, predicted, prob)
    evaluation.add("b", reference, reference, (reference > 0).astype(np.float32))
    summary = evaluation.summary()
    assert set(ERROR_REPORT) <= summary.keys()
    assert all(type(summary[k]) is float for k in ERROR_REPORT if not k.startswith("n_"))
    assert (summary["n_missed"], summary["n_split"], summary["n_merged"],
            summary["n_false_positive"]) == (1, 1, 0, 1)
    assert summary["ap_50"] == pytest.approx(round(4 / (4 + 3 + 2), 6))
    assert summary["ap"] == pytest.approx(np.mean([summary[f"ap_{p}"] for p in range(50, 91, 10)]),
                                          abs=1e-6)
    assert summary["outline_ratio"] == 1.0
    first = evaluation.per_image[0]
    assert (first["n_gt"], first["n_pred"], first["n_missed"], first["n_split"],
            first["n_false_positive"], first["ap_50"]) == (3, 4, 1, 1, 1, round(1 / 6, 5))
    assert evaluation.per_image[1]["ap_50"] == 1.0 and evaluation.per_image[1]["n_missed"] == 0
