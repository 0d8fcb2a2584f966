"""Resampling keeps dtypes and ids, and a down-up round trip lands on the original grid."""

import numpy as np
import pytest

from unetseg.prepare.resampling import (
    offset_errors,
    offset_grid,
    resample_image,
    resample_mask,
    resize_probability,
    scaled_shape,
    shift_map,
)


def test_scaled_shape_rounds_and_never_vanishes():
    assert scaled_shape((520, 696), 0.5) == (260, 348)
    assert scaled_shape((5, 7), 0.25) == (1, 2)
    assert scaled_shape((10, 10), 1.5) == (15, 15)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_image_keeps_dtype_range_and_mean(dtype):
    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, size=(64, 96), endpoint=True).astype(dtype)
    small = resample_image(image, 0.5)
    assert small.dtype == dtype and small.shape == (32, 48)
    assert abs(float(small.mean()) - float(image.mean())) < 0.01 * top
    assert resample_image(image, 1.0) is image


def test_shrinking_smooths_instead_of_aliasing():
    stripes = np.zeros((64, 64), np.uint8)
    stripes[:, ::2] = 200
    small = resample_image(stripes, 0.5)
    assert small.std() < 10 and abs(float(small.mean()) - 100) < 10


def test_mask_keeps_ids_and_object_geometry():
    mask = np.zeros((80, 80), np.uint16)
    mask[10:30, 10:40] = 7
    mask[40:70, 20:60] = 300
    small = resample_mask(mask, 0.5)
    assert small.dtype == np.uint16 and small.shape == (40, 40)
    assert set(np.unique(small)) == {0, 7, 300}
    assert (small == 7).sum() == 10 * 15 and (small == 300).sum() == 15 * 20
    big = resample_mask(mask, 2.0)
    assert (big == 7).sum() == 4 * (mask == 7).sum()


def test_probability_round_trip_is_aligned_with_the_original_grid():
    yy, xx = np.mgrid[:120, :160]
    disk = ((yy - 50) ** 2 + (xx - 90) ** 2 < 30**2).astype(np.float32)
    back = resize_probability(resize_probability(disk, (60, 80)), (120, 160))
    assert back.dtype == np.float32 and back.shape == (120, 160)
    assert back.min() >= 0 and back.max() <= 1
    ys, xs = np.nonzero(back > 0.5)
    assert abs(ys.mean() - 50) < 0.5 and abs(xs.mean() - 90) < 0.5
    assert abs(int((back > 0.5).sum()) - int(disk.sum())) < 0.03 * disk.sum()


def _disk(centre: tuple[float, float], shape=(64, 80), radius=15.0) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.hypot(yy - centre[0], xx - centre[1]) < radius


def test_shift_map_moves_content_by_whole_and_sub_pixels():
    yy, xx = np.mgrid[:64, :80]
    blob = np.exp(-((yy - 30) ** 2 + (xx - 40) ** 2) / 32).astype(np.float64)
    assert shift_map(blob, (0.0, 0.0)) is blob
    whole = shift_map(blob, (-1.0, 2.0))
    assert whole.dtype == np.float32 and np.allclose(whole[9:-9, 9:-9], blob[10:-8, 7:-11])
    half = shift_map(blob, (0.5, -0.25))
    assert abs((half * yy).sum() / half.sum() - 30.5) < 0.02
    assert abs((half * xx).sum() / half.sum() - 39.75) < 0.02


def test_offset_grid_starts_at_zero_and_covers_the_square():
    grid = offset_grid(1.0, 0.5)
    assert grid.shape == (25, 2) and np.array_equal(grid[0], [0.0, 0.0])
    assert np.abs(grid).max() == 1.0 and len({tuple(g) for g in grid}) == 25
    assert np.all(np.diff(np.hypot(grid[:, 0], grid[:, 1])) >= 0)


def test_offset_errors_find_how_far_the_labels_sit_from_the_prediction():
    labels = _disk((32, 40))
    yy, xx = np.mgrid[:64, :80]
    prob = 1 / (1 + np.exp(np.hypot(yy - 32.5, xx - 39.25) - 15.0))
    offsets = offset_grid()
    errors = offset_errors(prob, labels, 0.5, offsets)
    assert errors.shape == (len(offsets),) and errors[0] > 0
    assert tuple(offsets[np.argmin(errors)]) == (-0.5, 0.75)
    assert offset_errors(1 / (1 + np.exp(np.hypot(yy - 32, xx - 40) - 15.0)), labels, 0.5,
                         offsets).argmin() == 0
    with pytest.raises(ValueError, match="differ"):
        offset_errors(prob[:-1], labels, 0.5, offsets)
