"""The paper's pixel-wise weighted cross-entropy (Eq. 1) and a weighted pixel accuracy.

Targets are packed into one tensor so that Keras' ``fit`` carries the weight map:
``y_true`` is ``(B, out, out, 2)`` float with the class index (0 background, 1 cell)
in channel 0 and the weight map ``w(x)`` (paper Eq. 2) in channel 1. ``y_pred`` is
``(B, out, out, C)`` logits. Only ``keras.ops`` is used, so both run on the
TensorFlow, JAX and torch backends.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def weighted_cross_entropy(y_true: Any, y_pred: Any) -> Any:
    """Per-pixel weighted cross-entropy ``w(x) * -log p_{l(x)}(x)`` (paper Eq. 1).

    Parameters
    ----------
    y_true : (B, Y, X, 2) float — channel 0 the class index, channel 1 the weight ``w(x)``.
    y_pred : (B, Y, X, C) logits of any float dtype (cast to float32 here, so mixed
        precision models get a float32 loss).

    Returns
    -------
    (B, Y, X) float32 loss map; pixels with ``w(x) = 0`` (mirrored context, padding)
    contribute exactly zero. ``log_softmax`` keeps it finite for any logits.
    """
    logits = ops.cast(y_pred, "float32")
    y_true = ops.cast(y_true, "float32")
    classes = ops.cast(y_true[..., 0], "int32")
    log_p = ops.log_softmax(logits, axis=-1)
    picked = ops.sum(ops.one_hot(classes, int(logits.shape[-1])) * log_p, axis=-1)
    return -y_true[..., 1] * picked


@keras.saving.register_keras_serializable(package="unetseg")
class WeightedCrossEntropy(keras.losses.Loss):
    """Paper Eq. 1 as a Keras loss: the mean of the weighted per-pixel cross-entropy.

    The sum ``sum_x w(x) * -log p_{l(x)}(x)`` is divided by the number of pixels
    (``B * Y * X``), not by ``sum_x w(x)``: the paper's energy is a plain sum, the pixel
    count only rescales it by a constant per tile size, whereas dividing by the
    weight sum would make each pixel's gradient depend on the other pixels of the
    batch (and blow up on tiles that are nearly all mirrored context). Zero-weight
    pixels therefore lower the mean rather than being left out of it.
    """

    def __init__(self, name: str = "weighted_cross_entropy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return weighted_cross_entropy(y_true, y_pred)


@keras.saving.register_keras_serializable(package="unetseg", name="pixel_accuracy")
def pixel_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Fraction of pixels with ``w(x) > 0`` whose arg-max class is the true class.

    Parameters
    ----------
    y_true : (B, Y, X, 2) float — class index and weight map, as for the loss.
    y_pred : (B, Y, X, C) logits or probabilities.

    Returns
    -------
    () float32; 0 when no pixel has positive weight.
    """
    y_true = ops.cast(y_true, "float32")
    counted = ops.cast(y_true[..., 1] > 0, "float32")
    predicted = ops.cast(ops.argmax(ops.cast(y_pred, "float32"), axis=-1), "int32")
    hits = ops.cast(ops.equal(predicted, ops.cast(y_true[..., 0], "int32")), "float32")
    return ops.sum(hits * counted) / ops.maximum(ops.sum(counted), 1.0)
