"""Export: a trained model folder as a bioimage.io model package (``unetseg export``).

:mod:`~unetseg.export.network` makes the network that ships (probabilities out) and its
keras_v3 and ONNX weights; :mod:`~unetseg.export.rdf` describes it in the bioimage.io spec
(``rdf.yaml``) and :mod:`~unetseg.export.docpage` writes its documentation page;
:mod:`~unetseg.export.spec` validates and zips the package with bioimageio.spec;
:mod:`~unetseg.export.package` puts it together (``unetseg export``).
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "package": ["export_package"],
})
