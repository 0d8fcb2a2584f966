"""Overlap-tile inference on whole images (paper Fig. 2), with optional test-time flips."""

from __future__ import annotations

import keras
import numpy as np

from unetseg.tiling import Stitcher, TileGrid, blend_window, mirror_pad

# The dihedral group of the square as (transpose?, flip-y?, flip-x?); index 0 is identity.
_DIHEDRAL = [(t, fy, fx) for t in (False, True) for fy in (False, True) for fx in (False, True)]


def _transform(x: np.ndarray, t: bool, fy: bool, fx: bool) -> np.ndarray:
    if t:
        x = np.swapaxes(x, 1, 2)
    if fy:
        x = x[:, ::-1]
    if fx:
        x = x[:, :, ::-1]
    return x


def _untransform(x: np.ndarray, t: bool, fy: bool, fx: bool) -> np.ndarray:
    if fx:
        x = x[:, :, ::-1]
    if fy:
        x = x[:, ::-1]
    if t:
        x = np.swapaxes(x, 1, 2)
    return x


def predict_tiles(model: keras.Model, tiles: np.ndarray, tta: bool = False) -> np.ndarray:
    """Class probabilities for a batch of input tiles.

    Parameters
    ----------
    tiles : (B, in, in) float32 normalised input tiles.
    tta : average the softmax over the 8 flips/rotations of each tile (the paper's
        test-time augmentation for the EM challenge).

    Returns
    -------
    (B, out, out, C) float32: the softmax of the two class logits, then, for a model
    with a distance head, the sigmoid of its third channel (distance fraction).
    """
    transforms = _DIHEDRAL if tta else _DIHEDRAL[:1]
    total = None
    for t in transforms:
        logits = np.asarray(model.predict_on_batch(
            np.ascontiguousarray(_transform(tiles, *t)[..., None])), dtype=np.float32)
        maps = [np.asarray(keras.ops.softmax(logits[..., :2], axis=-1))]
        if logits.shape[-1] > 2:
            maps.append(np.asarray(keras.ops.sigmoid(logits[..., 2:3])))
        probs = _untransform(np.concatenate(maps, axis=-1), *t)
        total = probs if total is None else total + probs
    return (total / len(transforms)).astype(np.float32)


def predict_maps(model: keras.Model, image: np.ndarray, grid: TileGrid, *, batch_size: int = 4,
                 blend: bool = False, tta: bool = False) -> np.ndarray:
    """Per-pixel output maps of a whole ``(Y, X)`` normalised float32 image.

    The image is mirror-padded and cut into the tiles of ``grid``, predicted a batch
    at a time (memory is bounded by the batch of tiles plus the output image) and
    stitched. Without ``blend`` tiles are pasted, which is exact for valid-padding
    models on an aligned grid; with ``blend`` overlapping tiles are averaged with a
    Gaussian window so the seams of ``same``-padding models disappear.

    Returns
    -------
    (Y, X, K) float32: channel 0 the probability of class 1 (cell); for a model with
    a distance head (``K = 2``) channel 1 its predicted distance to background as a
    fraction of the training clip distance.
    """
    padded = mirror_pad(image, grid)
    channels = 2 if model.output_shape[-1] > 2 else 1
    stitcher = Stitcher(grid, channels=channels,
                        window=blend_window(grid.out_size) if blend else None)
    size = grid.in_size
    for start in range(0, len(grid.positions), batch_size):
        batch = grid.positions[start: start + batch_size]
        tiles = np.stack([padded[y: y + size, x: x + size] for y, x in batch])
        probs = predict_tiles(model, tiles, tta=tta)
        for i, p in enumerate(probs):
            stitcher.add(start + i, p[..., 1:1 + channels])
    return stitcher.result()


def predict_image(model: keras.Model, image: np.ndarray, grid: TileGrid, *, batch_size: int = 4,
                  blend: bool = False, tta: bool = False) -> np.ndarray:
    """Foreground probability of a whole ``(Y, X)`` image: channel 0 of :func:`predict_maps`.

    Returns
    -------
    (Y, X) float32 probability of class 1 (cell).
    """
    return predict_maps(model, image, grid, batch_size=batch_size, blend=blend, tta=tta)[..., 0]
