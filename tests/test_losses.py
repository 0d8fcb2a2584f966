import keras
import numpy as np
import pytest

from unetseg.train.losses import (
    WeightedCrossEntropy,
    distance_cross_entropy,
    pixel_accuracy,
    weighted_cross_entropy,
)


def _target(classes, weights):
    return np.stack([np.asarray(classes, np.float32), np.asarray(weights, np.float32)], axis=-1)


def _loss(y_true, y_pred) -> float:
    return float(keras.ops.convert_to_numpy(WeightedCrossEntropy()(y_true, y_pred)))


def _reference(y_true, y_pred) -> float:
    logits = y_pred.astype(np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    classes = y_true[..., 0].astype(int)
    picked = np.take_along_axis(log_p, classes[..., None], axis=-1)[..., 0]
    return float(np.mean(-y_true[..., 1] * picked))


def test_hand_computed_value():
    # one image, 1x2 pixels: logits (0, ln 3) -> p1 = 3/4; class 1, weight 2 and class 0, weight 1
    y_pred = np.array([[[[0.0, np.log(3.0)], [0.0, np.log(3.0)]]]], np.float32)
    y_true = _target([[[1, 0]]], [[[2.0, 1.0]]])
    expected = (2.0 * -np.log(0.75) + 1.0 * -np.log(0.25)) / 2
    assert _loss(y_true, y_pred) == pytest.approx(expected, rel=1e-6)


def test_zero_weight_pixels_contribute_nothing():
    rng = np.random.default_rng(0)
    y_pred = rng.normal(0, 3, (2, 4, 4, 2)).astype(np.float32)
    classes = rng.integers(0, 2, (2, 4, 4))
    weights = np.ones((2, 4, 4), np.float32)
    weights[:, :2] = 0
    base = _loss(_target(classes, weights), y_pred)
    changed = y_pred.copy()
    changed[:, :2] = rng.normal(0, 30, changed[:, :2].shape)
    flipped = classes.copy()
    flipped[:, :2] = 1 - flipped[:, :2]
    assert _loss(_target(flipped, weights), changed) == pytest.approx(base, rel=1e-6)
    assert _loss(_target(classes, np.zeros_like(weights)), y_pred) == 0.0


def test_uniform_weights_give_ordinary_cross_entropy():
    rng = np.random.default_rng(1)
    y_pred = rng.normal(0, 2, (3, 5, 5, 2)).astype(np.float32)
    classes = rng.integers(0, 2, (3, 5, 5))
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = float(keras.ops.convert_to_numpy(ce(classes, y_pred)))
    assert _loss(_target(classes, np.ones((3, 5, 5))), y_pred) == pytest.approx(expected, rel=1e-5)


def test_perfect_logits_give_almost_zero_loss():
    classes = np.array([[[0, 1], [1, 0]]])
    y_pred = np.where(np.eye(2, dtype=bool)[classes], 50.0, -50.0).astype(np.float32)
    assert _loss(_target(classes, np.full((1, 2, 2), 10.0)), y_pred) < 1e-6


def test_loss_scales_linearly_with_the_weights():
    rng = np.random.default_rng(2)
    y_pred = rng.normal(0, 2, (2, 6, 6, 2)).astype(np.float32)
    classes = rng.integers(0, 2, (2, 6, 6))
    weights = rng.uniform(0, 5, (2, 6, 6))
    one = _loss(_target(classes, weights), y_pred)
    assert _loss(_target(classes, 3.0 * weights), y_pred) == pytest.approx(3.0 * one, rel=1e-5)


def test_backend_matches_numpy_reference_and_is_stable():
    rng = np.random.default_rng(3)
    y_pred = rng.normal(0, 4, (2, 7, 7, 3)).astype(np.float32)
    y_pred[0, 0, 0] = [1000.0, -1000.0, 0.0]
    y_true = _target(rng.integers(0, 3, (2, 7, 7)), rng.uniform(0, 10, (2, 7, 7)))
    y_true[0, 0, 0, 0] = 1
    per_pixel = keras.ops.convert_to_numpy(weighted_cross_entropy(y_true, y_pred))
    assert per_pixel.shape == (2, 7, 7) and per_pixel.dtype == np.float32
    assert np.isfinite(per_pixel).all()
    assert per_pixel.mean() == pytest.approx(_reference(y_true, y_pred), rel=1e-5)
    two = y_pred[..., :2]
    y_true[..., 0] = np.minimum(y_true[..., 0], 1)
    assert _loss(y_true, two) == pytest.approx(_reference(y_true, two), rel=1e-5)


def test_half_precision_logits_give_a_float32_loss():
    rng = np.random.default_rng(4)
    y_pred = rng.normal(0, 2, (1, 4, 4, 2)).astype(np.float16)
    y_true = _target(rng.integers(0, 2, (1, 4, 4)), np.ones((1, 4, 4)))
    per_pixel = weighted_cross_entropy(y_true, keras.ops.convert_to_tensor(y_pred))
    assert keras.ops.convert_to_numpy(per_pixel).dtype == np.float32
    assert _loss(y_true, y_pred) == pytest.approx(_reference(y_true, y_pred), rel=1e-3)


def test_loss_serialises_round_trip():
    loss = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(
        WeightedCrossEntropy()))
    assert isinstance(loss, WeightedCrossEntropy)
    metric = keras.saving.get_registered_object("unetseg>pixel_accuracy")
    assert metric is pixel_accuracy and pixel_accuracy.__name__ == "pixel_accuracy"


