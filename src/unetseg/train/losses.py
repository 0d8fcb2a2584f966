"""The paper's pixel-wise weighted cross-entropy (Eq. 1) and a weighted pixel accuracy.

Targets are packed into one tensor so that Keras' ``fit`` carries the weight map:
``y_true`` is ``(B, out, out, 2)`` float with the class index (0 background, 1 cell)
in channel 0 and the weight map ``w(x)`` (paper Eq. 2) in channel 1. ``y_pred`` is
``(B, out, out, 2)`` logits. A model with a distance head (``train.distance_weight``)
has a third logit channel, and its targets two more channels: the clipped distance to
background in [0, 1] and the mask of pixels where it is known
(:func:`unetseg.prepare.targets.distance_target`). Only ``keras.ops`` is used, so all run on
the TensorFlow, JAX and torch backends.
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


def distance_cross_entropy(y_true: Any, y_pred: Any) -> Any:
    """Masked binary cross-entropy of the distance head: ``m(x) * BCE(sigmoid(z(x)), d(x))``.

    Parameters
    ----------
    y_true : (B, Y, X, 4) float — channel 2 the target distance ``d(x)`` in [0, 1],
        channel 3 the mask ``m(x)``.
    y_pred : (B, Y, X, 3) logits; channel 2 is the distance logit ``z(x)``.

    Returns
    -------
    (B, Y, X) float32 loss map, written in the overflow-free form
    ``max(z, 0) - z d + log(1 + exp(-|z|))``; zero where ``m(x) = 0``.
    """
    z = ops.cast(y_pred[..., 2], "float32")
    y_true = ops.cast(y_true, "float32")
    bce = ops.relu(z) - z * y_true[..., 2] + ops.log1p(ops.exp(-ops.abs(z)))
    return y_true[..., 3] * bce


@keras.saving.register_keras_serializable(package="unetseg")
class WeightedCrossEntropy(keras.losses.Loss):
    """Paper Eq. 1 as a Keras loss: the mean of the weighted per-pixel cross-entropy.

    The sum ``sum_x w(x) * -log p_{l(x)}(x)`` is divided by the number of pixels
    (``B * Y * X``), not by ``sum_x w(x)``: the paper's energy is a plain sum, the pixel
    count only rescales it by a constant per tile size, whereas dividing by the
    weight sum would make each pixel's gradient depend on the other pixels of the
    batch (and blow up on tiles that are nearly all mirrored context). Zero-weight
    pixels therefore lower the mean rather than being left out of it.

    With ``distance_weight`` > 0 the model's third channel is trained as well, adding
    ``distance_weight`` times :func:`distance_cross_entropy` at every pixel.
    """

    def __init__(self, distance_weight: float = 0.0, name: str = "weighted_cross_entropy",
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.distance_weight = float(distance_weight)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        loss = weighted_cross_entropy(y_true[..., :2], y_pred[..., :2])
        if self.distance_weight > 0:
            loss = loss + self.distance_weight * distance_cross_entropy(y_true, y_pred)
        return loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "distance_weight": self.distance_weight}


@keras.saving.register_keras_serializable(package="unetseg", name="pixel_accuracy")
def pixel_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Fraction of pixels with ``w(x) > 0`` whose arg-max class is the true class.

    Parameters
    ----------
    y_true : (B, Y, X, 2) float — class index and weight map, as for the loss.
    y_pred : (B, Y, X, C) logits or probabilities; only the two class channels count
        (a distance head's channel 2 is left out).

    Returns
    -------
    () float32; 0 when no pixel has positive weight.
    """
    y_true = ops.cast(y_true, "float32")
    counted = ops.cast(y_true[..., 1] > 0, "float32")
    predicted = ops.cast(ops.argmax(ops.cast(y_pred[..., :2], "float32"), axis=-1), "int32")
    hits = ops.cast(ops.equal(predicted, ops.cast(y_true[..., 0], "int32")), "float32")
    return ops.sum(hits * counted) / ops.maximum(ops.sum(counted), 1.0)
