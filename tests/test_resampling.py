"""Resampling keeps dtypes and ids, and a down-up round trip lands on the original grid."""

import numpy as np
import pytest

from unetseg.resampling import resample_image, resample_mask, resize_probability, scaled_shape


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
    assert 0 <= back.min() and back.max() <= 1
    ys, xs = np.nonzero(back > 0.5)
    assert abs(ys.mean() - 50) < 0.5 and abs(xs.mean() - 90) < 0.5
    assert abs(int((back > 0.5).sum()) - int(disk.sum())) < 0.03 * disk.sum()
