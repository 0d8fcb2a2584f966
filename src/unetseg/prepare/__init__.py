"""Training targets: Eq. 2 weight maps, separated classes, resampling and the HDF5 stores.

:mod:`~unetseg.prepare.weights` is the paper's weight map; :mod:`~unetseg.prepare.targets` turns
an instance mask into what the loss needs; :mod:`~unetseg.prepare.resampling` moves between the
acquisition grid and the network's; :mod:`~unetseg.prepare.store` reads and writes the stores.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "weights": ["weight_map", "separate_touching"],
    "targets": ["training_target"],
    "store": ["PreparedReader", "TileReader"],
})
