"""Training: the U-Net family, the weighted loss (paper Eq. 1), batches, fitting, the model card.

:mod:`~unetseg.train.models` builds the networks; :mod:`~unetseg.train.losses` holds the loss;
:mod:`~unetseg.train.batches` streams the tile store; :mod:`~unetseg.train.fit` runs and resumes
the optimisation; :mod:`~unetseg.train.card` describes the trained network for inference.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "models": ["build_model"],
    "card": ["ModelCard", "read_card"],
})
