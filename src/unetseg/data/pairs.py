"""Image/mask pairs as they come out of a reader, and the train/test split.

Frames of one time-lapse sequence that lie close together are nearly the same image,
so a split of a sequence leaves the training frames near a test frame out
(``split_gap``); see :func:`hold_out`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from unetseg.errors import InputError

Annotation = Literal["gt", "st", "gt+st"]
Annotations = Literal["gt", "st", "gt+st"]
ANNOTATION_KINDS: dict[str, tuple[Annotation, ...]] = {"gt": ("gt",), "st": ("st",),
                                                      "gt+st": ("gt", "st")}
"""The mask kinds each ``ingest.annotations`` value reads."""
COMPLETE_OVERLAP = 0.2
"""An ST cell completes a GT mask when at most this fraction of it lies on GT cells."""


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
    annotation : {"gt", "st", "gt+st"}
        ``"gt"`` (reference masks: drawn by hand, or exact for synthetic data),
        ``"st"`` (the Cell Tracking Challenge's computer-generated silver truth) or
        ``"gt+st"`` (a GT mask that left cells out, completed by those cells' ST masks).
    sequence : str
        Time-lapse sequence the frame belongs to (``"02"``); ``""`` when the pairs are
        not frames of a sequence (EM slices, synthetic images).
    frame : int or None
        Frame number within ``sequence``; None outside a sequence.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    origin: str
    annotation: Annotation = "gt"
    sequence: str = ""
    frame: int | None = None


@dataclass(frozen=True)
class LeftOut:
    """A training pair left out because it lies ``distance`` frames from test frame ``near``."""

    sample: Sample
    near: str
    distance: int


@dataclass(frozen=True)
class Split:
    """Training and test pairs, the training pairs left out next to test frames, and the
    protocol that split them (for the manifest, e.g. ``"sequences 02 held out"``)."""

    train: list[Sample]
    test: list[Sample]
    left_out: list[LeftOut]
    protocol: str = ""


def paired_sample(root: Path, name: str, image_path: Path, image: np.ndarray, mask_path: Path,
                  mask: np.ndarray, *, annotation: Annotation = "gt", sequence: str = "",
                  frame: int | None = None) -> Sample:
    """A :class:`Sample` from an image file and its mask file under ``root``, shapes checked.

    ``annotation``, ``sequence`` and ``frame`` are as in :class:`Sample`. Raises
    :class:`InputError` naming both files when the ``(Y, X)`` shapes differ.
    """
    if image.shape != mask.shape:
        raise InputError(f"{image_path} and {mask_path}: shapes differ ({image.shape[0]}x"
                         f"{image.shape[1]} vs {mask.shape[0]}x{mask.shape[1]})")
    origin = " + ".join(p.relative_to(root).as_posix() for p in (image_path, mask_path))
    return Sample(name=name, image=image, mask=mask, origin=origin, annotation=annotation,
                  sequence=sequence, frame=frame)


def split_samples(
    samples: list[Sample], test_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split samples into (train, test) by a seeded permutation.

    At least one sample stays in train; the test part gets
    ``round(test_fraction * n)`` samples (at least one when ``test_fraction > 0``
    and there are two or more samples). Both parts keep the input order.
    """
    n = len(samples)
    n_test = round(test_fraction * n)
    if test_fraction > 0 and n >= 2:
        n_test = max(n_test, 1)
    n_test = min(n_test, n - 1) if n else 0
    order = np.random.default_rng(seed).permutation(n)
    test_idx = set(order[:n_test].tolist())
    train = [s for i, s in enumerate(samples) if i not in test_idx]
    test = [s for i, s in enumerate(samples) if i in test_idx]
    return train, test


def training_pool(gt: list[Sample], st: list[Sample], annotations: Annotations) -> list[Sample]:
    """The pairs to train on: the GT pairs, the ST pairs, or (``gt+st``) every frame with a
    mask: its GT completed by the ST cells it left out (:func:`complete_with`), else its ST.

    Returns the pairs ordered by sequence and frame (pairs outside a sequence keep their order).
    """
    if annotations == "gt":
        pool = list(gt)
    elif annotations == "st":
        pool = list(st)
    else:
        by_name = {s.name: s for s in st}
        have_gt = {s.name for s in gt}
        pool = [*(complete_with(s, by_name[s.name]) if s.name in by_name else s for s in gt),
                *(s for s in st if s.name not in have_gt)]
    return sorted(pool, key=_order)


