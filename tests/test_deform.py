"""unetseg.augment.deform: elastic deformation, flips/rot90, gray values of image/mask pairs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import ndimage as ndi

from unetseg.augment.deform import (
    augment_pair,
    elastic_field,
    flip_rot90,
    gray_values,
    sampling_coords,
    warp,
    warp_image,
    warp_labels,
)
from unetseg.config import params_from_dict
from unetseg.errors import InputError

OFF: dict[str, Any] = {"elastic_points": 3, "elastic_sigma": 0.0, "flip": False, "rotate90": False,
                       "rotate_deg": 0.0, "brightness": 0.0, "contrast": 0.0,
                       "gamma": 0.0}
DEFAULT: dict[str, Any] = {**OFF, "elastic_sigma": 10.0, "flip": True, "rotate90": True,
                           "brightness": 0.1, "contrast": 0.2, "gamma": 0.2}
FULL: dict[str, Any] = {**DEFAULT, "rotate_deg": 15.0}


def disks(shape: tuple[int, int] = (64, 64), n: int = 7, seed: int = 0) -> np.ndarray:
    """(Y, X) uint16 instance mask: touching disks with ids 3, 6, 9, ... (not 1..n)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    mask = np.zeros(shape, dtype=np.uint16)
    for i in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        r = rng.uniform(6, 12)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 3 * (i + 1)
    return mask


def textured(mask: np.ndarray, seed: int = 1) -> np.ndarray:
    """(Y, X) float32 image in ~[0, 1] from a mask plus smooth noise."""
    noise = ndi.gaussian_filter(np.random.default_rng(seed).random(mask.shape), 2)
    return (0.6 * (mask > 0) + 0.4 * noise).astype(np.float32)


@pytest.mark.parametrize("config", [DEFAULT, FULL, {**FULL, "elastic_sigma": 40.0}])
def test_labels_keep_their_ids(config: dict[str, Any]) -> None:
    mask = disks()
    for seed in range(5):
        _, out = augment_pair(textured(mask), mask, np.random.default_rng(seed), **config)
        assert out.dtype == np.uint16
        assert set(np.unique(out)) <= set(np.unique(mask))
        assert len(np.unique(out)) >= 2


def test_sigma_zero_and_everything_off_is_identity() -> None:
    mask = disks()
    image = textured(mask)
    out_image, out_mask = augment_pair(image, mask, np.random.default_rng(0), **OFF)
    np.testing.assert_array_equal(out_mask, mask)
    assert out_mask.dtype == mask.dtype and out_image.dtype == np.float32
    np.testing.assert_allclose(out_image, image, atol=1e-6)
    assert out_image is not image and out_mask is not mask


def test_zero_displacement_warp_is_identity() -> None:
    mask = disks((40, 56))
    image = textured(mask)
    coords = sampling_coords(mask.shape, np.zeros((2, 40, 56)))
    out_image, out_mask = warp(image, mask, coords)
    np.testing.assert_array_equal(out_mask, mask)
    np.testing.assert_allclose(out_image, image, atol=1e-5)


def test_mirrored_borders_leave_no_empty_corners() -> None:
    yy, xx = np.indices((64, 64))
    image = (1.0 + 0.3 * np.sin(yy / 5.0) * np.cos(xx / 7.0)).astype(np.float32)
    mask = np.ones((64, 64), dtype=np.uint16)
    config = {**OFF, "elastic_sigma": 25.0, "rotate_deg": 30.0}
    for seed in range(5):
        out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), **config)
        assert np.isfinite(out_image).all()
        assert out_image.min() > 0.5
        assert (out_mask == 1).all()
        for rows in (slice(None, 4), slice(-4, None)):
            for cols in (slice(None, 4), slice(-4, None)):
                assert out_image[rows, cols].min() > 0.5


