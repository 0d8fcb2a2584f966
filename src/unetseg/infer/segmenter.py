"""Segment whole images with a trained model folder: the one API behind evaluate and predict.

The chain (paper Sec. 2, Fig. 2): resample by the card's ``prepare.resample_factor`` → percentile
normalisation → overlap tiles with mirrored borders → network → stitch → back to the
image grid → label offset → threshold → instances. Tiles are predicted a batch at a
time and stitched as they come, so memory grows with the image, not with the tiles.

>>> seg = Segmenter.load("models")                        # doctest: +SKIP
>>> labels = seg.segment(image)                           # doctest: +SKIP
>>> labels, prob = seg.segment(image, probability=True)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

import keras
import numpy as np

from unetseg.config import PostprocessParams
from unetseg.errors import InputError
from unetseg.images import normalize
from unetseg.infer.instances import label_maps
from unetseg.infer.model_folder import read_model_folder, with_overrides
from unetseg.infer.overlap import predict_maps
from unetseg.prepare.resampling import resample_image, resize_probability, scaled_shape, shift_map
from unetseg.tiling import TileGrid, tile_grid, tiles_over
from unetseg.train.card import WEIGHTS_FILE, ModelCard


def load_weights(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model for inference (``safe_mode=True``: no code runs from the file).

    Raises
    ------
    InputError
        ``"<path>: ..."`` when the file is missing or cannot be loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many types on a damaged file
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise InputError(f"{path}: cannot load model: {reason}") from None


class Segmenter:
    """A trained network and its card, ready to turn ``(Y, X)`` images into instance labels.

    Parameters
    ----------
    model : the network (``(B, in, in, 1)`` → ``(B, out, out, C)`` logits).
    card : its model card.
    postprocess : how probabilities become cells (the model folder's, or evaluate's params).
    batch_size : tiles per network call.

    Raises
    ------
    InputError
        When the network does not match the card, or when ``instances="distance"`` is asked
        of a network without a distance head.
    """

    def __init__(self, model: keras.Model, card: ModelCard, postprocess: PostprocessParams,
                 batch_size: int = 4) -> None:
        if model.output_shape[-1] != len(card.channels):
            raise InputError(f"the network has {model.output_shape[-1]} output channels but "
                             f"its card describes {len(card.channels)}")
        if postprocess.instances == "distance" and not card.has_distance:
            raise InputError("instances 'distance' needs a model with a distance head "
                             "(trained with train.distance_weight > 0); this one has none")
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {batch_size}")
        self.model, self.card, self.postprocess = model, card, postprocess
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_dir: str | Path, batch_size: int = 4, **overrides: Any) -> Segmenter:
        """Load ``model_dir``'s ``model.keras``, ``card.json`` and ``postprocess.json`` (once).

        ``overrides`` replace post-processing fields (``threshold``, ``tta``, ``min_size``,
        ``instances``, ...); they are validated like params.

        Raises
        ------
        InputError
            A missing folder, card, weights or post-processing, a file that cannot be read, or
            bad overrides.
        """
        card, postprocess = read_model_folder(model_dir)
        return cls(load_weights(Path(model_dir) / WEIGHTS_FILE), card,
                   with_overrides(postprocess, **overrides), batch_size)

    def grid(self, shape: tuple[int, int]) -> TileGrid:
        """The tiles of an image of ``shape`` ``(Y, X)`` on the network's (resampled) grid."""
        c = self.card
        return tile_grid(scaled_shape(shape, c.prepare.resample_factor), c.model.tile_size,
                         c.out_size, c.step)

    def maps(self, image: np.ndarray, *, levels: tuple[float, float] | None = None,
             within: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Per-pixel network outputs of one whole image, on the image's own grid.

        Parameters
        ----------
        image : ``(Y, X)`` grayscale image of any real dtype (8/16-bit or float).
        levels : the values that normalisation maps to 0 and 1 (default: the card's
            percentiles of ``image``); a block of a huge image gets the whole image's.
        within : ``(y0, y1, x0, x1)``, end-exclusive: predict only the tiles that this box
            needs (:func:`~unetseg.tiling.tiles_over`); outside it the maps are not valid.

        Returns
        -------
        ``(Y, X, K)`` float32: channel 0 the cell probability; for a model with a distance
        head (``K = 2``) channel 1 the predicted distance to background in image pixels.
        Both are moved by the post-processing's label offset.
        """
        image = _check_image(image)
        c, p = self.card, self.postprocess
        scale = c.prepare.resample_factor
        work = normalize(resample_image(image, scale), *c.normalize_percentiles, levels=levels)
        grid = self.grid(image.shape)
        if within is not None:
            grid = tiles_over(grid, _network_box(within, image.shape, work.shape,
                                                 p.label_offset))
        maps = predict_maps(self.model, work, grid, tta=p.tta, batch_size=self.batch_size,
                            blend=c.model.padding == "same")
        del work
        out = np.empty((*image.shape, maps.shape[-1]), dtype=np.float32)
        for k in range(maps.shape[-1]):
            out[..., k] = shift_map(resize_probability(maps[..., k], image.shape), p.label_offset)
        if maps.shape[-1] > 1:
            out[..., 1] *= c.distance_px / scale
        return out

    @overload
    def segment(self, image: np.ndarray, *, probability: Literal[False] = ...) -> np.ndarray: ...

    @overload
    def segment(self, image: np.ndarray, *,
                probability: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...

    def segment(self, image: np.ndarray, *,
                probability: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Instance labels of one ``(Y, X)`` image (and its cell probability when asked).

        Returns
        -------
        labels : ``(Y, X)`` uint16 (uint32 beyond 65,535 objects), 0 = background, objects
            1..n.
        prob : ``(Y, X)`` float32 cell probability in [0, 1], with ``probability=True``.
        """
        maps = self.maps(image)
        labels = self.label(maps)
        return (labels, maps[..., 0]) if probability else labels

    def label(self, maps: np.ndarray) -> np.ndarray:
        """Instance labels ``(Y, X)`` from :meth:`maps`' output, by the post-processing: uint16,
        or uint32 beyond 65,535 objects."""
        return label_maps(maps, self.postprocess)


def _network_box(box: tuple[int, int, int, int], shape: tuple[int, int],
                 work_shape: tuple[int, ...], offset: tuple[float, float]) -> tuple[int, ...]:
    """``box`` on the image grid → the box on the network's grid whose predictions it reads.

    It grows by the label offset's reach (``shift_map``) and, when resampled, by the two
    network pixels that the linear interpolation back to the image grid reads.
    """
    out = []
    for axis, (a, b) in enumerate((box[:2], box[2:])):
        reach = int(np.ceil(abs(offset[axis]))) + (1 if offset[axis] else 0)
        a, b = a - reach, b + reach
        ratio = work_shape[axis] / shape[axis]
        if ratio != 1:
            a, b = int(np.floor(a * ratio)) - 2, int(np.ceil(b * ratio)) + 2
        out += [max(a, 0), min(b, work_shape[axis])]
    return tuple(out)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or 0 in image.shape:
        raise InputError(f"expected a non-empty 2-D (Y, X) image, got shape {image.shape}")
    if image.dtype.kind not in "biuf":
        raise InputError(f"unsupported pixel type {image.dtype}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise InputError("image contains NaN or infinite values")
    return image.astype(np.uint8) if image.dtype == np.bool_ else image
