"""Cell Tracking Challenge 2D datasets: ``NN/tTTT.tif`` frames + ``NN_GT/SEG/man_segTTT.tif`` masks.

The paper's cell experiments (Sec. 4, PhC-U373 and DIC-HeLa) use this layout. Only
frames that have a SEG mask are training pairs; some SEG masks annotate only part
of the cells and are taken as they are. ``NN_ST/SEG/man_segTTT.tif`` holds the
challenge's silver truth (computer-generated masks of every cell), read with
``annotation="st"``. Predictions go back out in the challenge's result layout,
``NN_RES/maskTTT.tif``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unetseg.data.pairs import Annotation, Sample, paired_sample
from unetseg.errors import InputError
from unetseg.images import check_image, check_mask, read_image

_SEQUENCE = re.compile(r"^(\d+)$")
_TRUTH = {"gt": re.compile(r"^(\d+)_GT$"), "st": re.compile(r"^(\d+)_ST$")}
_FRAME = re.compile(r"^t(\d{3,4})\.tiff?$", re.IGNORECASE)
_MASK = re.compile(r"^man_seg(\d{3,4})\.tiff?$", re.IGNORECASE)
_NAME = re.compile(r"^(\d+)_t(\d{3,4})$")


def _files(folder: Path, pattern: re.Pattern[str]) -> dict[str, Path]:
    """Frame number (as written) -> file, for the files in ``folder`` matching ``pattern``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            continue
        number = match.group(1)
        if number in found:
            raise InputError(f"{path}: two files for frame {number} (also {found[number].name})")
        found[number] = path
    return found


def _dirs(root: Path, pattern: re.Pattern[str]) -> dict[str, Path]:
    return {m.group(1): p for p in sorted(root.iterdir())
            if (m := pattern.match(p.name)) is not None and p.is_dir()}


def looks_like_ctc(root: Path) -> bool:
    """True when ``root`` holds ``NN_GT/SEG`` or ``NN_ST/SEG`` folders or ``NN/tTTT.tif`` frames."""
    root = Path(root)
    if not root.is_dir():
        return False
    try:
        if any((truth / "SEG").is_dir() for pattern in _TRUTH.values()
               for truth in _dirs(root, pattern).values()):
            return True
        return any(_FRAME.match(f.name) for seq in _dirs(root, _SEQUENCE).values()
                   for f in seq.iterdir())
    except OSError:
        return False


