"""Cell Tracking Challenge 2D datasets: ``NN/tTTT.tif`` frames + ``NN_GT/SEG/man_segTTT.tif`` masks.

The paper's cell experiments (Sec. 4, PhC-U373 and DIC-HeLa) use this layout. Only
frames that have a SEG mask are training pairs; some SEG masks annotate only part
of the cells and are taken as they are. Predictions go back out in the challenge's
result layout, ``NN_RES/maskTTT.tif``.
"""

from __future__ import annotations

import re
from pathlib import Path

from unetseg.samples import Sample, paired_sample
from unetseg.errors import InputError
from unetseg.images import check_image, check_mask, read_image

_SEQUENCE = re.compile(r"^(\d+)$")
_GT = re.compile(r"^(\d+)_GT$")
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
    """True when ``root`` holds an ``NN_GT/SEG`` folder or an ``NN/`` folder of ``tTTT.tif``."""
    root = Path(root)
    if not root.is_dir():
        return False
    try:
        if any((gt / "SEG").is_dir() for gt in _dirs(root, _GT).values()):
            return True
        return any(_FRAME.match(f.name) for seq in _dirs(root, _SEQUENCE).values()
                   for f in seq.iterdir())
    except OSError:
        return False


def read_ctc(root: Path) -> list[Sample]:
    """Read every annotated frame of a Cell Tracking Challenge 2D dataset folder.

    Parameters
    ----------
    root : folder holding ``NN/tTTT.tif`` raw frames and ``NN_GT/SEG/man_segTTT.tif``
        instance masks (frame numbers 3 or 4 digits wide, as in the challenge).

    Returns
    -------
    list[Sample]
        Sorted by sequence and frame; ``name`` is ``f"{NN}_t{TTT}"`` (source width kept),
        ``image`` is ``(Y, X)`` ``uint8``/``uint16``, ``mask`` is ``(Y, X)`` ``uint16``
        instance labels, ``origin`` the two paths relative to ``root``.

    Raises
    ------
    InputError
        Masks whose frames folder or frame is missing, frames without any mask, a
        shape mismatch (naming both files), or any unreadable/invalid image.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    try:
        sequences, truths = _dirs(root, _SEQUENCE), _dirs(root, _GT)
        pairs: list[tuple[str, str, Path, Path]] = []
        for seq, gt in truths.items():
            seg = gt / "SEG"
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
        raise InputError(f"{root}: no masks (expected NN_GT/SEG/man_segTTT.tif for the frames "
                         "NN/tTTT.tif)")
    pairs.sort(key=lambda p: (int(p[0]), p[0], int(p[1])))
    return [_pair(root, *p) for p in pairs]


def _pair(root: Path, seq: str, number: str, frame: Path, mask_path: Path) -> Sample:
    return paired_sample(root, f"{seq}_t{number}", frame, check_image(frame, read_image(frame)),
                         mask_path, check_mask(mask_path, read_image(mask_path)))


def prediction_name(name: str) -> str:
    """Relative output path for a predicted mask of sample ``name``.

    ``"02_t010"`` -> ``"02_RES/mask010.tif"`` (the challenge's result layout, frame
    width kept); any other name -> ``f"{name}.png"``.
    """
    match = _NAME.match(name)
    if match is None:
        return f"{name}.png"
    return f"{match.group(1)}_RES/mask{match.group(2)}.tif"
