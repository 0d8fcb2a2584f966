"""Weight map of paper Eq. 2: agreement with the per-cell-EDT reference, edge cases, gaps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import unetseg.prepare.weights as weights
from unetseg.errors import InputError
from unetseg.prepare.weights import (
    class_weights,
    cutoff,
    reference_weight_map,
    separate_touching,
    weight_map,
)


def _voronoi(shape: tuple[int, int], n_cells: int, seed: int, radius: float | None = None,
             separate: bool = True) -> np.ndarray:
    """Touching cells: Voronoi regions of random seeds, optionally clipped to a disk."""
    rng = np.random.default_rng(seed)
    marks = np.zeros(shape, np.uint16)
    flat = rng.choice(marks.size, n_cells, replace=False)
    marks.flat[flat] = np.arange(1, n_cells + 1)
    dist, (iy, ix) = ndi.distance_transform_edt(marks == 0, return_indices=True)
    labels = marks[iy, ix]
    if radius is not None:
        labels[dist > radius] = 0
    return separate_touching(labels) if separate else labels


def _tiny_cells(size: int, fill: float, seed: int) -> np.ndarray:
    """3x3 cells on a 4-pixel grid, a random ``fill`` fraction of the slots used."""
    rng = np.random.default_rng(seed)
    grid = size // 4
    cells = np.zeros((grid, grid), np.uint16)
    used = rng.random((grid, grid)) < fill
    cells[used] = np.arange(1, used.sum() + 1)
    labels = np.kron(cells, np.ones((4, 4), np.uint16))
    labels[3::4, :] = 0
    labels[:, 3::4] = 0
    return labels


def _max_diff(labels: np.ndarray, **kwargs: float) -> float:
    ours = weight_map(labels, **kwargs)
    return float(np.abs(ours - reference_weight_map(labels, **kwargs)).max())


# ---------------------------------------------------------------- agreement with the reference

@pytest.mark.parametrize("shape,n_cells,seed,radius", [
    ((96, 96), 12, 0, None),       # a full tessellation: only thin gaps of background
    ((120, 90), 15, 1, 11.0),      # clipped cells: open background, non-square image
    ((64, 150), 25, 2, 6.0),       # wide image, small cells close to each other
    ((150, 40), 8, 3, 30.0),       # tall narrow image, cells cut by the image border
])
def test_matches_reference_on_touching_cells(shape: tuple[int, int], n_cells: int, seed: int,
                                             radius: float | None) -> None:
    labels = _voronoi(shape, n_cells, seed, radius)
    assert _max_diff(labels) < 1e-3
    assert _max_diff(labels, balance=False) < 1e-3


def test_matches_reference_without_gaps_between_touching_cells() -> None:
    labels = _voronoi((80, 80), 10, 4, separate=False)
    labels[:5] = 0  # a little background so the border term is not empty
    assert _max_diff(labels) < 1e-3


def test_matches_reference_with_many_tiny_cells() -> None:
    labels = _tiny_cells(128, 0.8, seed=5)
    assert labels.max() > 600  # labels beyond 8 bits
    assert _max_diff(labels) < 1e-3


@pytest.mark.parametrize("w0,sigma", [(10.0, 2.0), (3.0, 12.0), (5.0, 40.0), (10.0, 70.0),
                                      (1e4, 1.5)])
def test_matches_reference_for_other_w0_and_sigma(w0: float, sigma: float) -> None:
    labels = _voronoi((110, 100), 14, 6, radius=14.0)
    assert _max_diff(labels, w0=w0, sigma=sigma) < 1e-3


def test_matches_reference_for_a_very_wide_border() -> None:
    labels = np.zeros((30, 420), np.uint16)
    labels[5:25, 5:15] = 1
    labels[10:20, 300:310] = 2  # ~290 px apart: squared distances beyond 16 bits
    labels[2:6, 150:160] = 3
    assert _max_diff(labels, w0=10.0, sigma=70.0) < 1e-3


def test_matches_reference_along_a_long_cell_with_a_wide_border() -> None:
    labels = np.zeros((3, 540), np.uint16)
    labels[1, 10:521] = 1  # its middle is about 265 px from cells 2 and 3
    labels[1, 0] = 2
    labels[1, 530] = 3
    assert _max_diff(labels, w0=10.0, sigma=30.0) < 1e-3


def test_matches_reference_with_cells_at_both_ends_of_every_row() -> None:
    labels = np.zeros((40, 60), np.uint16)
    labels[:, :3] = 1
    labels[:, -3:] = 2
    labels[::2, 20:23] = 3
    labels[1::2, 37:40] = 4
    assert _max_diff(labels) < 1e-3


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_within_tol_on_random_masks(seed: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 70, 2)
    top = (4, 300, 3)[seed % 3]
    labels = (rng.random((h, w)) < 0.05) * rng.integers(1, top + 1, (h, w))
    for _ in range(int(rng.integers(1, 8))):
        y, x = rng.integers(0, h), rng.integers(0, w)
        labels[y:y + rng.integers(1, 15), x:x + rng.integers(1, 15)] = rng.integers(1, top + 1)
    monkeypatch.setattr(weights, "_BLOCK", int(rng.integers(300, 3000)))
    sigma = float(rng.choice([2.0, 5.0, 8.0]))
    assert _max_diff(labels, sigma=sigma) <= weights.TOL + 1e-5


def test_matches_reference_across_blocks_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    labels = _voronoi((90, 70), 16, 7, radius=9.0)
    expected = reference_weight_map(labels)
    for block in (500, 3000):
        monkeypatch.setattr(weights, "_BLOCK", block)
        assert np.abs(weight_map(labels) - expected).max() < 1e-3


def test_large_ids_and_input_dtypes_give_the_same_map() -> None:
    labels = _voronoi((70, 70), 9, 8, radius=10.0)
    expected = weight_map(labels)
    big = labels.astype(np.int64) * 100_003
    np.testing.assert_allclose(weight_map(big), expected, atol=1e-6)
    for dtype in (np.uint8, np.int32, np.uint32):
        np.testing.assert_allclose(weight_map(labels.astype(dtype)), expected, atol=1e-6)
    shifted = np.where(labels > 0, labels + 300, 0).astype(np.uint16)  # ids beyond 8 bits
    np.testing.assert_allclose(weight_map(shifted), expected, atol=1e-6)
    np.testing.assert_allclose(weight_map(np.asfortranarray(labels)), expected, atol=1e-6)
    assert np.abs(expected - reference_weight_map(big)).max() < 1e-3


def test_very_wide_image() -> None:
    labels = np.zeros((12, 66_000), np.uint16)
    labels[2:5, 100:103] = 1
    labels[7:10, 100:103] = 2
    out = weight_map(labels, balance=False)
    assert out.shape == labels.shape
    near = reference_weight_map(labels[:, 60:150], balance=False)
    assert np.abs(out[:, 60:150] - near).max() < 1e-3
    assert near.max() > 5.0
    out[:, 60:150] = 1.0
    np.testing.assert_array_equal(out, 1.0)


# ---------------------------------------------------------------- the terms of Eq. 2

def test_dtype_and_shape() -> None:
    labels = _voronoi((33, 47), 5, 9, radius=6.0)
    out = weight_map(labels)
    assert out.dtype == np.float32
    assert out.shape == labels.shape
    assert reference_weight_map(labels).dtype == np.float32


@pytest.mark.parametrize("n_cells", [0, 1])
def test_no_border_term_with_fewer_than_two_cells(n_cells: int) -> None:
    labels = np.zeros((40, 50), np.uint16)
    if n_cells:
        labels[10:20, 5:12] = 7
    np.testing.assert_array_equal(weight_map(labels), class_weights(labels))
    np.testing.assert_array_equal(reference_weight_map(labels), class_weights(labels))
    np.testing.assert_array_equal(weight_map(labels, balance=False), np.ones((40, 50), np.float32))


def test_border_term_only_on_background() -> None:
    labels = _voronoi((60, 60), 8, 10, radius=8.0)
    out = weight_map(labels, balance=False)
    np.testing.assert_array_equal(out[labels > 0], 1.0)
    assert out[labels == 0].max() > 5.0


def test_border_term_is_paper_formula_between_two_squares() -> None:
    labels = np.zeros((30, 30), np.uint16)
    labels[10:20, 5:10] = 1
    labels[10:20, 14:19] = 2
    out = weight_map(labels, w0=10.0, sigma=5.0, balance=False)
    # (15, 12): 3 px right of cell 1, 2 px left of cell 2.
    assert out[15, 12] == pytest.approx(1.0 + 10.0 * np.exp(-25.0 / 50.0), abs=1e-5)
    # (15, 2): 3 px left of cell 1, 12 px left of cell 2.
    assert out[15, 2] == pytest.approx(1.0 + 10.0 * np.exp(-225.0 / 50.0), abs=1e-5)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("gap", [20, 21, 22, 23])
def test_border_term_is_exact_down_to_the_cutoff(gap: int, transpose: bool) -> None:
    labels = np.zeros((40, 50), np.uint16)
    labels[5, 10:40] = 1
    labels[6 + gap, 10:40] = 2  # (6, 25) is 1 px from cell 1 and gap px from cell 2
    if transpose:
        labels = np.ascontiguousarray(labels.T)
    out = weight_map(labels, balance=False)
    value = out[25, 6] if transpose else out[6, 25]
    s = 1.0 + gap
    expected = 10.0 * np.exp(-s * s / 50.0) if s < cutoff(10.0, 5.0) else 0.0
    assert value - 1.0 == pytest.approx(expected, abs=1e-6)


def test_gap_between_touching_cells_gets_the_largest_weight() -> None:
    labels = np.zeros((40, 60), np.uint16)
    labels[10:30, 8:30] = 1
    labels[10:30, 30:52] = 2
    separated = separate_touching(labels)
    out = weight_map(separated, balance=False)
    gap = (separated == 0) & (labels > 0)
    assert gap.any()
    assert out[gap].min() > out[~gap].max()
    # a gap pixel is 1 px from one cell and 2 px from the other
    assert out[gap].max() == pytest.approx(1.0 + 10.0 * np.exp(-9.0 / 50.0), abs=1e-5)


def test_class_balance() -> None:
    labels = np.zeros((20, 20), np.uint16)
    labels[2:7, 2:7] = 1  # 25 of 400 pixels are cell
    wc = class_weights(labels)
    assert wc.mean() == pytest.approx(1.0)
    assert wc[3, 3] == pytest.approx(400 / 50) and wc[15, 15] == pytest.approx(400 / 750)
    np.testing.assert_array_equal(class_weights(labels, balance=False), 1.0)
    two = labels.copy()
    two[12:17, 12:17] = 2
    assert weight_map(two)[3, 3] == pytest.approx(400 / 100)
    assert weight_map(two, balance=False)[3, 3] == 1.0


def test_cutoff_bounds_the_dropped_term() -> None:
    t = cutoff(10.0, 5.0)
    assert 10.0 * np.exp(-t * t / 50.0) == pytest.approx(weights.TOL)
    assert cutoff(weights.TOL / 2, 5.0) == 0.0


def test_tiny_border_term_is_all_class_weights() -> None:
    labels = _voronoi((30, 30), 4, 11)
    np.testing.assert_array_equal(weight_map(labels, w0=0.0), class_weights(labels))


# ---------------------------------------------------------------- separate_touching

def test_separate_touching_leaves_no_distinct_labels_adjacent() -> None:
    labels = _voronoi((70, 80), 20, 12, separate=False)
    out = separate_touching(labels)
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert set(np.unique(out)) - {0} <= set(np.unique(labels)) - {0}
    padded = np.pad(out, 1)
    core = padded[1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            other = padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx]
            assert not np.any((core > 0) & (other > 0) & (core != other))


def test_separate_touching_keeps_isolated_cells_and_only_removes_contacts() -> None:
    labels = np.zeros((12, 16), np.int32)
    labels[1:4, 1:4] = 5          # isolated
    labels[6:10, 2:8] = 1
    labels[6:10, 8:14] = 2        # touches 1 along a vertical edge
    labels[11, 0] = 9             # touches only the image border
    out = separate_touching(labels)
    np.testing.assert_array_equal(out[1:4, 1:4], 5)
    assert out[11, 0] == 9
    np.testing.assert_array_equal(out[6:10, 7:9], 0)
    np.testing.assert_array_equal(out[6:10, 2:7], 1)
    np.testing.assert_array_equal(out[6:10, 9:14], 2)


def test_separate_touching_with_64_bit_ids() -> None:
    small = np.zeros((6, 6), np.uint8)
    small[:3, :3], small[:3, 3:], small[3:, 3:] = 3, 2, 1
    labels = np.array([0, 7, 2**63 + 4, 2**63 + 5], np.uint64)[small]
    out = separate_touching(labels)
    np.testing.assert_array_equal(out > 0, separate_touching(small) > 0)
    assert out[0, 0] == 2**63 + 5 and out[5, 5] == 7


def test_separate_touching_diagonal_contact() -> None:
    labels = np.zeros((4, 4), np.uint16)
    labels[0:2, 0:2] = 1
    labels[2:4, 2:4] = 2
    out = separate_touching(labels)
    assert out[1, 1] == 0 and out[2, 2] == 0
    assert out[0, 0] == 1 and out[3, 3] == 2


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("labels,match", [
    (np.zeros((2, 3, 4), np.uint16), "shape"),
    (np.zeros((5, 5), np.float32), "dtype"),
    (np.zeros((5, 5), bool), "dtype"),
    (np.full((5, 5), -1, np.int32), "negative"),
])
def test_bad_labels_raise_input_error(labels: np.ndarray, match: str) -> None:
    for fn in (weight_map, reference_weight_map, separate_touching, class_weights):
        with pytest.raises(InputError, match=match):
            fn(labels)


@pytest.mark.parametrize("kwargs,match", [({"sigma": 0.0}, "sigma"), ({"w0": -1.0}, "w0"),
                                          ({"sigma": float("nan")}, "sigma"),
                                          ({"sigma": 1e4}, "sigma")])
def test_bad_parameters_raise_input_error(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        weight_map(np.eye(4, dtype=np.uint16) + np.eye(4, k=2, dtype=np.uint16) * 2, **kwargs)


def test_too_many_cells_raise_input_error() -> None:
    labels = np.arange(1, 70_001, dtype=np.int32).reshape(200, 350) * 3
    with pytest.raises(InputError, match="65535"):
        weight_map(labels)
