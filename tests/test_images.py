"""Image reading, validation and deterministic writing (unetseg.images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.errors import InputError
from unetseg.images import check_image, check_mask, read_image, read_png, write_png, write_tif


def _input_error(call, *args, match: str, path: Path | None = None) -> str:
    with pytest.raises(InputError, match=match) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    if path is not None:
        assert str(path) in message
    return message


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append(data[pos + 4:pos + 8])
        pos += 12 + length
    return chunks


@pytest.fixture
def ramp() -> np.ndarray:
    return (np.arange(12 * 10).reshape(12, 10) * 37 % 251).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_is_exact_and_deterministic(tmp_path: Path, dtype: type) -> None:
    array = (np.arange(9 * 7).reshape(9, 7) * 1000 % np.iinfo(dtype).max).astype(dtype)
    first, second = tmp_path / "a" / "b" / "x.png", tmp_path / "y.png"
    write_png(first, array)
    write_png(second, array)
    back = read_png(first)
    assert back.dtype == dtype and back.shape == (9, 7)
    np.testing.assert_array_equal(back, array)
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert _png_chunks(data) == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 3), np.uint8),
                                 np.zeros((4, 4), np.int32)])
def test_write_png_refuses_other_arrays(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        write_png(tmp_path / "x.png", bad)


def test_write_tif_is_zlib_uint16_without_metadata(tmp_path: Path) -> None:
    labels = np.zeros((16, 20), np.int32)
    labels[2:6, 3:9], labels[8:14, 10:18] = 3, 700
    write_tif(tmp_path / "02_RES" / "mask010.tif", labels)
    write_tif(tmp_path / "again.tif", labels)
    path = tmp_path / "02_RES" / "mask010.tif"
    assert path.read_bytes() == (tmp_path / "again.tif").read_bytes()
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert page.dtype == np.uint16
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        names = {tag.name for tag in page.tags.values()}
    assert not names & {"Software", "DateTime", "ImageDescription"}
    back = read_image(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)


def test_write_tif_goes_32_bit_beyond_65535_and_refuses_beyond_32(tmp_path: Path) -> None:
    labels = np.array([[0, 65535], [65536, 2**32 - 1]], np.int64)
    write_tif(tmp_path / "x.tif", labels)
    back = read_image(tmp_path / "x.tif")
    assert back.dtype == np.uint32
    np.testing.assert_array_equal(back, labels)
    write_tif(tmp_path / "y.tif", np.minimum(labels, 65535))
    assert read_image(tmp_path / "y.tif").dtype == np.uint16
    with pytest.raises(ValueError):
        write_tif(tmp_path / "z.tif", np.full((3, 3), 2**32, np.int64))
    with pytest.raises(ValueError):
        write_tif(tmp_path / "z.tif", np.full((3, 3), -1, np.int32))


def test_read_image_lzw_tiff_and_png(tmp_path: Path, ramp: np.ndarray) -> None:
    tifffile.imwrite(tmp_path / "t000.tif", ramp, compression="lzw")
    Image.fromarray(ramp).save(tmp_path / "a.png")
    for name in ("t000.tif", "a.png"):
        back = read_image(tmp_path / name)
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, ramp)


@pytest.mark.parametrize("shape", [(1, 12, 10), (12, 10, 1), (1, 12, 10, 1)])
def test_read_image_squeezes_singleton_axes(tmp_path: Path, ramp: np.ndarray,
                                            shape: tuple[int, ...]) -> None:
    tifffile.imwrite(tmp_path / "s.tif", ramp.reshape(shape), photometric="minisblack")
    np.testing.assert_array_equal(read_image(tmp_path / "s.tif"), ramp)


def test_read_image_rejects_3d_stack(tmp_path: Path, ramp: np.ndarray) -> None:
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack([ramp, ramp, ramp, ramp, ramp]), photometric="minisblack")
    _input_error(read_image, path, match="3-D.*expected a single 2-D frame", path=path)


def test_read_image_rejects_rgb(tmp_path: Path, ramp: np.ndarray) -> None:
    rgb = np.stack([ramp] * 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    for name in ("rgb.png", "rgb.tif"):
        _input_error(read_image, tmp_path / name, match="3 colour channels", path=tmp_path / name)
    Image.fromarray(np.stack([ramp] * 2, axis=-1), mode="LA").save(tmp_path / "la.png")
    _input_error(read_image, tmp_path / "la.png", match="2 colour channels")


def test_read_image_png_suffix_must_hold_a_png(tmp_path: Path, ramp: np.ndarray) -> None:
    path = tmp_path / "really_a_tiff.png"
    tifffile.imwrite(path, ramp)
    _input_error(read_image, path, match="cannot read image", path=path)


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_read_image_truncated_file(tmp_path: Path, ramp: np.ndarray, suffix: str) -> None:
    good = tmp_path / f"good{suffix}"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    if suffix == ".tif":
        tifffile.imwrite(good, noise, compression="lzw")
    else:
        Image.fromarray(noise).save(good)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    _input_error(read_image, bad, match="cannot read image", path=bad)


@pytest.mark.parametrize("name", ["x.tif", "x.png"])
def test_read_image_corrupt_bytes_and_missing_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not an image at all")
    _input_error(read_image, path, match="cannot read image", path=path)
    _input_error(read_image, tmp_path / "missing.tif", match="cannot read image")


def test_read_image_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(b"")
    _input_error(read_image, path, match="unsupported image format", path=path)


def test_read_png_rejects_colour(tmp_path: Path, ramp: np.ndarray) -> None:
    Image.fromarray(np.stack([ramp] * 4, axis=-1)).save(tmp_path / "rgba.png")
    _input_error(read_png, tmp_path / "rgba.png", match="colour channels")


def test_check_image_passes_8_and_16_bit(ramp: np.ndarray) -> None:
    assert check_image("f", ramp) is ramp
    wide = ramp.astype(np.uint16) * 200
    assert check_image("f", wide) is wide


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_image_rejects_non_finite(bad: float) -> None:
    array = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    array[1, 2] = bad
    _input_error(check_image, Path("f.tif"), array, match="NaN or infinite", path=Path("f.tif"))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_check_image_rejects_constant(dtype: type) -> None:
    _input_error(check_image, Path("c.tif"), np.full((5, 6), 7, dtype), match="constant",
                 path=Path("c.tif"))


def test_check_image_converts_other_dtypes() -> None:
    floats = np.array([[-1.0, 0.0], [0.5, 3.0]], np.float64)
    np.testing.assert_array_equal(check_image("f", floats), [[0, 16384], [24576, 65535]])
    assert check_image("f", floats).dtype == np.uint16
    ints = np.array([[0, 300], [40000, 5]], np.int32)
    out = check_image("f", ints)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, ints)
    wide = np.array([[-5, 0], [0, 100000]], np.int64)
    assert check_image("f", wide).tolist() == [[0, 3], [3, 65535]]
    flags = np.array([[True, False], [False, False]])
    assert check_image("f", flags).tolist() == [[255, 0], [0, 0]]


def test_check_image_rejects_rgb_and_3d() -> None:
    _input_error(check_image, "f", np.zeros((4, 4, 3), np.uint8), match="colour channels")
    _input_error(check_image, "f", np.zeros((2, 5, 6), np.uint8), match="expected a non-empty 2-D")


def test_check_mask_accepts_integer_ids() -> None:
    mask = np.array([[0, 3], [65535, 3]], np.int64)
    out = check_mask("m", mask)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, mask)
    assert check_mask("m", np.array([[True, False]])).tolist() == [[1, 0]]


def test_check_mask_rejects_float_and_fractional_ids() -> None:
    path = Path("man_seg000.tif")
    _input_error(check_mask, path, np.array([[0.0, 1.5]], np.float32),
                 match="mask ids are not integers", path=path)
    _input_error(check_mask, path, np.array([[0.0, np.nan]], np.float32),
                 match="mask ids are not integers", path=path)
    _input_error(check_mask, path, np.array([[0.0, 2.0]], np.float64),
                 match="float64; expected integer instance ids", path=path)


def test_check_mask_rejects_rgb_negative_and_too_large() -> None:
    _input_error(check_mask, "m", np.zeros((4, 4, 3), np.uint8), match="colour channels")
    _input_error(check_mask, "m", np.array([[0, -2]], np.int32), match="negative ids")
    _input_error(check_mask, "m", np.array([[0, 65536]], np.int32), match="exceed 65535")


def test_to_gray_takes_luminance_and_keeps_the_dtype():
    from unetseg.images import to_gray

    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 1] = 200
    gray = to_gray(rgb)
    assert gray.dtype == np.uint8 and gray.shape == (2, 3)
    assert (gray == round(0.7154 * 200)).all()
    assert to_gray(np.dstack([rgb[..., 1], rgb[..., 0]])).tolist() == rgb[..., 1].tolist()
    assert to_gray(rgb[..., 1]) is not None and to_gray(rgb[..., 1]).shape == (2, 3)


def test_probe_reads_the_shape_from_the_header_only(tmp_path):
    from unetseg.images import probe_image

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((1, 30, 40), np.uint16))
    assert probe_image(tmp_path / "a.tif") == (30, 40)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 30, 40), np.uint8))
    with pytest.raises(InputError, match="3-D"):
        probe_image(tmp_path / "stack.tif")
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "rgb.png")
    assert probe_image(tmp_path / "rgb.png", colour=True) == (5, 6, 3)
    with pytest.raises(InputError, match="colour channels"):
        probe_image(tmp_path / "rgb.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png: cannot read image"):
        probe_image(tmp_path / "bad.png")


def test_masks_and_probabilities_are_written_whole(tmp_path):
    from unetseg.images import write_mask, write_probability

    labels = np.arange(20, dtype=np.uint16).reshape(4, 5)
    write_mask(tmp_path / "a" / "m.tif", labels)
    write_mask(tmp_path / "a" / "m.png", labels)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a" / "m.tif"), labels)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a" / "m.png")), labels)
    write_probability(tmp_path / "p.tif", labels / 20)
    assert tifffile.imread(tmp_path / "p.tif").dtype == np.float32
    with pytest.raises(ValueError):
        write_mask(tmp_path / "b.tif", np.zeros((2, 2, 2), np.uint16))
    assert not (tmp_path / "b.tif").exists() and not list(tmp_path.glob(".b.tif*"))
