"""A dataset by its ``ingest`` params: read its layout (CTC, ISBI 2012 EM, synthetic), split it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from unetseg.config import IngestParams, SyntheticParams
from unetseg.data.ctc import check_held_out, looks_like_ctc, read_ctc, shared_sequences
from unetseg.data.em import looks_like_em, read_em
from unetseg.data.fetch import IGNORED_NAMES, LAYOUTS, describe, resolve_source
from unetseg.data.pairs import (
    ANNOTATION_KINDS,
    Annotation,
    Sample,
    Split,
    hold_out,
    hold_out_sequences,
    split_annotated,
    training_pool,
)
from unetseg.data.synthetic import generate
from unetseg.errors import InputError

Layout = Literal["synthetic", "ctc", "em"]
"""What a dataset is: generated, a Cell Tracking Challenge 2D dataset, or ISBI 2012 EM slices."""


def read_samples(folder: Path, annotation: Annotation = "gt") -> list[Sample]:
    """Detect the dataset layout of ``folder`` and read its image/mask pairs.

    Parameters
    ----------
    folder : a dataset folder (see :data:`LAYOUTS`).
    annotation : ``"gt"`` for the reference masks, ``"st"`` for a Cell Tracking Challenge
        dataset's silver truth (``NN_ST/SEG``).

    Returns
    -------
    list[Sample]
        From :func:`unetseg.data.ctc.read_ctc` or :func:`unetseg.data.em.read_em`.

    Raises
    ------
    InputError
        Not a folder, an empty folder, a layout that is neither CTC nor EM, or ``"st"``
        for a layout without silver truth.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected {LAYOUTS}")
    try:
        entries = [p for p in folder.iterdir() if p.name not in IGNORED_NAMES]
    except OSError as err:
        raise InputError(f"{folder}: cannot list folder: {describe(err)}") from None
    if not entries:
        raise InputError(f"{folder}: empty folder; expected {LAYOUTS}")
    if looks_like_ctc(folder):
        return read_ctc(folder, annotation)
    if looks_like_em(folder):
        if annotation != "gt":
            raise InputError(f"{folder}: an ISBI-2012 EM dataset has no silver-truth masks; "
                             "ingest.annotations st and gt+st need a Cell Tracking Challenge "
                             "dataset with NN_ST/SEG")
        return read_em(folder)
    raise InputError(f"{folder}: unknown dataset layout; expected {LAYOUTS}")


def load_split(ingest: IngestParams, synthetic: SyntheticParams, cache: Path) -> Split:
    """The train and test pairs the ``ingest`` params name.

    ``source`` is ``"synthetic"`` (generated from the ``synthetic`` params) or anything
    :func:`resolve_source` takes, read for the ``annotations`` asked. With
    ``test_sequences`` the GT frames of those sequences of a Cell Tracking Challenge
    ``source`` are the test set and the other sequences train
    (:func:`unetseg.data.pairs.hold_out_sequences`; ``test_fraction`` and ``split_gap`` do not
    apply). With a ``test_source`` (read for its GT only) that is the test set, and source
    frames within ``split_gap`` of one of its frames in a shared sequence do not train;
    otherwise :func:`unetseg.data.pairs.split_annotated` splits the GT of ``source`` by
    ``test_fraction``. ``Split.protocol`` says which.

    Raises
    ------
    InputError
        Besides the readers' errors: ``test_sequences`` on a source that is not a Cell
        Tracking Challenge dataset, naming a sequence it lacks, an empty one or one without
        GT masks (:func:`unetseg.data.ctc.check_held_out`), or leaving nothing to train on.
    """
    def load(source: str, sha256: str,
             kinds: tuple[Annotation, ...]) -> tuple[Path | None, dict[str, list[Sample]]]:
        if source == "synthetic":
            return None, {"gt": generate(synthetic.n_images, synthetic.height, synthetic.width,
                                         synthetic.n_cells, synthetic.seed)}
        folder = resolve_source(source, sha256=sha256, cache_dir=cache)
        return folder, {kind: read_samples(folder, kind) for kind in kinds}

    kinds = ANNOTATION_KINDS[ingest.annotations]
    if ingest.test_sequences:
        return _held_out_sequences(resolve_source(ingest.source, sha256=ingest.sha256,
                                                  cache_dir=cache), ingest)
    if ingest.test_source:
        folder, read = load(ingest.source, ingest.sha256, kinds)
        _, held = load(ingest.test_source, ingest.test_sha256, ("gt",))
        shared = shared_sequences(folder, held["gt"]) if folder else set()
        pool = training_pool(read.get("gt", []), read.get("st", []), ingest.annotations)
        return hold_out(pool, held["gt"], ingest.split_gap, shared)
    if ingest.test_fraction > 0:
        kinds = ("gt", *(k for k in kinds if k != "gt"))  # test frames are drawn from the GT
    _, read = load(ingest.source, ingest.sha256, kinds)
    return split_annotated(read.get("gt", []), read.get("st", []), ingest.annotations,
                           ingest.test_fraction, ingest.seed, ingest.split_gap)


def _held_out_sequences(folder: Path, ingest: IngestParams) -> Split:
    """:func:`load_split` with ``ingest.test_sequences``: the sequences checked, then split."""
    names = ingest.test_sequences
    if not looks_like_ctc(folder):
        raise InputError(f"{folder}: ingest.test_sequences holds out sequences of a Cell Tracking "
                         "Challenge dataset (NN/tTTT.tif frames); this folder has none")
    check_held_out(folder, names)
    kinds = ("gt", *(k for k in ANNOTATION_KINDS[ingest.annotations] if k != "gt"))
    read = {kind: read_samples(folder, kind) for kind in kinds}
    split = hold_out_sequences(read["gt"], read.get("st", []), ingest.annotations, names)
    if not split.train:
        raise InputError(f"{folder}: holding out sequence(s) {', '.join(names)} leaves nothing to "
                         f"train on (no {ingest.annotations} masks in any other sequence)")
    return split


def training_layout(source: str, split: Split) -> Layout:
    """Which kind of dataset the training pairs of ``split`` came from, for the model card.

    ``"synthetic"`` for ``ingest.source: synthetic``; ``"ctc"`` when the pairs are frames of
    time-lapse sequences (only the Cell Tracking Challenge reader sets
    :attr:`~unetseg.data.pairs.Sample.sequence`); ``"em"`` otherwise (ISBI 2012 EM slices).
    """
    if source == "synthetic":
        return "synthetic"
    return "ctc" if any(s.sequence for s in split.train) else "em"
