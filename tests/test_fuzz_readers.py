"""Fuzzing: readers and params either return valid results or raise InputError, nothing else."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from unetseg.config import Params, params_from_dict
from unetseg.data.ctc import read_ctc
from unetseg.data.datasets import read_samples
from unetseg.data.em import read_em
from unetseg.data.pairs import Sample
from unetseg.errors import InputError
from unetseg.images import read_image

# derandomize: the same examples on every run, so CI results are reproducible.
FUZZ = settings(max_examples=50, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
SHAPE = (6, 7)


def _tif(array: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


_rng = np.random.default_rng(0)
_frame = _rng.integers(0, 255, SHAPE, dtype=np.uint8)
_ids = np.zeros(SHAPE, np.uint16)
_ids[1:3, 1:4], _ids[4:6, 2:6] = 1, 7
_nan = _frame.astype(np.float32)
_nan[0, 0] = np.nan
CONTENTS: dict[str, bytes] = {
    "frame": _tif(_frame, compression="lzw"),
    "frame16": _tif(_frame.astype(np.uint16) * 250, compression="zlib"),
    "mask": _tif(_ids, compression="lzw"),
    "small": _tif(_ids[:5], compression="lzw"),
    "rgb": _tif(np.stack([_frame] * 3, axis=-1), photometric="rgb"),
    "stack": _tif(np.stack([_frame] * 2), photometric="minisblack"),
    "nan": _tif(_nan),
    "float_ids": _tif(_ids.astype(np.float32) / 2),
    "constant": _tif(np.zeros(SHAPE, np.uint8)),
    "png_frame": _png(_frame),
    "png_label": _png((_ids > 0).astype(np.uint8) * 255),
    "png_rgb": _png(np.stack([_frame] * 3, axis=-1)),
    "junk": b"II*\x00\x08\x00\x00\x00\xff\xff garbage",
    "empty": b"",
}
CTC_PATHS = ["01/t000.tif", "01/t001.tif", "01/t0001.tif", "01/t000.tiff", "02/t000.tif", "03",
             "01_GT/SEG/man_seg000.tif", "01_GT/SEG/man_seg001.tif", "01_GT/SEG/man_seg0001.tif",
             "02_GT/SEG/man_seg000.tif", "03_GT/SEG/man_seg000.tif", "01_GT/TRA/man_track000.tif",
             "01/readme.txt", "01_GT/SEG"]
EM_PATHS = ["train/image/0.png", "train/image/1.png", "train/image/1.tif", "train/image/2.png",
            "train/label/0.png", "train/label/1.png", "train/label/2.tif", "image/0.png",
            "label/0.png", "test/0.png", "train/label", "train/image/.hidden.png"]


def _build(root: Path, layout: dict[str, str]) -> None:
    """Write ``layout`` (relative path -> content key or "dir") under ``root``; skip clashes."""
    for rel, kind in layout.items():
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                path.mkdir(exist_ok=True)
            elif not path.is_dir():
                path.write_bytes(CONTENTS[kind])
        except (FileExistsError, NotADirectoryError):
            continue


def _check_samples(samples: list[Sample]) -> None:
    assert isinstance(samples, list) and samples
    names = [s.name for s in samples]
    assert len(set(names)) == len(names)
    for s in samples:
        assert isinstance(s, Sample)
        assert s.image.ndim == 2 and s.image.dtype in (np.uint8, np.uint16)
        assert s.mask.dtype == np.uint16 and s.mask.shape == s.image.shape
        assert s.image.min() < s.image.max()


def _layouts(paths: list[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(paths), st.sampled_from([*CONTENTS, "dir"]),
                           max_size=len(paths))


def _read_or_input_error(reader, layout: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _build(root, layout)
        try:
            samples = reader(root)
        except InputError as err:
            assert "\n" not in str(err)
            return
        _check_samples(samples)


@FUZZ
@given(_layouts(CTC_PATHS))
def test_read_ctc_on_random_folders(layout: dict[str, str]) -> None:
    _read_or_input_error(read_ctc, layout)


@FUZZ
@given(_layouts(EM_PATHS))
def test_read_em_on_random_folders(layout: dict[str, str]) -> None:
    _read_or_input_error(read_em, layout)


@FUZZ
@given(_layouts(CTC_PATHS + EM_PATHS))
def test_read_samples_on_random_folders(layout: dict[str, str]) -> None:
    _read_or_input_error(read_samples, layout)


def _read_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        try:
            array = read_image(path)
        except InputError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            return
        assert isinstance(array, np.ndarray) and array.ndim == 2 and array.size > 0


@FUZZ
@given(st.sampled_from([b"", b"II*\x00", b"MM\x00*", b"II+\x00", b"\x89PNG\r\n\x1a\n"]),
       st.binary(max_size=400), st.sampled_from([".tif", ".png"]))
def test_read_image_on_random_bytes(magic: bytes, tail: bytes, suffix: str) -> None:
    _read_bytes(magic + tail, suffix)


@FUZZ
@given(st.sampled_from(sorted(CONTENTS)), st.lists(st.tuples(st.integers(0, 10_000),
                                                             st.integers(0, 255)), max_size=8),
       st.integers(0, 10_000))
def test_read_image_on_damaged_files(kind: str, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(CONTENTS[kind])
    for pos, value in edits:
        if data:
            data[pos % len(data)] = value
    suffix = ".png" if kind.startswith("png") else ".tif"
    _read_bytes(bytes(data[: max(cut, len(data) // 2)]), suffix)


_SECTIONS = ["ingest", "synthetic", "prepare", "augment", "model", "train", "evaluate"]
_KEYS = ["source", "sha256", "test_fraction", "seed", "n_images", "height", "w0", "sigma",
         "balance", "copies", "arch", "depth", "padding", "tile_size", "lr", "epochs",
         "batch_size", "optimizer", "threshold", "instances", "dropout", "strategy"]
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
            | st.sampled_from(["unet", "same", "valid", "adam", "watershed", "synthetic", "a" * 64])
            | st.sampled_from([10**400, -(10**400), 2**63]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


@FUZZ
@given(st.none() | _VALUES | st.dictionaries(
    st.sampled_from(_SECTIONS) | st.text(max_size=5),
    st.none() | _VALUES | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), _VALUES,
                                          max_size=5), max_size=4))
@example({"train": {"lr": 10**400}})
@example({"model": {"arch": "unet", "bad\nkey": 1}})
def test_params_from_dict_on_random_nested_dicts(raw: object) -> None:
    try:
        params = params_from_dict(raw)
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(params, Params)
