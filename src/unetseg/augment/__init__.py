"""Data augmentation (paper Sec. 3.1) and the augmented tile store that training reads.

:mod:`~unetseg.augment.deform` changes one image/mask pair (elastic 3 x 3 grid, flips, rotations,
gray values); :mod:`~unetseg.augment.tiles` cuts the originals and their copies into tiles.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "deform": ["augment_pair", "elastic_field"],
    "tiles": ["write_tile_store"],
})
