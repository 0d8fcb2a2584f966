import numpy as np
import pytest

from unetseg.tiling import (
    Stitcher,
    blend_window,
    extract_tiles,
    input_size_for,
    mirror_pad,
    nearest_valid_sizes,
    output_size,
    tile_grid,
    tile_step,
)


def test_paper_geometry_572_to_388():
    assert output_size(572, 4, "valid") == 388


@pytest.mark.parametrize("depth,size,out", [(1, 20, 4), (2, 44, 4), (3, 188, 100), (3, 92, 4)])
def test_small_valid_geometries(depth, size, out):
    assert output_size(size, depth, "valid") == out


def test_same_padding_output_equals_input():
    assert output_size(256, 4, "same") == 256
    with pytest.raises(ValueError, match="multiple of 2"):
        output_size(250, 4, "same")


def test_invalid_size_names_nearest_valid_ones():
    with pytest.raises(ValueError, match="556, 572"):
        output_size(570, 4, "valid")
    assert nearest_valid_sizes(571, 4) == (556, 572)
    assert nearest_valid_sizes(10, 4)[0] is None


@pytest.mark.parametrize("depth,padding,minimum",
                         [(4, "valid", 388), (3, "valid", 37), (2, "same", 30)])
def test_input_size_for_is_smallest(depth, padding, minimum):
    size = input_size_for(minimum, depth, padding)
    assert output_size(size, depth, padding) >= minimum
    smaller = [s for s in range(1, size) if _fits(s, depth, padding, minimum)]
    assert smaller == []


def _fits(size, depth, padding, minimum):
    try:
        return output_size(size, depth, padding) >= minimum
    except ValueError:
        return False


def test_tile_step_is_aligned_to_pooling():
    assert tile_step(388, 4, "valid") == 384
    assert tile_step(100, 3, "valid") == 96
    assert tile_step(64, 2, "same") == 32
    assert tile_step(4, 3, "valid") == 4


@pytest.mark.parametrize("shape", [(37, 53), (100, 100), (5, 300), (1, 1), (401, 257)])
@pytest.mark.parametrize("in_size,out_size,step",
                         [(188, 100, 96), (572, 388, 384), (64, 64, 32), (20, 4, 4)])
def test_grid_covers_image_and_windows_fit(shape, in_size, out_size, step):
    grid = tile_grid(shape, in_size, out_size, step)
    covered = np.zeros(shape, bool)
    for y, x in grid.positions:
        covered[y: y + out_size, x: x + out_size] = True
    assert covered.all()
    assert (grid.positions % step == 0).all()
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    padded = mirror_pad(image, grid)
    tiles = extract_tiles(padded, grid, in_size)
    assert tiles.shape == (len(grid.positions), in_size, in_size)
    centers = extract_tiles(padded, grid, out_size, grid.margin)
    y, x = grid.positions[0]
    h, w = min(out_size, shape[0]), min(out_size, shape[1])
    np.testing.assert_array_equal(centers[0][:h, :w], image[y: y + h, x: x + w])


def test_mirror_pad_mirrors_the_border():
    image = np.arange(12, dtype=np.int32).reshape(3, 4)
    grid = tile_grid(image.shape, 8, 4, 4)
    padded = mirror_pad(image, grid)
    m = grid.margin
    np.testing.assert_array_equal(padded[m:m + 3, m:m + 4], image)
    np.testing.assert_array_equal(padded[m - 1, m:m + 4], image[0])
    np.testing.assert_array_equal(padded[m:m + 3, m - 1], image[:, 0])


@pytest.mark.parametrize("window", [False, True])
def test_stitching_reassembles_an_image(window):
    rng = np.random.default_rng(0)
    image = rng.random((70, 45)).astype(np.float32)
    grid = tile_grid(image.shape, 24, 16, 8)
    padded = mirror_pad(image, grid)
    centers = extract_tiles(padded, grid, 16, grid.margin)
    stitcher = Stitcher(grid, 1, blend_window(16) if window else None)
    for i, tile in enumerate(centers):
        stitcher.add(i, tile[..., None])
    np.testing.assert_allclose(stitcher.result()[..., 0], image, rtol=1e-6)
