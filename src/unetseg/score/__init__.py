"""Scoring: segmentation metrics, per-object matching, the test-split report and overlays.

:mod:`~unetseg.score.metrics` are plain numpy functions on label images (SEG, IoU, Dice, pixel
and Rand error) over one overlap table; :mod:`~unetseg.score.matching` matches the objects at
IoU thresholds and says what went wrong with each (missed, merged, split, false positive);
:mod:`~unetseg.score.report` accumulates both over a test split;
:mod:`~unetseg.score.overlays` draws outlines and errors for people.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "metrics": ["seg_score", "evaluate_pair"],
    "matching": ["match_labels"],
    "report": ["Evaluation"],
})
