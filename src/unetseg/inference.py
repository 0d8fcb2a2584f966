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
    (B, out, out, C) float32 softmax probabilities.
    """
    transforms = _DIHEDRAL if tta else _DIHEDRAL[:1]
    total = None
    for t in transforms:
        logits = model.predict_on_batch(np.ascontiguousarray(_transform(tiles, *t)[..., None]))
        probs = _untransform(np.asarray(keras.ops.softmax(logits, axis=-1)), *t)
        total = probs if total is None else total + probs
    return (total / len(transforms)).astype(np.float32)


def predict_image(model: keras.Model, image: np.ndarray, grid: TileGrid, *, batch_size: int = 4,
                  blend: bool = False, tta: bool = False) -> np.ndarray:
    """Foreground probability of a whole ``(Y, X)`` normalised float32 image.

    The image is mirror-padded and cut into the tiles of ``grid``, predicted a batch
    at a time (memory is bounded by the batch of tiles plus the output image) and
    stitched. Without ``blend`` tiles are pasted, which is exact for valid-padding
    models on an aligned grid; with ``blend`` overlapping tiles are averaged with a
    Gaussian window so the seams of ``same``-padding models disappear.

    Returns
    -------
    (Y, X) float32 probability of class 1 (cell).
    """
    padded = mirror_pad(image, grid)
    stitcher = Stitcher(grid, channels=1, window=blend_window(grid.out_size) if blend else None)
    size = grid.in_size
    for start in range(0, len(grid.positions), batch_size):
        batch = grid.positions[start: start + batch_size]
        tiles = np.stack([padded[y: y + size, x: x + size] for y, x in batch])
        probs = predict_tiles(model, tiles, tta=tta)
        for i, p in enumerate(probs):
            stitcher.add(start + i, p[..., 1:2])
    return stitcher.result()[..., 0]
