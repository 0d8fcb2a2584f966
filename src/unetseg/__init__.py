"""unetseg: the U-Net paper (Ronneberger, Fischer, Brox 2015) as a reproducible pipeline."""

__version__ = "0.1.0"
