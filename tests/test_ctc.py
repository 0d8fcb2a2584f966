"""Cell Tracking Challenge 2D reader and result names (unetseg.ctc)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from unetseg.ctc import looks_like_ctc, prediction_name, read_ctc
from unetseg.errors import InputError

SHAPE = (12, 14)


def _frame(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def _mask(number: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, np.uint16)
    mask[1:5, 2:6] = number + 1
    mask[6:10, 7:12] = number + 40
    return mask


def make_ctc(root: Path, frames: dict[str, list[int]], masks: dict[str, list[int]],
             width: int = 3) -> Path:
    """A tiny CTC folder: LZW uint8 frames ``NN/tTTT.tif``, uint16 masks ``NN_GT/SEG``."""
    for seq, numbers in frames.items():
        (root / seq).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            tifffile.imwrite(root / seq / f"t{n:0{width}d}.tif", _frame(n), compression="lzw")
    for seq, numbers in masks.items():
        seg = root / f"{seq}_GT" / "SEG"
        seg.mkdir(parents=True, exist_ok=True)
        for n in numbers:
            tifffile.imwrite(seg / f"man_seg{n:0{width}d}.tif", _mask(n), compression="lzw")
    return root


def _error(root: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        read_ctc(root)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reads_only_annotated_frames(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"02": [0, 1, 2, 10], "01": [0, 5]}, {"02": [10, 1], "01": [5]})
    (root / "02_GT" / "TRA").mkdir()
    samples = read_ctc(root)
    assert [s.name for s in samples] == ["01_t005", "02_t001", "02_t010"]
    s = samples[2]
    assert s.origin == "02/t010.tif + 02_GT/SEG/man_seg010.tif"
    assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint16
    assert s.image.shape == s.mask.shape == SHAPE
    np.testing.assert_array_equal(s.image, _frame(10))
    np.testing.assert_array_equal(s.mask, _mask(10))


def test_four_digit_frames_keep_their_width(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [7, 8]}, {"01": [8]}, width=4)
    assert [s.name for s in read_ctc(root)] == ["01_t0008"]


def test_partial_masks_are_taken_as_they_are(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [3]}, {})
    seg = root / "01_GT" / "SEG"
    seg.mkdir(parents=True)
    partial = np.zeros(SHAPE, np.uint16)
    partial[2:4, 2:4], partial[8:11, 9:12] = 9, 31
    tifffile.imwrite(seg / "man_seg003.tif", partial)
    np.testing.assert_array_equal(read_ctc(root)[0].mask, partial)


def test_sixteen_bit_frames(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {}, {"01": [0]})
    (root / "01").mkdir()
    frame = (np.arange(np.prod(SHAPE)).reshape(SHAPE) * 300).astype(np.uint16)
    tifffile.imwrite(root / "01" / "t000.tif", frame)
    np.testing.assert_array_equal(read_ctc(root)[0].image, frame)


def test_masks_without_frames_folder(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {"01": [0], "02": [0]})
    assert "missing folder" in _error(root, "masks without frames")


def test_mask_without_its_frame(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0, 1]}, {"01": [1, 4]})
    message = _error(root, "missing frame")
    assert "man_seg004.tif" in message and "t004.tif" in message


def test_frames_but_no_masks(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0, 1], "02": [0]}, {})
    (root / "01_GT" / "SEG").mkdir(parents=True)
    assert str(root) in _error(root, "no masks")


def test_shape_mismatch_names_both_files(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {"01": [0]})
    tifffile.imwrite(root / "01" / "t000.tif", _frame(0, (12, 15)))
    message = _error(root, "shapes differ")
    assert "t000.tif" in message and "man_seg000.tif" in message


def test_rgb_and_float_masks_are_rejected(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {"01": [0]})
    mask_path = root / "01_GT" / "SEG" / "man_seg000.tif"
    tifffile.imwrite(mask_path, np.zeros((*SHAPE, 3), np.uint8), photometric="rgb")
    assert str(mask_path) in _error(root, "colour channels")
    tifffile.imwrite(mask_path, _mask(0).astype(np.float32) + 0.25)
    _error(root, "mask ids are not integers")


def test_three_d_stack_frame_is_rejected(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {"01": [0]})
    tifffile.imwrite(root / "01" / "t000.tif", np.stack([_frame(i) for i in range(3)]),
                     photometric="minisblack")
    _error(root, "3-D")


def test_corrupt_frame_is_rejected(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {"01": [0]})
    frame = root / "01" / "t000.tif"
    frame.write_bytes(frame.read_bytes()[:40])
    assert str(frame) in _error(root, "cannot read image")


def test_constant_frame_is_rejected(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {"01": [0]})
    tifffile.imwrite(root / "01" / "t000.tif", np.zeros(SHAPE, np.uint8))
    _error(root, "constant")


def test_looks_like_ctc(tmp_path: Path) -> None:
    assert looks_like_ctc(make_ctc(tmp_path / "a", {"01": [0]}, {}))
    assert looks_like_ctc(make_ctc(tmp_path / "b", {}, {"01": [0]}))
    (tmp_path / "c" / "train" / "image").mkdir(parents=True)
    assert not looks_like_ctc(tmp_path / "c")
    assert not looks_like_ctc(tmp_path / "missing")


@pytest.mark.parametrize(("name", "expected"), [
    ("02_t010", "02_RES/mask010.tif"),
    ("01_t0007", "01_RES/mask0007.tif"),
    ("em_3", "em_3.png"),
    ("syn_00", "syn_00.png"),
    ("02_t10", "02_t10.png"),
])
def test_prediction_name(name: str, expected: str) -> None:
    assert prediction_name(name) == expected
