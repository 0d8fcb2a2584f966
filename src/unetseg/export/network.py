"""The network a bioimage.io package ships: probabilities out, and its two weight formats.

unetseg's networks return logits (:mod:`unetseg.train.models`) and unetseg applies the softmax
itself (:func:`unetseg.infer.overlap.predict_tiles`). A consumer without unetseg must get the
probabilities straight from the graph, so the exported network appends them: the softmax of the
two class logits, and the sigmoid of the distance head when there is one. A valid-padding
network also drops ``shift`` pixels at the top and left of its input, and pads its output back to
the size of its input with zeros, so that output pixel ``(y, x)`` lies over input pixel
``(y, x)`` and a consumer crops the declared halo (:class:`unetseg.export.rdf.TileGeometry` says
why).

Two weight formats come out of it: ``keras_v3`` (a ``.keras`` file without compile state: the
weighted training loss is unetseg code that does not load elsewhere; only stock Keras layers and
ops, so ``keras.saving.load_model(path, compile=False)`` loads it with ``safe_mode=True`` in a
process that never imported unetseg) and ONNX (Keras' own ``model.export(format="onnx")``, which
converts through TensorFlow with tf2onnx). :func:`check_onnx` proves the ONNX file against Keras.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import layers

from unetseg.errors import InputError
from unetseg.train.card import ModelCard
from unetseg.train.models import any_size

ONNX_TOLERANCE = 1e-4
"""Largest ``|ONNX - Keras|`` probability accepted on the test tile."""


def probability_network(model: keras.Model, card: ModelCard, margin: int,
                        shift: int = 0) -> keras.Model:
    """``model`` with its logits turned into probabilities, for any valid input size.

    Parameters
    ----------
    model : a trained unetseg network, ``(B, Y, X, 1)`` → ``(B, Y - 2 margin, X - 2 margin, C)``
        logits, built for one tile size or any (it is re-traced for any valid size).
    card : its model card (the number and meaning of the channels).
    margin : pixels a side that valid convolutions consume (0 for ``same`` padding).
    shift : pixels dropped at the top and left of the input before ``model`` sees it.

    Returns
    -------
    keras.Model
        Input ``raw`` ``(B, Y, X, 1)`` float32 normalised image (``Y - shift`` and
        ``X - shift`` valid sizes of ``model``); output ``(B, Y, X, C)`` float32: channel 0 the
        background and channel 1 the cell probability (a softmax: they sum to 1), channel 2
        (with a distance head) the predicted distance to background as a fraction of
        ``card.distance_px`` (a sigmoid). Zero in a border of ``margin + shift`` pixels at the
        top and left and ``margin`` at the bottom and right.
    """
    raw = keras.Input((None, None, 1), name="raw", dtype="float32")
    x = layers.Cropping2D(((shift, 0), (shift, 0)), name="lattice")(raw) if shift else raw
    logits = any_size(model)(x)
    out = layers.Softmax(axis=-1, name="class_probabilities")(logits[..., :2])
    if card.has_distance:
        distance = layers.Activation("sigmoid", name="distance_fraction")(logits[..., 2:3])
        out = layers.Concatenate(axis=-1, name="probabilities")([out, distance])
    if margin or shift:
        out = layers.ZeroPadding2D(((margin + shift, margin), (margin + shift, margin)),
                                   name="halo")(out)
    return keras.Model(raw, out, name=f"{model.name}_probabilities")


def save_keras_v3(model: keras.Model, path: Path) -> None:
    """Save ``model`` as a ``.keras`` (Keras v3) file; it has no compile state to save."""
    if model.compiled:
        raise ValueError("export a model that was never compiled (no training loss to carry)")
    model.save(path)


def predict(model: keras.Model, batch: np.ndarray) -> np.ndarray:
    """``model``'s output for a ``(B, Y, X, 1)`` float32 batch, as float32 numpy."""
    return np.asarray(model.predict_on_batch(batch), dtype=np.float32)


def export_onnx(model: keras.Model, path: Path) -> None:
    """Write ``model`` as ONNX with Keras' exporter (batch, y and x stay dynamic).

    Raises
    ------
    InputError
        ``"ONNX export failed: <reason>"`` when the converter fails (it converts through
        TensorFlow: run with ``KERAS_BACKEND=tensorflow``, the CPU environment's default).
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(str(path), format="onnx", verbose=False)
    except Exception as err:  # noqa: BLE001 - tf2onnx raises many types
        hint = "" if keras.backend.backend() == "tensorflow" else \
            f" (Keras runs on {keras.backend.backend()}; try KERAS_BACKEND=tensorflow)"
        raise InputError(f"ONNX export failed: {_reason(err)}{hint}") from None


def check_onnx(path: Path, expected: np.ndarray, batch: np.ndarray) -> tuple[float, int]:
    """Check an ONNX file and run it: it must give ``expected`` for ``batch``.

    Parameters
    ----------
    path : the ONNX file.
    expected : ``(B, Y, X, C)`` float32 Keras output for ``batch``.
    batch : ``(B, Y, X, 1)`` float32 input.

    Returns
    -------
    difference : the largest absolute difference between ONNX Runtime's output and ``expected``.
    opset : the file's ONNX opset version (default domain).

    Raises
    ------
    InputError
        ``"<path>: ..."`` when ``onnx.checker`` refuses the file, ONNX Runtime cannot run it,
        or its output differs from ``expected`` by more than :data:`ONNX_TOLERANCE`.
    """
    import onnx
    import onnxruntime

    try:
        onnx.checker.check_model(str(path), full_check=True)
        opset = {o.domain: o.version for o in onnx.load(str(path)).opset_import}[""]
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (name,) = [i.name for i in session.get_inputs()]
        got = np.asarray(session.run(None, {name: batch})[0], dtype=np.float32)
    except Exception as err:  # noqa: BLE001 - onnx and onnxruntime raise many types
        raise InputError(f"{path.name}: not a valid ONNX model: {_reason(err)}") from None
    if got.shape != expected.shape:
        raise InputError(f"{path.name}: ONNX output has shape {got.shape}, Keras "
                         f"{expected.shape}")
    difference = float(np.abs(got - expected).max())
    if not difference <= ONNX_TOLERANCE:
        raise InputError(f"{path.name}: ONNX probabilities differ from Keras by "
                         f"{difference:.2g} (> {ONNX_TOLERANCE:g}) on the test tile")
    return difference, int(opset)


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:200] or type(err).__name__)
