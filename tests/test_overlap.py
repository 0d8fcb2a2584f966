import numpy as np
import pytest

from unetseg.infer.overlap import predict_image, predict_maps, predict_tiles
from unetseg.tiling import input_size_for, output_size, tile_grid, tile_step
from unetseg.train.models import build_model


def _pair(arch, depth, tile, big, padding="valid"):
    small, large = (build_model(arch, depth=depth, base_filters=4, padding=padding, dropout=0.0,
                                input_size=size) for size in (tile, big))
    rng = np.random.default_rng(0)
    small.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in small.get_weights()])
    large.set_weights(small.get_weights())
    return small, large


@pytest.mark.parametrize("arch", ["unet", "attention_unet"])
def test_tiled_prediction_equals_untiled_for_valid_padding(arch):
    depth, tile = 2, 60
    image = np.random.default_rng(1).random((70, 53)).astype(np.float32)
    out = output_size(tile, depth, "valid")
    big = input_size_for(max(image.shape), depth, "valid")
    small, large = _pair(arch, depth, tile, big)
    tiled_grid = tile_grid(image.shape, tile, out, tile_step(out, depth, "valid"))
    assert len(tiled_grid.positions) > 4
    tiled = predict_image(small, image, tiled_grid, batch_size=3)
    whole_grid = tile_grid(image.shape, big, output_size(big, depth, "valid"),
                           tile_step(out, depth, "valid"))
    assert len(whole_grid.positions) == 1
    untiled = predict_image(large, image, whole_grid)
    assert tiled.shape == image.shape
    np.testing.assert_allclose(tiled, untiled, atol=1e-5)


def test_same_padding_blends_overlapping_tiles():
    depth, tile = 2, 32
    image = np.random.default_rng(2).random((50, 41)).astype(np.float32)
    small, _ = _pair("unet", depth, tile, tile, padding="same")
    grid = tile_grid(image.shape, tile, tile, tile_step(tile, depth, "same"))
    prob = predict_image(small, image, grid, blend=True)
    assert prob.shape == image.shape and np.isfinite(prob).all()
    assert ((prob >= 0) & (prob <= 1)).all()


def test_tta_is_invariant_to_flipping_the_input():
    depth, tile = 2, 32
    small, _ = _pair("unet", depth, tile, tile, padding="same")
    tiles = np.random.default_rng(3).random((2, tile, tile)).astype(np.float32)
    a = predict_tiles(small, tiles, tta=True)
    b = predict_tiles(small, tiles[:, ::-1].copy(), tta=True)[:, ::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5)


def test_distance_head_maps_are_probabilities_and_flip_invariant_with_tta():
    depth, tile = 2, 60
    model = build_model("unet", depth=depth, base_filters=4, padding="valid", dropout=0.0,
                        input_size=tile, n_classes=3)
    rng = np.random.default_rng(4)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    image = rng.random((50, 45)).astype(np.float32)
    out = output_size(tile, depth, "valid")
    grid = tile_grid(image.shape, tile, out, tile_step(out, depth, "valid"))
    maps = predict_maps(model, image, grid, tta=True)
    assert maps.shape == (50, 45, 2) and maps.dtype == np.float32
    assert (maps >= 0).all() and (maps <= 1).all()
    np.testing.assert_allclose(maps[..., 0], predict_image(model, image, grid, tta=True))
    tiles = rng.random((2, tile, tile)).astype(np.float32)
    probs = predict_tiles(model, tiles, tta=True)
    assert probs.shape == (2, out, out, 3)
    np.testing.assert_allclose(probs[..., :2].sum(-1), 1.0, atol=1e-5)
    flipped = predict_tiles(model, tiles[:, ::-1].copy(), tta=True)[:, ::-1]
    np.testing.assert_allclose(flipped, probs, atol=1e-5)
