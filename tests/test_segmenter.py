"""The segmentation API on synthetic images with small random-weight networks."""

import numpy as np
import pytest

from unetseg.config import ModelParams, PostprocessParams, PrepareParams, TrainParams
from unetseg.data.synthetic import generate
from unetseg.errors import InputError
from unetseg.images import histogram_percentiles
from unetseg.infer.blocks import box_slices, inner
from unetseg.infer.blockwise import block_layout
from unetseg.infer.segmenter import Segmenter
from unetseg.prepare.resampling import resample_image
from unetseg.tiling import input_size_for
from unetseg.train.card import network_card
from unetseg.train.models import build_model


def _segmenter(tile=60, *, scale=1.0, distance=0.0, padding="valid", weights=None, **post):
    m = ModelParams(depth=2, base_filters=4, tile_size=tile, padding=padding, dropout=0.0)
    model = build_model(m.arch, depth=2, base_filters=4, padding=padding, dropout=0.0,
                        input_size=tile, n_classes=3 if distance else 2)
    if weights is None:
        rng = np.random.default_rng(0)
        weights = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(weights)
    train = TrainParams(distance_weight=1.0 if distance else 0.0, distance_clip=distance or 20.0)
    card = network_card(m, train, PrepareParams(resample_factor=scale), backend="tensorflow",
                        replicas=1, epochs=1)
    return Segmenter(model, card, PostprocessParams(**post))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(37, 53), (130, 75)])
def test_any_size_and_dtype_gives_labels_of_the_image_shape(dtype, shape):
    rng = np.random.default_rng(1)
    image = (rng.random(shape) * (200 if dtype == np.uint8 else 4000)).astype(dtype)
    seg = _segmenter(threshold=0.3, min_size=0)
    labels, prob = seg.segment(image, probability=True)
    assert labels.shape == prob.shape == shape
    assert labels.dtype == np.uint16 and prob.dtype == np.float32
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    np.testing.assert_array_equal(seg.segment(image), labels)
    ids = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))


def test_labels_follow_the_threshold_of_the_probability_map():
    image = generate(1, 80, 90, 6, 0)[0].image
    strict, loose = _segmenter(threshold=0.9, grow_into_gaps_px=0, min_size=0, fill_holes=False), \
        _segmenter(threshold=0.1, grow_into_gaps_px=0, min_size=0, fill_holes=False)
    labels, prob = strict.segment(image, probability=True)
    np.testing.assert_array_equal(labels > 0, prob > 0.9)
    assert (loose.segment(image) > 0).sum() >= (labels > 0).sum()


def test_tiled_maps_equal_one_untiled_pass():
    image = np.random.default_rng(2).random((90, 70)).astype(np.float32)
    small = _segmenter(60)
    big = _segmenter(input_size_for(100, 2, "valid"), weights=small.model.get_weights())
    assert len(small.grid(image.shape).positions) > 4 and len(big.grid(image.shape).positions) == 1
    np.testing.assert_allclose(small.maps(image), big.maps(image), atol=1e-5)


def test_scaled_model_predicts_at_the_image_resolution():
    image = np.random.default_rng(3).random((101, 64)).astype(np.float32)
    seg = _segmenter(scale=0.5, min_size=0)
    assert seg.grid(image.shape).image_shape == (50, 32)
    assert seg.segment(image).shape == image.shape


def test_distance_head_gives_a_second_map_in_pixels():
    image = np.random.default_rng(4).random((50, 50)).astype(np.float32)
    seg = _segmenter(distance=8.0, instances="distance")
    maps = seg.maps(image)
    assert maps.shape == (50, 50, 2) and maps[..., 1].min() >= 0 and maps[..., 1].max() <= 8.0
    assert seg.segment(image).shape == image.shape


def test_bad_images_and_mismatched_models_are_refused():
    seg = _segmenter()
    for bad, message in ((np.zeros((4, 5, 6)), "2-D"), (np.zeros((0, 5)), "2-D"),
                         (np.full((9, 9), np.nan, np.float32), "NaN"),
                         (np.zeros((9, 9), complex), "pixel type")):
        with pytest.raises(InputError, match=message):
            seg.segment(bad)
    with pytest.raises(InputError, match="distance head"):
        _segmenter(instances="distance")
    with pytest.raises(InputError, match="output channels"):
        Segmenter(_segmenter(distance=4.0).model, seg.card, seg.postprocess)
    with pytest.raises(InputError, match="batch size"):
        Segmenter(seg.model, seg.card, seg.postprocess, batch_size=0)


BLOCK_VARIANTS = {  # segmenter options, largest allowed |block - whole| of the maps
    "valid": ({}, 1e-6),
    "same padding (blended tiles)": ({"padding": "same"}, 1e-6),
    "label offset": ({"label_offset_y": -0.6, "label_offset_x": 0.2}, 1e-6),
    "distance head": ({"distance": 8.0, "instances": "distance"}, 1e-5),
    "resampled x0.5": ({"scale": 0.5}, 1e-6),
}


@pytest.mark.parametrize("variant", sorted(BLOCK_VARIANTS))
def test_blocks_predicted_with_their_context_equal_the_whole_image(variant):
    """What the block-wise command does per block (infer/blockwise._predict_task), here in
    memory, equals the whole image up to float rounding, resampled too (step / scale and the
    image's size x scale are whole numbers here)."""
    options, atol = BLOCK_VARIANTS[variant]
    seg = _segmenter(**options)
    image = generate(1, 360, 380, 30, 0)[0].image
    whole = seg.maps(image)
    work = resample_image(image, seg.card.prepare.resample_factor)  # as blockwise's levels pass
    levels = histogram_percentiles(np.bincount(work.ravel()))
    layout = block_layout(image.shape, seg.card, seg.postprocess, block=64)
    blocks = np.full_like(whole, np.nan)
    for core in layout.cores:
        box = layout.network_box(core)
        assert box != (0, image.shape[0], 0, image.shape[1])  # a real sub-image
        c = inner(core, box)
        blocks[box_slices(core)] = seg.maps(image[box_slices(box)], levels=levels,
                                            within=c)[box_slices(c)]
    assert np.abs(blocks - whole).max() <= atol
