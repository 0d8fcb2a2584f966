"""ISBI-2012 EM reader: binary labels -> 4-connected cell instances (unetseg.data.em)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.data.em import cells_from_label, looks_like_em, natural_key, read_em
from unetseg.errors import InputError

SHAPE = (10, 12)


def _image(seed: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def _label(shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """Three cells: two boxes split by a membrane line, one touching only diagonally."""
    label = np.zeros(shape, np.uint8)
    label[1:4, 1:5] = 255
    label[5:8, 1:5] = 255
    label[8:10, 5:8] = 255
    return label


def make_em(split: Path, keys: list[str], suffix: str = ".png") -> Path:
    (split / "image").mkdir(parents=True, exist_ok=True)
    (split / "label").mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        for folder, array in (("image", _image(i)), ("label", _label())):
            if suffix == ".png":
                Image.fromarray(array).save(split / folder / f"{key}.png")
            else:
                tifffile.imwrite(split / folder / f"{key}{suffix}", array)
    return split


def _error(root: Path, match: str) -> str:
    with pytest.raises(InputError, match=match) as info:
        read_em(root)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_reads_train_pairs_in_natural_order(tmp_path: Path) -> None:
    make_em(tmp_path / "train", ["10", "2", "0", "1"])
    (tmp_path / "test").mkdir()
    Image.fromarray(_image(9)).save(tmp_path / "test" / "0.png")
    samples = read_em(tmp_path)
    assert [s.name for s in samples] == ["em_0", "em_1", "em_2", "em_10"]
    s = samples[0]
    assert s.origin == "train/image/0.png + train/label/0.png"
    assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint16
    np.testing.assert_array_equal(s.image, _image(2))
    assert s.mask.max() == 3
    assert np.array_equal(s.mask > 0, _label() == 255)


def test_diagonal_contact_keeps_cells_apart() -> None:
    mask = cells_from_label(Path("l.png"), _label())
    assert mask[2, 2] != mask[6, 2] and mask[6, 4] != mask[8, 5]
    assert len(np.unique(mask[mask > 0])) == 3


def test_split_folder_itself_and_tif_files(tmp_path: Path) -> None:
    make_em(tmp_path, ["a1", "a0"], suffix=".tif")
    assert [s.name for s in read_em(tmp_path)] == ["em_a0", "em_a1"]
    assert looks_like_em(tmp_path)


def test_label_conventions() -> None:
    zero_one = (_label() // 255).astype(np.uint8)
    np.testing.assert_array_equal(cells_from_label(Path("l"), zero_one),
                                  cells_from_label(Path("l"), _label()))
    soft = _label().copy()
    soft[1, 1], soft[0, 0] = 130, 127
    assert cells_from_label(Path("l"), soft)[1, 1] > 0
    assert cells_from_label(Path("l"), soft)[0, 0] == 0
    np.testing.assert_array_equal(cells_from_label(Path("l"), _label() > 0),
                                  cells_from_label(Path("l"), _label()))


def test_bad_labels_are_rejected() -> None:
    with pytest.raises(InputError, match="0..255"):
        cells_from_label(Path("l.png"), np.full(SHAPE, 300, np.uint16))
    with pytest.raises(InputError, match="float32"):
        cells_from_label(Path("l.tif"), _label().astype(np.float32))


def test_missing_label(tmp_path: Path) -> None:
    make_em(tmp_path / "train", ["0", "1"])
    (tmp_path / "train" / "label" / "1.png").unlink()
    message = _error(tmp_path, "no label")
    assert "image/1.png" in message


def test_label_without_image(tmp_path: Path) -> None:
    make_em(tmp_path / "train", ["0", "1"])
    (tmp_path / "train" / "image" / "0.png").unlink()
    _error(tmp_path, "label without image")


def test_shape_mismatch_names_both_files(tmp_path: Path) -> None:
    make_em(tmp_path / "train", ["0"])
    Image.fromarray(_label((10, 13))).save(tmp_path / "train" / "label" / "0.png")
    message = _error(tmp_path, "shapes differ")
    assert "image/0.png" in message and "label/0.png" in message


def test_no_images_and_wrong_layout(tmp_path: Path) -> None:
    make_em(tmp_path / "train", [])
    _error(tmp_path, "no images")
    _error(tmp_path / "elsewhere", "expected train/image/ and train/label/")


def test_rgb_image_is_rejected(tmp_path: Path) -> None:
    make_em(tmp_path / "train", ["0"])
    path = tmp_path / "train" / "image" / "0.png"
    Image.fromarray(np.stack([_image(0)] * 3, axis=-1)).save(path)
    assert str(path) in _error(tmp_path, "colour channels")


def test_looks_like_em(tmp_path: Path) -> None:
    assert looks_like_em(make_em(tmp_path / "a" / "train", ["0"]).parent)
    (tmp_path / "b" / "01").mkdir(parents=True)
    assert not looks_like_em(tmp_path / "b")
    assert not looks_like_em(tmp_path / "missing")


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["slice10", "slice2", "Slice1", "b", "a"]
    assert sorted(names, key=natural_key) == ["a", "b", "Slice1", "slice2", "slice10"]
