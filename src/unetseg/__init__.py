"""unetseg: the U-Net paper (Ronneberger, Fischer, Brox 2015) as a reproducible pipeline."""

import os

# TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI or AMX;
# on an AVX2 CPU they train our U-Nets ~1.4x faster (benchmarks/cpu_kernels.py). It reads
# the variable when it loads, so this runs before any module here imports keras.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
