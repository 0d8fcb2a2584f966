"""unetseg: the U-Net paper (Ronneberger, Fischer, Brox 2015) as a reproducible pipeline.

Importing the package has no side effects; entry points call
:func:`unetseg.runtime.configure_backend` before they import Keras.
"""

__version__ = "0.1.0"
