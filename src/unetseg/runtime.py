"""Process set-up that must happen before Keras (and through it TensorFlow or JAX) loads."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

# What TensorFlow's C++ side prints while it loads, before its log level applies.
_LOAD_NOISE = re.compile(r"absl::InitializeLog\(\)|port\.cc:\d+\] oneDNN custom operations|"
                         r"cpu_feature_guard\.cc|rebuild TensorFlow with the appropriate compiler")
_configured = False


def configure_backend() -> None:
    """Set the backend's process options and quiet its start-up; call before ``import keras``.

    TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with AVX-512 VNNI
    or AMX; on an AVX2 CPU they train our U-Nets ~1.4x faster (benchmarks/cpu_kernels.py),
    so ``TF_ENABLE_ONEDNN_OPTS`` defaults to 1. ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2
    (C++ INFO and WARNING lines off). TensorFlow 2.21 logs its oneDNN notice through absl
    before that level applies, so where TensorFlow is installed it is imported here with
    those known start-up lines dropped from stderr (any other line is kept): Keras imports
    it with any backend (``keras.utils.set_random_seed`` seeds it too, even on JAX);
    then TensorFlow's and absl's Python loggers are set to ERROR. A value the user has
    set wins: ``TF_CPP_MIN_LOG_LEVEL`` below 2 keeps every line. Calling it again does
    nothing.
    """
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() not in ("0", "1")
    if quiet:
        warnings.filterwarnings("ignore", message=r"Protobuf gencode version", category=UserWarning)
        if importlib.util.find_spec("absl") is not None:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
    if "tensorflow" in sys.modules or not _installed("tensorflow"):
        return
    with _dropped_from_stderr(_LOAD_NOISE if quiet else None):
        import tensorflow as tf
    if quiet:
        tf.get_logger().setLevel("ERROR")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@contextlib.contextmanager
def _dropped_from_stderr(noise: re.Pattern[str] | None) -> Iterator[None]:
    """Hold what is written to file descriptor 2 (C++ included); write back non-noise lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if noise is None or not noise.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
