"""unetseg: the U-Net paper (Ronneberger, Fischer, Brox 2015) as a reproducible pipeline.

The package mirrors the pipeline (``dvc.yaml``): one subpackage per phase,

- :mod:`unetseg.data`: datasets (Cell Tracking Challenge, ISBI 2012 EM, synthetic) and their split;
- :mod:`unetseg.prepare`: weight maps (paper Eq. 2), training targets, resampling, HDF5 stores;
- :mod:`unetseg.augment`: elastic deformation and gray values, the augmented tile store;
- :mod:`unetseg.train`: the U-Net family, the weighted loss, batches, fitting, the model card;
- :mod:`unetseg.infer`: overlap-tile inference, instances, the ``Segmenter``, ``unetseg predict``;
- :mod:`unetseg.score`: metrics (SEG, IoU, Rand error...), the evaluation report, overlays;
- :mod:`unetseg.export`: beyond the pipeline, a model folder as a bioimage.io package;

around a small core that every phase shares: :mod:`~unetseg.config` (params.yaml),
:mod:`~unetseg.tiling` (overlap-tile geometry), :mod:`~unetseg.images` (pixel files),
:mod:`~unetseg.files`, :mod:`~unetseg.errors`, :mod:`~unetseg.runtime` and :mod:`~unetseg.cli`.

The names below load on first use, so ``import unetseg`` is cheap and has no side effects;
entry points call :func:`unetseg.runtime.configure_backend` before they import Keras.
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submodules=["augment", "data", "export", "infer", "prepare", "score", "train"],
    submod_attrs={
        "config": ["load_params"],
        "prepare.weights": ["weight_map"],
        "score.metrics": ["seg_score"],
        "infer.segmenter": ["Segmenter"],
    },
)