def test_mirror_matches_tile_padding() -> None:
    """Outside pixels repeat the border like numpy.pad(mode='symmetric') used by tiling."""
    image = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    mask = np.arange(99, dtype=np.uint16).reshape(9, 11)
    coords = sampling_coords(image.shape, np.stack([np.full(image.shape, -3.0),
                                                    np.full(image.shape, 4.0)]))
    out_image, out_mask = warp(image, mask, coords)
    padded_mask = np.pad(mask, ((3, 0), (0, 4)), mode="symmetric")
    np.testing.assert_array_equal(out_mask, padded_mask[:9, 4:])
    padded_image = np.pad(image, ((3, 0), (0, 4)), mode="symmetric")
    np.testing.assert_allclose(out_image, padded_image[:9, 4:], atol=1e-5)


def test_same_seed_is_byte_identical_and_seeds_differ() -> None:
    mask = disks()
    image = textured(mask)
    a = augment_pair(image, mask, np.random.default_rng([7, 1]), **FULL)
    b = augment_pair(image, mask, np.random.default_rng([7, 1]), **FULL)
    c = augment_pair(image, mask, np.random.default_rng([7, 2]), **FULL)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[1], c[1])


def test_elastic_field_statistics() -> None:
    rng = np.random.default_rng(0)
    fields = np.stack([elastic_field((33, 33), 3, 10.0, rng) for _ in range(300)])
    assert fields.shape == (300, 2, 33, 33) and fields.dtype == np.float64
    nodes = fields[:, :, ::16, ::16]
    assert abs(nodes.std() - 10.0) < 0.6
    assert abs(nodes.mean()) < 0.6
    steps = np.abs(np.diff(fields, axis=-1)).max()
    assert steps < 10.0
    assert not np.any(elastic_field((20, 30), 4, 0.0, rng))


def test_elastic_field_interpolates_its_nodes_at_the_corners() -> None:
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    field = elastic_field((50, 70), 3, 5.0, rng_a)
    nodes = rng_b.standard_normal((2, 3, 3)) * 5.0
    np.testing.assert_allclose(field[:, ::-49, ::-69], nodes[:, ::-2, ::-2], atol=1e-9)
    np.testing.assert_allclose(field[:, 0, 0], nodes[:, 0, 0], atol=1e-9)


class _SameNodes:
    """Stands in for a Generator: every grid node gets the same displacement."""

    def standard_normal(self, size: tuple[int, ...]) -> np.ndarray:
        return np.ones(size)


@pytest.mark.parametrize("points", [2, 3, 5])
def test_equal_node_displacements_give_a_pure_translation(points: int) -> None:
    field = elastic_field((37, 52), points, 4.0, _SameNodes())  # type: ignore[arg-type]
    np.testing.assert_allclose(field, 4.0, atol=1e-9)


def test_rotation_by_90_degrees_is_a_quarter_turn() -> None:
    mask = np.arange(36, dtype=np.uint16).reshape(6, 6)
    np.testing.assert_array_equal(warp_labels(mask, sampling_coords(mask.shape, angle_deg=90.0)),
                                  np.rot90(mask, -1))
    np.testing.assert_array_equal(warp_labels(mask, sampling_coords(mask.shape, angle_deg=-90.0)),
                                  np.rot90(mask, 1))


def test_warp_labels_equals_nearest_map_coordinates() -> None:
    mask = disks((48, 40))
    rng = np.random.default_rng(5)
    coords = sampling_coords(mask.shape, elastic_field(mask.shape, 3, 15.0, rng), 20.0)
    expected = ndi.map_coordinates(mask, coords, order=0, mode="reflect")
    np.testing.assert_array_equal(warp_labels(mask, coords), expected)


def test_warp_image_is_cubic_reflect_map_coordinates() -> None:
    image = np.random.default_rng(0).random((30, 20)).astype(np.float32)
    field = elastic_field(image.shape, 3, 8.0, np.random.default_rng(1))
    coords = sampling_coords(image.shape, field)
    expected = ndi.map_coordinates(image.astype(np.float64), coords, order=3, mode="reflect")
    out = warp_image(image, coords)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("sigma", [0.0, 10.0])