def read_ctc(root: Path, annotation: Annotation = "gt") -> list[Sample]:
    """Read every frame of a Cell Tracking Challenge 2D dataset folder that has a mask.

    Parameters
    ----------
    root : folder holding ``NN/tTTT.tif`` raw frames and ``NN_GT/SEG/man_segTTT.tif``
        (and/or ``NN_ST/SEG/man_segTTT.tif``) instance masks, frame numbers 3 or 4
        digits wide, as in the challenge.
    annotation : ``"gt"`` reads the ``NN_GT`` masks, ``"st"`` the silver-truth ``NN_ST`` ones.

    Returns
    -------
    list[Sample]
        Sorted by sequence and frame; ``name`` is ``f"{NN}_t{TTT}"`` (source width kept),
        ``image`` is ``(Y, X)`` ``uint8``/``uint16``, ``mask`` is ``(Y, X)`` ``uint16``
        instance labels, ``origin`` the two paths relative to ``root``; ``annotation``,
        ``sequence`` (``NN``) and ``frame`` (``int(TTT)``) set.

    Raises
    ------
    InputError
        Masks whose frames folder or frame is missing, no mask of that annotation at all,
        a shape mismatch (naming both files), or any unreadable/invalid image (float or
        colour masks among them).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    try:
        sequences, truths = _dirs(root, _SEQUENCE), _dirs(root, _TRUTH[annotation])
        pairs: list[tuple[str, str, Path, Path]] = []
        for seq, truth in truths.items():
            seg = truth / "SEG"
            if not seg.is_dir():
                continue
            masks = _files(seg, _MASK)
            if masks and seq not in sequences:
                raise InputError(f"{seg}: masks without frames (missing folder {root / seq})")
            frames = _files(sequences[seq], _FRAME) if masks else {}
            for number, mask in masks.items():
                if number not in frames:
                    raise InputError(f"{mask}: missing frame {sequences[seq] / f't{number}.tif'}")
                pairs.append((seq, number, frames[number], mask))
    except OSError as err:
        raise InputError(f"{root}: cannot list folder: {err.strerror or err}") from None
    if not pairs:
        if annotation == "st":
            raise InputError(f"{root}: no silver-truth masks (expected NN_ST/SEG/man_segTTT.tif "
                             "for the frames NN/tTTT.tif; ingest.annotations st and gt+st "
                             "need them)")
        raise InputError(f"{root}: no masks (expected NN_GT/SEG/man_segTTT.tif for the frames "
                         "NN/tTTT.tif)")
    pairs.sort(key=lambda p: (int(p[0]), p[0], int(p[1])))
    return [_pair(root, annotation, *p) for p in pairs]


def _frame(path: Path) -> np.ndarray:
    return check_image(path, read_image(path))


def _pair(root: Path, annotation: Annotation, seq: str, number: str, frame: Path,
          mask_path: Path) -> Sample:
    return paired_sample(root, f"{seq}_t{number}", frame, _frame(frame),
                         mask_path, check_mask(mask_path, read_image(mask_path)),
                         annotation=annotation, sequence=seq, frame=int(number))


def check_held_out(root: Path, names: Sequence[str]) -> None:
    """Refuse sequences of ``root`` that cannot be held out whole as a test set.

    Parameters
    ----------
    root : a Cell Tracking Challenge dataset folder.
    names : sequence names (``"02"``), as ``ingest.test_sequences`` gives them.

    Raises
    ------
    InputError
        Naming the folder: a sequence ``root`` does not have (listing those it has), a
        sequence folder without frames, or one without GT masks to score against.
    """
    root = Path(root)
    try:
        sequences, truths = _dirs(root, _SEQUENCE), _dirs(root, _TRUTH["gt"])
        for name in names:
            if name not in sequences:
                have = ", ".join(sorted(sequences, key=lambda n: (int(n), n))) or "none"
                raise InputError(f"{root}: no sequence {name} to hold out "
                                 f"(ingest.test_sequences); the folder has: {have}")
            if not _files(sequences[name], _FRAME):
                raise InputError(f"{sequences[name]}: empty sequence, no frames tTTT.tif to "
                                 "hold out (ingest.test_sequences)")
            seg = truths.get(name, root / f"{name}_GT") / "SEG"
            if not seg.is_dir() or not _files(seg, _MASK):
                raise InputError(f"{seg}: no GT masks man_segTTT.tif, so sequence {name} has "
                                 "nothing to test on (ingest.test_sequences)")
    except OSError as err:
        raise InputError(f"{root}: cannot list folder: {err.strerror or err}") from None


def shared_sequences(root: Path, samples: list[Sample]) -> set[str]:
    """The sequences of ``samples`` that are recordings of the CTC folder ``root`` too.

    A sequence counts as shared when ``root`` has a frames folder of the same name
    (``NN/``) and every sample of that sequence whose frame number ``root`` also holds
    has the same pixels there; with no frame number in common, the name decides. So a
    held-back copy of ``02/`` is the source's ``02``, while another dataset's ``02``
    with different frames is not.

    Parameters
    ----------
    root : a Cell Tracking Challenge dataset folder (anything else shares nothing).
    samples : pairs with ``sequence`` and ``frame`` set (e.g. test pairs of another folder).

    Returns
    -------
    set[str]
        Sequence names (``"02"``).
    """
    root = Path(root)
    if not looks_like_ctc(root):
        return set()
    try:
        folders = _dirs(root, _SEQUENCE)
        shared = set()
        for seq in sorted({s.sequence for s in samples if s.sequence in folders}):
            frames = {int(n): p for n, p in _files(folders[seq], _FRAME).items()}
            held = [s for s in samples if s.sequence == seq and s.frame in frames]
            if all(np.array_equal(_frame(frames[s.frame]), s.image) for s in held):
                shared.add(seq)
    except OSError as err:
        raise InputError(f"{root}: cannot list folder: {err.strerror or err}") from None
    return shared


def prediction_name(name: str) -> str:
    """Relative output path for a predicted mask of sample ``name``.

    ``"02_t010"`` -> ``"02_RES/mask010.tif"`` (the challenge's result layout, frame
    width kept); any other name -> ``f"{name}.png"``.
    """
    match = _NAME.match(name)
    if match is None:
        return f"{name}.png"
    return result_name(match.group(1), match.group(2))


def sequence_frames(folder: Path) -> dict[str, Path]:
    """The raw frames ``tTTT.tif`` of one sequence folder ``NN/``: frame number -> file.

    Numbers are kept as written (3 or 4 digits); the mapping is sorted by number.
    """
    frames = _files(Path(folder), _FRAME)
    return dict(sorted(frames.items(), key=lambda item: int(item[0])))


def is_sequence(folder: Path) -> bool:
    """True when ``folder`` is named like a challenge sequence (``01``) and holds frames."""
    folder = Path(folder)
    return bool(_SEQUENCE.match(folder.name)) and folder.is_dir() and bool(sequence_frames(folder))


def result_name(sequence: str, number: str) -> str:
    """The challenge's result path of a frame's mask.

    ``("02", "010")`` -> ``02_RES/mask010.tif``.
    """
    return f"{sequence}_RES/mask{number}.tif"