def complete_with(gt: Sample, st: Sample) -> Sample:
    """``gt`` with the cells it left out taken from ``st`` of the same frame.

    The Cell Tracking Challenge's human masks may annotate only some cells of a frame
    (DIC-C2DH-HeLa 01 frame 067: 3 of 18); trained as they are, the others would be taught as
    background. An ST cell joins when at most :data:`COMPLETE_OVERLAP` of its pixels lie on
    GT cells (it is a cell GT left out, not another outline of one GT drew); GT keeps every
    pixel it labels. A frame whose GT needs nothing is returned unchanged.

    Returns
    -------
    Sample
        ``annotation="gt+st"`` and a ``(Y, X)`` uint16 mask with the added cells numbered after
        GT's, when any joined; else ``gt`` itself.
    """
    sizes = np.bincount(st.mask.ravel())
    on_gt = np.bincount(st.mask.ravel(), weights=(gt.mask > 0).ravel(), minlength=len(sizes))
    ids = np.flatnonzero((sizes > 0) & (on_gt <= COMPLETE_OVERLAP * sizes))
    ids = ids[ids > 0]
    if not len(ids):
        return gt
    top = int(gt.mask.max())
    if top + len(ids) > np.iinfo(np.uint16).max:
        raise InputError(f"{st.origin}: completing {gt.origin} needs more than 65535 labels")
    lut = np.zeros(len(sizes), np.uint16)
    lut[ids] = np.arange(top + 1, top + 1 + len(ids))
    added = lut[st.mask]
    mask = np.where(gt.mask > 0, gt.mask, added).astype(np.uint16)
    return replace(gt, mask=mask, annotation="gt+st",
                   origin=f"{gt.origin} + {len(ids)} cells of {st.origin.split(' + ')[-1]}")


def _order(s: Sample) -> tuple[int, str, int]:
    number = int(s.sequence) if s.sequence.isdigit() else -1
    return (number, s.sequence, -1 if s.frame is None else s.frame)


def hold_out(pool: list[Sample], test: list[Sample], gap: int,
             sequences: Collection[str]) -> Split:
    """Train on ``pool`` minus the frames within ``gap`` frames of a test frame.

    Parameters
    ----------
    pool : the candidate training pairs.
    test : the test pairs.
    gap : a pool frame at most ``gap`` frames from a test frame of its sequence is left
        out (distance 0, the test frame's own other mask, always is).
    sequences : the sequences that ``pool`` and ``test`` share, i.e. that are the same
        recording; frames of other sequences, and pairs outside a sequence, are kept.

    Raises
    ------
    InputError
        When nothing is left to train on.
    """
    test_frames: dict[str, list[tuple[int, str]]] = {}
    for s in test:
        if s.sequence in sequences and s.frame is not None:
            test_frames.setdefault(s.sequence, []).append((s.frame, s.name))
    train, left_out = [], []
    for s in pool:
        near = [(abs(s.frame - t), name) for t, name in test_frames.get(s.sequence, [])
                if s.frame is not None and abs(s.frame - t) <= gap]
        if near:
            distance, name = min(near)
            left_out.append(LeftOut(s, name, distance))
        else:
            train.append(s)
    if pool and not train:
        raise InputError(f"params: ingest.split_gap: {gap} leaves no training frames (all "
                         f"{len(pool)} lie within {gap} frames of a test frame)")
    return Split(train, list(test), left_out,
                 protocol=f"separate test set, split_gap {gap} in the sequences it shares")


def split_annotated(gt: list[Sample], st: list[Sample], annotations: Annotations,
                    test_fraction: float, seed: int, gap: int) -> Split:
    """The seeded split of one source: test frames drawn from the GT pairs, the rest train.

    The test pairs are :func:`split_samples` of ``gt`` (so a seed picks the same test
    frames whatever ``annotations`` says); the training pairs are
    :func:`training_pool` without the test pairs and, within each sequence, without the
    frames within ``gap`` of a test frame (:func:`hold_out`; a test frame's ST mask is
    left out at distance 0; its GT, completed or not, is the test pair). ST-only frames
    therefore only ever train.
    """
    _, test = split_samples(gt, test_fraction, seed)
    names = {s.name for s in test}
    pool = [s for s in training_pool(gt, st, annotations)
            if s.name not in names or s.annotation == "st"]
    split = hold_out(pool, test, gap, {s.sequence for s in test if s.sequence})
    return replace(split, protocol=f"seeded split of the GT pairs: test_fraction {test_fraction}, "
                                   f"seed {seed}, split_gap {gap}")


def hold_out_sequences(gt: list[Sample], st: list[Sample], annotations: Annotations,
                       sequences: Collection[str]) -> Split:
    """Hold whole sequences out: test on their GT pairs, train on every other sequence.

    A new user's images come from a new recording, not from frames between the training
    ones, so this validates as they will use the model. No split gap applies: no training
    frame shares a sequence with a test frame.

    Parameters
    ----------
    gt, st : the GT and silver-truth pairs of the whole dataset.
    annotations : which of them train (:func:`training_pool`).
    sequences : the held-out sequence names (``"02"``).

    Returns
    -------
    Split
        ``test``: the GT pairs of ``sequences``; ``train``: :func:`training_pool` of the
        pairs of every other sequence (pairs outside a sequence included); no ``left_out``.
        Either may be empty; the caller refuses what it cannot use.
    """
    held = set(sequences)
    test = [s for s in gt if s.sequence in held]
    train = [s for s in training_pool(gt, st, annotations) if s.sequence not in held]
    return Split(train, test, [], protocol=f"sequences {', '.join(sequences)} held out")
