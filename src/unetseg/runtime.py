"""Process set-up that must happen before Keras (and through it TensorFlow or JAX) loads."""

from __future__ import annotations

import os


def configure_backend() -> None:
    """Set the backend's process options; call once, before the first ``import keras``.

    TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI
    or AMX; on an AVX2 CPU they train our U-Nets ~1.4x faster (benchmarks/cpu_kernels.py).
    Its C++ INFO and WARNING lines (oneDNN and CPU-instruction notices) are silenced.
    Both are read when TensorFlow loads; a value the user has set wins.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
