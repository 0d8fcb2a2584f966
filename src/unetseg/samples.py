"""Image/mask pairs as they come out of a reader, and the seeded train/test split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unetseg.errors import InputError


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


def paired_sample(root: Path, name: str, image_path: Path, image: np.ndarray, mask_path: Path,
                  mask: np.ndarray) -> Sample:
    """A :class:`Sample` from an image file and its mask file under ``root``, shapes checked.

    Raises :class:`InputError` naming both files when the ``(Y, X)`` shapes differ.
    """
    if image.shape != mask.shape:
        raise InputError(f"{image_path} and {mask_path}: shapes differ ({image.shape[0]}x"
                         f"{image.shape[1]} vs {mask.shape[0]}x{mask.shape[1]})")
    origin = " + ".join(p.relative_to(root).as_posix() for p in (image_path, mask_path))
    return Sample(name=name, image=image, mask=mask, origin=origin)


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
