"""Scoring a test split: per-image and pooled metrics, the per-object error report, and the
offset the labels sit at."""

from __future__ import annotations

import numpy as np

from unetseg.prepare.resampling import offset_errors, offset_grid
from unetseg.score.matching import Matching, match_labels, pool
from unetseg.score.metrics import aggregate, evaluate_pair


class Evaluation:
    """Accumulate test images one at a time; :meth:`summary` gives ``metrics/evaluate.json``.

    Parameters
    ----------
    threshold : the probability cut-off, for the label-offset estimate.
    """

    SCORES = ("seg", "iou", "dice", "pixel_error", "rand_error")
    """Pooled scores a model card records."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.results: list[dict] = []
        self.matchings: list[Matching] = []
        self.per_image: list[dict[str, float | int | str]] = []
        self._offsets = offset_grid()
        self._errors = np.zeros(len(self._offsets), dtype=np.int64)

    def add(self, name: str, reference: np.ndarray, labels: np.ndarray,
            prob: np.ndarray) -> dict:
        """Score one image.

        Parameters
        ----------
        name : the image's name (for ``per_image``).
        reference, labels : ``(Y, X)`` integer instance labels (GT and prediction).
        prob : ``(Y, X)`` float32 cell probability the labels came from.

        Returns
        -------
        The image's :func:`unetseg.score.metrics.evaluate_pair` result; its
        :func:`unetseg.score.matching.match_labels` is appended to :attr:`matchings`.
        """
        result = evaluate_pair(reference, labels)
        matching = match_labels(reference, labels)
        self._errors += offset_errors(prob, reference > 0, self.threshold, self._offsets)
        self.results.append(result)
        self.matchings.append(matching)
        self.per_image.append({"name": name,
                               **{k: round(float(result[k]), 5) for k in ("seg", "iou", "dice")},
                               "ap_50": round(matching.stats(0.5)["ap"], 5),
                               "n_gt": result["n_gt"], "n_pred": result["n_pred"],
                               **matching.error_counts()})
        return result

    def summary(self) -> dict[str, float | int]:
        """Pooled metrics (:func:`unetseg.score.metrics.aggregate`), the pooled per-object error
        report (:meth:`unetseg.score.matching.Matching.summary`: ``precision_50``, ``recall_50``,
        ``pq_50``, ``f1_50`` ... ``f1_90``, ``ap_50`` ... ``ap_90``, ``ap``, ``n_missed``,
        ``n_merged``, ``n_split``, ``n_false_positive``, ``outline_ratio``) and ``offset_y`` /
        ``offset_x``: the shift of the probability maps that best fits the labels. One flat
        mapping, floats rounded to 6 digits.

        Raises
        ------
        ValueError
            If no image was added.
        """
        summary = aggregate(self.results)
        summary.update(pool(self.matchings).summary())
        summary["offset_y"], summary["offset_x"] = map(
            float, self._offsets[np.argmin(self._errors)])
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}
