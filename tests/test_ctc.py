"""Cell Tracking Challenge 2D reader and result names (unetseg.data.ctc)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unetseg.data.ctc import (
    check_held_out,
    looks_like_ctc,
    prediction_name,
    read_ctc,
    shared_sequences,
)
from unetseg.errors import InputError

SHAPE = (12, 14)
DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
U373 = DATASETS / "PhC-C2DH-U373"


def _frame(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def _mask(number: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, np.uint16)
    mask[1:5, 2:6] = number + 1
    mask[6:10, 7:12] = number + 40
    return mask


def st_mask(number: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """A silver-truth mask: every cell of :func:`_mask` plus one more, ids of their own."""
    mask = np.zeros(shape, np.uint16)
    mask[1:5, 2:6], mask[6:10, 7:12], mask[9:11, 1:4] = 1, 2, 3
    mask[0, 0] = number % 7 + 4
    return mask


def make_ctc(root: Path, frames: dict[str, list[int]], masks: dict[str, list[int]],
             width: int = 3, st: dict[str, list[int]] | None = None) -> Path:
    """A tiny CTC folder: LZW uint8 frames ``NN/tTTT.tif``, uint16 masks ``NN_GT/SEG``
    and silver-truth masks ``NN_ST/SEG`` (:func:`st_mask`) for the frames ``st`` names."""
    for seq, numbers in frames.items():
        (root / seq).mkdir(parents=True, exist_ok=True)
        for n in numbers:
            tifffile.imwrite(root / seq / f"t{n:0{width}d}.tif", _frame(n), compression="lzw")
    for kind, make, sets in (("GT", _mask, masks), ("ST", st_mask, st or {})):
        for seq, numbers in sets.items():
            seg = root / f"{seq}_{kind}" / "SEG"
            seg.mkdir(parents=True, exist_ok=True)
            for n in numbers:
                tifffile.imwrite(seg / f"man_seg{n:0{width}d}.tif", make(n), compression="lzw")
    return root


def _error(root: Path, match: str, annotation: str = "gt") -> str:
    with pytest.raises(InputError, match=match) as info:
        read_ctc(root, annotation)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reads_only_annotated_frames(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"02": [0, 1, 2, 10], "01": [0, 5]}, {"02": [10, 1], "01": [5]})
    (root / "02_GT" / "TRA").mkdir()
    samples = read_ctc(root)
    assert [s.name for s in samples] == ["01_t005", "02_t001", "02_t010"]
    s = samples[2]
    assert s.origin == "02/t010.tif + 02_GT/SEG/man_seg010.tif"
    assert (s.annotation, s.sequence, s.frame) == ("gt", "02", 10)
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
    assert looks_like_ctc(make_ctc(tmp_path / "st", {}, {}, st={"01": [0]}))
    (tmp_path / "c" / "train" / "image").mkdir(parents=True)
    assert not looks_like_ctc(tmp_path / "c")
    assert not looks_like_ctc(tmp_path / "missing")


def test_reads_silver_truth_apart_from_gold(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"02": [0, 1, 2, 10]}, {"02": [10]}, st={"02": [0, 2, 10]})
    st = read_ctc(root, "st")
    assert [s.name for s in st] == ["02_t000", "02_t002", "02_t010"]
    assert [(s.annotation, s.sequence, s.frame) for s in st] == [("st", "02", n)
                                                                 for n in (0, 2, 10)]
    assert st[2].origin == "02/t010.tif + 02_ST/SEG/man_seg010.tif"
    np.testing.assert_array_equal(st[2].mask, st_mask(10))
    np.testing.assert_array_equal(st[2].image, _frame(10))
    gt = read_ctc(root, "gt")
    assert [(s.name, s.annotation) for s in gt] == [("02_t010", "gt")]
    np.testing.assert_array_equal(gt[0].mask, _mask(10))


def test_silver_truth_only_dataset_has_no_gold(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0, 1]}, {}, st={"01": [1]})
    assert [s.name for s in read_ctc(root, "st")] == ["01_t001"]
    _error(root, "no masks .expected NN_GT/SEG")


def test_st_asked_for_a_dataset_without_st(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0, 1]}, {"01": [1]})
    message = _error(root, "no silver-truth masks", "st")
    assert str(root) in message and "NN_ST/SEG" in message and "ingest.annotations" in message


def test_st_mask_shape_differs_from_its_frame(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0, 1]}, {"01": [0]}, st={"01": [0, 1]})
    tifffile.imwrite(root / "01_ST" / "SEG" / "man_seg001.tif", st_mask(1, (12, 13)))
    message = _error(root, "shapes differ", "st")
    assert "01/t001.tif" in message and "01_ST/SEG/man_seg001.tif" in message
    assert "12x14 vs 12x13" in message
    assert [s.name for s in read_ctc(root, "gt")] == ["01_t000"], "GT reads on regardless"


def test_float_st_mask_is_rejected(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {}, st={"01": [0]})
    path = root / "01_ST" / "SEG" / "man_seg000.tif"
    tifffile.imwrite(path, st_mask(0).astype(np.float32) / 2)
    assert str(path) in _error(root, "mask ids are not integers", "st")
    tifffile.imwrite(path, st_mask(0).astype(np.float32))
    assert str(path) in _error(root, "expected integer instance ids", "st")


def test_st_masks_without_frames(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0]}, {}, st={"01": [0, 5]})
    message = _error(root, "missing frame", "st")
    assert "01_ST/SEG/man_seg005.tif" in message and "t005.tif" in message


def test_shared_sequences_compare_names_and_pixels(tmp_path: Path) -> None:
    source = make_ctc(tmp_path / "src", {"02": list(range(8)), "01": [0]}, {"02": [1]})
    copy = make_ctc(tmp_path / "copy", {"02": [3, 5]}, {"02": [3, 5]})
    held = read_ctc(copy)
    assert shared_sequences(source, held) == {"02"}
    no_common = make_ctc(tmp_path / "later", {"02": [30]}, {"02": [30]})
    assert shared_sequences(source, read_ctc(no_common)) == {"02"}, "the name decides"
    other = make_ctc(tmp_path / "other", {"02": [3]}, {"02": [3]})
    tifffile.imwrite(other / "02" / "t003.tif", _frame(99))
    assert shared_sequences(source, read_ctc(other)) == set(), "another recording named 02"
    assert shared_sequences(source, []) == set()
    renamed = make_ctc(tmp_path / "renamed", {"03": [3]}, {"03": [3]})
    assert shared_sequences(source, read_ctc(renamed)) == set()
    (tmp_path / "em" / "train" / "image").mkdir(parents=True)
    assert shared_sequences(tmp_path / "em", held) == set()


def test_held_out_sequences_must_exist_hold_frames_and_have_gt(tmp_path: Path) -> None:
    root = make_ctc(tmp_path, {"01": [0, 1], "02": [0, 1], "10": [4]}, {"01": [1], "02": [0]},
                    st={"10": [4]})
    check_held_out(root, ["02", "01"])
    with pytest.raises(InputError, match=r"no sequence 3 to hold out .*has: 01, 02, 10$") as info:
        check_held_out(root, ["01", "3"])
    assert str(info.value).startswith(f"{root}: ")
    (root / "04").mkdir()
    with pytest.raises(InputError, match=f"^{re.escape(str(root / '04'))}: empty sequence"):
        check_held_out(root, ["04"])
    seg = re.escape(str(root / "10_GT" / "SEG"))
    with pytest.raises(InputError, match=f"^{seg}: no GT masks .*sequence 10"):
        check_held_out(root, ["10"])


@pytest.mark.skipif(not U373.is_dir(), reason=f"needs the shared datasets at {DATASETS}")
def test_real_u373_silver_truth() -> None:
    st = read_ctc(U373, "st")
    frames = [*range(14), *range(32, 36), *range(58, 72), *range(83, 101), 112, 113, 114]
    assert [(s.sequence, s.frame) for s in st] == \
        [("01", n) for n in range(115)] + [("02", n) for n in frames]
    assert all(s.annotation == "st" for s in st)
    assert all(s.image.shape == s.mask.shape == (520, 696) for s in st[::10])
    gt = {(s.sequence, s.frame): s for s in read_ctc(U373, "gt")}
    both = sorted(set(gt) & {(s.sequence, s.frame) for s in st})
    assert [f for seq, f in both if seq == "02"] == [10, 35, 59, 85, 92, 112]
    assert len([f for seq, f in both if seq == "01"]) == 15
    cells = {(s.sequence, s.frame): np.unique(s.mask[s.mask > 0]).size for s in st}
    for key in both:
        st_frame = next(s for s in st if (s.sequence, s.frame) == key)
        np.testing.assert_array_equal(st_frame.image, gt[key].image)
        assert cells[key] >= np.unique(gt[key].mask[gt[key].mask > 0]).size - 1, key
    assert min(cells.values()) >= 1


@pytest.mark.parametrize(("name", "expected"), [
    ("02_t010", "02_RES/mask010.tif"),
    ("01_t0007", "01_RES/mask0007.tif"),
    ("em_3", "em_3.png"),
    ("syn_00", "syn_00.png"),
    ("02_t10", "02_t10.png"),
])
def test_prediction_name(name: str, expected: str) -> None:
    assert prediction_name(name) == expected
