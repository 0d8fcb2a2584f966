"""Inference: segment images with a trained model folder.

:mod:`~unetseg.infer.overlap` runs the network tile by tile (paper Fig. 2);
:mod:`~unetseg.infer.instances` turns probabilities into cells; :mod:`~unetseg.infer.segmenter`
is the one API behind ``evaluate`` and :mod:`~unetseg.infer.predict` (``unetseg predict``).
Images too large to hold go block by block: :mod:`~unetseg.infer.blocks` (where blocks lie and
what they read), :mod:`~unetseg.infer.seams` (one labelling across block seams),
:mod:`~unetseg.infer.blockwise` (the passes, as dask tasks) and :mod:`~unetseg.infer.cluster`
(local threads or a ``dask.distributed`` cluster).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "segmenter": ["Segmenter"],
    "instances": ["label_instances"],
})
