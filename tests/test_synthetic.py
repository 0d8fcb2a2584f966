"""Tests of the synthetic DIC-like dataset generator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from unetseg.data import synthetic
from unetseg.errors import InputError

H, W, N_CELLS = 128, 128, 12


@pytest.fixture(scope="module")
def samples() -> list:
    return synthetic.generate(4, H, W, N_CELLS, seed=5)


def test_byte_identical_across_calls(samples: list) -> None:
    again = synthetic.generate(4, H, W, N_CELLS, seed=5)
    for a, b in zip(samples, again, strict=True):
        assert a.name == b.name and a.origin == b.origin
        assert a.image.tobytes() == b.image.tobytes()
        assert a.mask.tobytes() == b.mask.tobytes()


def test_image_k_does_not_depend_on_n_images() -> None:
    three = synthetic.generate(3, 64, 80, 6, seed=2)
    five = synthetic.generate(5, 64, 80, 6, seed=2)
    for a, b in zip(three, five[:3], strict=True):
        assert a.image.tobytes() == b.image.tobytes()
        assert a.mask.tobytes() == b.mask.tobytes()


def test_generate_one_is_what_generate_uses() -> None:
    child = np.random.SeedSequence(9).spawn(2)[1]
    image, mask = synthetic.generate_one(64, 64, 5, np.random.default_rng(child))
    second = synthetic.generate(2, 64, 64, 5, seed=9)[1]
    assert np.array_equal(image, second.image) and np.array_equal(mask, second.mask)


def test_names_origins_dtypes_shapes(samples: list) -> None:
    assert [s.name for s in samples] == ["01_t000", "01_t001", "01_t002", "01_t003"]
    assert [s.origin for s in samples] == [f"synthetic(seed=5, index={k})" for k in range(4)]
    for s in samples:
        assert s.image.dtype == np.uint8 and s.image.shape == (H, W)
        assert s.mask.dtype == np.uint16 and s.mask.shape == (H, W)


def test_non_square_shape() -> None:
    s = synthetic.generate(1, 48, 100, 4, seed=0)[0]
    assert s.image.shape == (48, 100) and s.mask.shape == (48, 100)


def test_ids_consecutive_and_each_cell_connected(samples: list) -> None:
    for s in samples:
        ids = np.unique(s.mask)
        n = int(s.mask.max())
        assert np.array_equal(ids[ids > 0], np.arange(1, n + 1))
        assert 0 in ids  # some background between groups of cells
        for i, sl in enumerate(ndimage.find_objects(s.mask.astype(np.int32)), start=1):
            assert ndimage.label(s.mask[sl] == i)[1] == 1


def test_cell_count_close_to_requested(samples: list) -> None:
    for s in samples:
        assert 0.7 * N_CELLS <= int(s.mask.max()) <= N_CELLS


def _touching_pairs(mask: np.ndarray) -> int:
    pairs = set()
    for a, b in ((mask[:, :-1], mask[:, 1:]), (mask[:-1, :], mask[1:, :])):
        hit = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[hit].tolist(), b[hit].tolist(), strict=True)}
    return len(pairs)


def test_cells_touch_each_other(samples: list) -> None:
    assert all(_touching_pairs(s.mask) >= 2 for s in samples)


def test_some_cells_cut_by_the_border(samples: list) -> None:
    on_border = [
        np.setdiff1d(np.concatenate([s.mask[0], s.mask[-1], s.mask[:, 0], s.mask[:, -1]]), [0]).size
        for s in samples
    ]
    assert sum(on_border) >= len(samples)
    assert all(c < int(s.mask.max()) for c, s in zip(on_border, samples, strict=True))


def test_intensity_range_mid_gray_without_saturation(samples: list) -> None:
    for s in samples:
        img = s.image.astype(np.float64)
        assert img.std() > 5.0
        assert 100.0 <= img[s.mask == 0].mean() <= 160.0
        assert np.mean((s.image == 0) | (s.image == 255)) < 0.01


def test_cells_are_more_textured_than_background(samples: list) -> None:
    for s in samples:
        img = ndimage.gaussian_filter(s.image.astype(np.float64), 1.0)
        grad = np.hypot(*np.gradient(img))
        cell = ndimage.binary_erosion(s.mask > 0, iterations=3)
        bg = ndimage.binary_erosion(s.mask == 0, iterations=3)
        assert cell.sum() > 100 and bg.sum() > 100
        assert grad[cell].mean() > 1.4 * grad[bg].mean()


def test_contacts_are_visible_in_the_image(samples: list) -> None:
    # the groove at cell-cell contacts gives relief: the image changes more across
    # shared borders than inside cells (about 1.5x from the domes alone, 2x with it)
    ratios = []
    for s in samples:
        img = ndimage.gaussian_filter(s.image.astype(np.float64), 1.0)
        grad = np.hypot(*np.gradient(img))
        m = s.mask
        contact = np.zeros(m.shape, bool)
        for axis in (0, 1):
            shifted = np.roll(m, 1, axis)
            contact |= (m != shifted) & (m > 0) & (shifted > 0)
        contact[0, :] = contact[:, 0] = False
        contact = ndimage.binary_dilation(contact) & (m > 0)
        interior = ndimage.binary_erosion(m > 0, iterations=4)
        ratios.append(grad[contact].mean() / grad[interior].mean())
    assert min(ratios) > 1.3 and np.mean(ratios) > 1.75


def test_different_seeds_differ() -> None:
    a = synthetic.generate(1, 64, 64, 6, seed=0)[0]
    b = synthetic.generate(1, 64, 64, 6, seed=1)[0]
    assert not np.array_equal(a.image, b.image)
    assert not np.array_equal(a.mask, b.mask)


def test_images_within_a_set_differ(samples: list) -> None:
    assert not np.array_equal(samples[0].image, samples[1].image)


def test_zero_images_and_zero_cells() -> None:
    assert synthetic.generate(0, 64, 64, 6, seed=0) == []
    s = synthetic.generate(1, 32, 32, 0, seed=0)[0]
    assert s.mask.dtype == np.uint16 and not s.mask.any()
    assert s.image.dtype == np.uint8 and s.image.std() > 0


@pytest.mark.parametrize(
    "args",
    [(-1, 64, 64, 6, 0), (1, 4, 64, 6, 0), (1, 64, 4, 6, 0), (1, 64, 64, -1, 0),
     (1, 64, 64, 6, -3)],
)
def test_bad_arguments_raise_input_error(args: tuple) -> None:
    with pytest.raises(InputError):
        synthetic.generate(*args)