def test_flips_and_rot90_move_image_and_mask_together(sigma: float) -> None:
    mask = disks()
    image = (mask > 0).astype(np.float32)
    config = {**OFF, "flip": True, "rotate90": True, "elastic_sigma": sigma}
    seen = set()
    for seed in range(12):
        out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), **config)
        agree = (out_image > 0.5) == (out_mask > 0)
        assert agree.mean() > (0.97 if sigma else 1.0 - 1e-12)
        if sigma == 0:
            seen.add(out_mask.tobytes())
            assert any(np.array_equal(out_mask, np.rot90(np.flip(mask, axes), k))
                       for axes in ((), (0,), (1,), (0, 1)) for k in range(4))
    if sigma == 0:
        assert len(seen) >= 4


def test_flip_rot90_exact() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    mask = np.arange(12, dtype=np.uint16).reshape(3, 4)
    out_image, out_mask = flip_rot90(image, mask, (True, False), 2)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])
    with pytest.raises(InputError, match="rotate90"):
        flip_rot90(image, mask, (False, False), 1)


@pytest.mark.parametrize("shape", [(48, 80), (81, 37)])
def test_non_square_shape_is_kept(shape: tuple[int, int]) -> None:
    mask = disks(shape)
    image = textured(mask)
    ids = set(np.unique(mask))
    for seed in range(8):
        out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), **FULL)
        assert out_image.shape == shape and out_mask.shape == shape
        assert set(np.unique(out_mask)) <= ids


def test_gray_values_leave_the_mask_untouched() -> None:
    mask = disks()
    image = textured(mask)
    config = {**OFF, "brightness": 0.3, "contrast": 0.5, "gamma": 0.5}
    changed = 0
    for seed in range(5):
        out_image, out_mask = augment_pair(image, mask, np.random.default_rng(seed), **config)
        np.testing.assert_array_equal(out_mask, mask)
        changed += not np.allclose(out_image, image, atol=1e-3)
        order = np.argsort(image, axis=None)
        assert np.all(np.diff(out_image.ravel()[order]) >= -1e-6)
    assert changed == 5


def test_gray_values_formulas() -> None:
    image = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(gray_values(image, gamma=2.0), image ** 2, atol=1e-7)
    np.testing.assert_allclose(gray_values(image, contrast=2.0), (image - 0.4375) * 2 + 0.4375,
                               atol=1e-7)
    np.testing.assert_allclose(gray_values(image, brightness=0.1), image + 0.1, atol=1e-7)
    shifted = image * 3 - 1
    np.testing.assert_allclose(gray_values(shifted, gamma=0.5), -1 + 3 * np.sqrt(image), atol=1e-6)
    np.testing.assert_array_equal(gray_values(image), image)


def test_switching_one_part_off_keeps_the_other_draws() -> None:
    mask = disks()
    image = textured(mask)
    geometry = {**OFF, "elastic_sigma": 10.0, "flip": True, "rotate90": True}
    _, with_gray = augment_pair(image, mask, np.random.default_rng(4), **{**geometry, "gamma": 0.3})
    _, without = augment_pair(image, mask, np.random.default_rng(4), **geometry)
    np.testing.assert_array_equal(with_gray, without)


@pytest.mark.parametrize(("change", "key"), [
    ({"elastic_points": 1}, "augment.elastic_points"),
    ({"elastic_sigma": -1.0}, "augment.elastic_sigma"),
    ({"contrast": 1.0}, "augment.contrast"),
    ({"rotate_deg": -2.0}, "augment.rotate_deg"),
    ({"gamma": -0.1}, "augment.gamma"),
])
def test_bad_params_are_refused_by_the_config(change: dict[str, Any], key: str) -> None:
    with pytest.raises(InputError, match=key):
        params_from_dict({"augment": {**DEFAULT, **change}})


def test_bad_arrays_raise_input_error() -> None:
    mask = disks((16, 16))
    image = textured(mask)
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="mask"):
        augment_pair(image, mask[:8], rng, **DEFAULT)
    with pytest.raises(InputError, match="mask"):
        augment_pair(image, mask.astype(np.float32), rng, **DEFAULT)
    with pytest.raises(InputError, match="image"):
        augment_pair(image[None], mask[None], rng, **DEFAULT)
