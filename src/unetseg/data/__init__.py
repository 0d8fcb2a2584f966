"""Datasets: where the image/mask pairs come from and how they split into train and test.

:mod:`~unetseg.data.fetch` brings a folder, zip or URL to a local folder;
:mod:`~unetseg.data.ctc`, :mod:`~unetseg.data.em` and :mod:`~unetseg.data.synthetic` read a
layout; :mod:`~unetseg.data.pairs` holds the pairs and the split rules;
:mod:`~unetseg.data.datasets` puts them together for the ``ingest`` params.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "datasets": ["load_split", "read_samples"],
    "fetch": ["resolve_source"],
    "pairs": ["Sample", "Split"],
    "synthetic": ["generate"],
})