def _accuracy(y_true, y_pred) -> float:
    return float(keras.ops.convert_to_numpy(pixel_accuracy(y_true, y_pred)))


def test_pixel_accuracy_counts_only_weighted_pixels():
    # predicted classes: 1, 0, 1, 0 ; true: 1, 1, 0, 0 ; weights 1, 1, 0, 2
    y_pred = np.array([[[[0.0, 1.0], [2.0, 0.0], [0.0, 3.0], [5.0, 1.0]]]], np.float32)
    y_true = _target([[[1, 1, 0, 0]]], [[[1.0, 1.0, 0.0, 2.0]]])
    assert _accuracy(y_true, y_pred) == pytest.approx(2 / 3)
    assert _accuracy(_target([[[1, 0, 1, 0]]], np.ones((1, 1, 4))), y_pred) == 1.0
    assert _accuracy(_target([[[0, 1, 0, 1]]], np.ones((1, 1, 4))), y_pred) == 0.0
    assert _accuracy(y_true, y_pred) == _accuracy(y_true, y_pred * 7.0)


def test_pixel_accuracy_is_zero_without_weighted_pixels():
    y_pred = np.zeros((1, 2, 2, 2), np.float32)
    assert _accuracy(_target(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))), y_pred) == 0.0


def _distance_target(classes, weights, distance, mask):
    return np.stack([np.asarray(a, np.float32) for a in (classes, weights, distance, mask)], -1)


def test_distance_head_adds_masked_binary_cross_entropy():
    rng = np.random.default_rng(5)
    y_pred = rng.normal(0, 3, (2, 5, 5, 3)).astype(np.float32)
    classes, weights = rng.integers(0, 2, (2, 5, 5)), rng.uniform(0, 4, (2, 5, 5))
    distance, mask = rng.uniform(0, 1, (2, 5, 5)), rng.integers(0, 2, (2, 5, 5))
    y_true = _distance_target(classes, weights, distance, mask)
    p = 1 / (1 + np.exp(-y_pred[..., 2].astype(np.float64)))
    bce = mask * -(distance * np.log(p) + (1 - distance) * np.log(1 - p))
    expected = _reference(y_true[..., :2], y_pred[..., :2]) + 0.5 * bce.mean()
    combined = float(keras.ops.convert_to_numpy(WeightedCrossEntropy(0.5)(y_true, y_pred)))
    assert combined == pytest.approx(expected, rel=1e-5)
    assert _loss(y_true, y_pred) == pytest.approx(_reference(y_true[..., :2], y_pred[..., :2]),
                                                  rel=1e-5), "distance_weight 0 ignores the head"


def test_distance_loss_ignores_unmasked_pixels_and_is_stable():
    rng = np.random.default_rng(6)
    y_pred = rng.normal(0, 3, (1, 4, 4, 3)).astype(np.float32)
    y_pred[0, 0, 0, 2], y_pred[0, 0, 1, 2] = 500.0, -500.0
    mask = np.ones((1, 4, 4))
    mask[0, 2:] = 0
    y_true = _distance_target(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), np.full((1, 4, 4), 0.3),
                              mask)
    base = keras.ops.convert_to_numpy(distance_cross_entropy(y_true, y_pred))
    assert np.isfinite(base).all() and (base[0, 2:] == 0).all() and (base[0, :2] > 0).all()
    changed = y_pred.copy()
    changed[0, 2:, :, 2] = 40.0
    again = keras.ops.convert_to_numpy(distance_cross_entropy(y_true, changed))
    np.testing.assert_array_equal(again, base)


def test_distance_weight_survives_serialisation():
    loss = WeightedCrossEntropy(0.25)
    assert WeightedCrossEntropy.from_config(loss.get_config()).distance_weight == 0.25


def test_pixel_accuracy_ignores_the_distance_channel():
    classes = np.array([[[0, 1]]])
    y_pred = np.array([[[[2.0, 0.0, 9.0], [0.0, 2.0, 9.0]]]], np.float32)
    accuracy = float(keras.ops.convert_to_numpy(
        pixel_accuracy(_target(classes, np.ones((1, 1, 2))), y_pred)))
    assert accuracy == 1.0
