"""Scoring: segmentation metrics, the test-split report and outline overlays.

:mod:`~unetseg.score.metrics` are plain numpy functions on label images (SEG, IoU, Dice, pixel
and Rand error); :mod:`~unetseg.score.report` accumulates them over a test split;
:mod:`~unetseg.score.overlays` draws outlines for people.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "metrics": ["seg_score", "evaluate_pair"],
    "report": ["Evaluation"],
})
