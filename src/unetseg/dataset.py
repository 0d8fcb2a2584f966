"""Image/mask pairs as they come out of a reader, and the seeded train/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One training or test pair.

    Attributes
    ----------
    name : str
        Unique, filesystem-safe stem used for output files (e.g. ``"02_t010"``).
    image : np.ndarray
        ``(Y, X)`` ``uint8`` or ``uint16`` raw intensities.
    mask : np.ndarray
        ``(Y, X)`` ``uint16`` instance labels, 0 = background.
    origin : str
        Where the pair came from (source file paths), for the manifest.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    origin: str


def split_samples(
    samples: list[Sample], test_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, test) by a seeded permutation.

    At least one sample stays in train; the test part gets
    ``round(test_fraction * n)`` samples (at least one when ``test_fraction > 0``
    and there are two or more samples). Both parts keep the input order.
    """
    n = len(samples)
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2:
        n_test = max(n_test, 1)
    n_test = min(n_test, n - 1) if n else 0
    order = np.random.default_rng(seed).permutation(n)
    test_idx = set(order[:n_test].tolist())
    train = [s for i, s in enumerate(samples) if i not in test_idx]
    test = [s for i, s in enumerate(samples) if i in test_idx]
    return train, test
