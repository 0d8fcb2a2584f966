"""A model card as a bioimage.io model description (``rdf.yaml``, spec 0.5): pure functions.

What a consumer (napari, Fiji's deepImageJ, ilastik, QuPath, bioimageio.core) must know to feed
exactly what unetseg feeds and to read what comes out:

- **Input** ``raw``: axes ``batch, y, x, channel`` (Keras' layout), one gray channel, float32.
  Its preprocessing is unetseg's normalisation (:func:`unetseg.images.normalize`) in the spec's
  words: ``scale_range`` per sample between the card's percentiles, linear interpolation,
  no clipping, ``eps`` 1e-6. unetseg divides by ``max(hi - lo, 1e-6)``, the spec by
  ``hi - lo + 1e-6``: the two differ by a factor ``1 + 1e-6 / (hi - lo)``.
- **Tile geometry** (:func:`tile_geometry`): valid convolutions take ``margin`` pixels a side
  of context. The exported network pads its output back to its input's size, so the output
  axes are a size reference to the input (offset 0) with a ``halo`` that consumers crop, as
  bioimageio.core's tiling does: it mirrors the image by the halo (``pad: symmetric``, the
  paper's overlap-tile), cuts blocks of a valid size ``min + n * step``, and crops the halo
  from each block's output; the geometry makes those blocks see the max-pooling grid where
  unetseg's tiles do. (The spec's other way, ``size.offset = -2 * margin`` for an output the
  model already cropped, is what bioimageio.core's tiling does not honour: it shifts the
  blocks by the offset instead of shrinking them.)
- **Output** ``probabilities``: background and cell probability, plus the distance head's
  fraction where the network has one.

The description is a plain dict with file names relative to the package folder;
:mod:`unetseg.export.spec` validates it with bioimageio.spec.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from unetseg.config import PostprocessParams
from unetseg.tiling import nearest_valid_sizes
from unetseg.train.card import ModelCard, TrainingData

SPEC_VERSION = "0.5.12"
LICENSE = "BSD-3-Clause"
INPUT_ID, OUTPUT_ID = "raw", "probabilities"
NORMALIZE_EPS = 1e-6
"""``eps`` of the spec's ``scale_range``: the smallest range :func:`unetseg.images.normalize`
divides by."""

PAPER = {"text": "Ronneberger O, Fischer P, Brox T. U-Net: Convolutional Networks for Biomedical "
                 "Image Segmentation. MICCAI 2015, LNCS 9351, 234-241.",
         "doi": "10.1007/978-3-319-24574-4_28"}
ARCH_PAPERS = {
    "unetpp": {"text": "Zhou Z, Siddiquee MMR, Tajbakhsh N, Liang J. UNet++: A Nested U-Net "
                       "Architecture for Medical Image Segmentation. DLMIA 2018, LNCS 11045, 3-11.",
               "doi": "10.1007/978-3-030-00889-5_1"},
    "attention_unet": {"text": "Oktay O, et al. Attention U-Net: Learning Where to Look for the "
                               "Pancreas. MIDL 2018. arXiv:1804.03999.",
                       "doi": "10.48550/arXiv.1804.03999"},
}
DATA_PAPERS = {
    "ctc": {"text": "Maska M, Ulman V, Delgado-Rodriguez P, et al. The Cell Tracking Challenge: "
                    "10 years of objective benchmarking. Nature Methods 20, 1010-1020 (2023).",
            "doi": "10.1038/s41592-023-02061-w"},
    "em": {"text": "Arganda-Carreras I, Turaga SC, Berger DR, et al. Crowdsourcing the creation "
                   "of image segmentation algorithms for connectomics. Front. Neuroanat. 9, 142 "
                   "(2015).",
           "doi": "10.3389/fnana.2015.00142"},
}
ARCH_NAMES = {"unet": "U-Net", "resunet": "residual U-Net", "unetpp": "UNet++",
              "attention_unet": "Attention U-Net"}
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_+\- ()]+")


@dataclass(frozen=True)
class TileGeometry:
    """How a consumer tiles an image for the exported network (all in pixels).

    A tiling consumer (bioimageio.core) mirrors the image by ``halo`` at its borders, cuts input
    blocks of a declared size whose inner parts (the block less the halo on each side) start at
    multiples of the inner size, and crops the halo from each output block. unetseg's own tiles
    start their input ``margin`` pixels before multiples of ``step``; max-pooling is not
    shift-invariant, so a block sees the same features only at the same phase. The geometry
    makes every inner size a multiple of ``step`` and every block's input start at that phase:

    Attributes
    ----------
    margin : context each side of a tile that valid convolutions consume
        (``(tile_size - out_size) / 2``; 0 for ``same`` padding).
    shift : pixels the exported network drops at the top and left of its input before the
        U-Net (and pads back on its output): ``halo - margin``.
    halo : what a consumer crops from each side of an output block: the output is zero there
        (and ``shift`` pixels more at the bottom and right are valid but cropped).
    min_size : smallest input block; blocks are ``min_size + k * step`` pixels.
    step : ``2**depth``: the blocks' inner sizes, and the image sides a consumer may feed
        whole (padded by the halo), are multiples of it.
    """

    margin: int
    shift: int
    halo: int
    min_size: int
    step: int


def tile_geometry(card: ModelCard) -> TileGeometry:
    """The :class:`TileGeometry` of a card's network.

    For valid padding, with ``s0`` the smallest valid input and ``shift = (s0 - 2 margin) %
    step``: ``halo = margin + shift``, and the blocks are the sizes ``s`` with
    ``s = 2 halo (mod step)``, ``s - shift`` a valid input and ``s > 2 halo``. The inner size
    ``s - 2 halo`` is then a multiple of ``step``, and a block at inner offset ``j * step``
    feeds the U-Net from ``j * step - halo + shift = j * step - margin``: where unetseg's tiles
    start. For the paper's network (depth 4, 572 → 388, margin 92): shift 4, halo 96, blocks
    208 + 16 k (576 feeds the paper's 572 px tile).
    """
    m = card.model
    step = 2**m.depth
    if m.padding == "valid":
        margin = (m.tile_size - card.out_size) // 2
        _, smallest = nearest_valid_sizes(1, m.depth)
        shift = (smallest - 2 * margin) % step
        halo = margin + shift
        min_size = max(smallest + shift, 2 * halo + 1)
        min_size += (2 * halo - min_size) % step
    else:
        margin = shift = 0
        halo = math.ceil((m.tile_size - card.step) / step) * step // 2
        min_size = (2 * halo // step + 1) * step
    return TileGeometry(margin=margin, shift=shift, halo=halo, min_size=min_size, step=step)


def block_size(geometry: TileGeometry, at_least: int) -> int:
    """The smallest declared block size of at least ``at_least`` pixels."""
    g = geometry
    return g.min_size + max(0, math.ceil((at_least - g.min_size) / g.step)) * g.step


def channel_names(card: ModelCard) -> list[str]:
    """Names of the exported output channels, in order."""
    return ["background", "cell", "distance"][:len(card.channels)]


def dataset_name(data: TrainingData | None) -> str:
    """A short name of the training data: the dataset folder, zip or URL's last part."""
    if data is None:
        return "unrecorded data"
    if data.layout == "synthetic":
        return "synthetic HeLa-like cells"
    path = urlsplit(data.source).path if "://" in data.source else data.source
    stem = PurePosixPath(path.replace("\\", "/").rstrip("/")).name
    return stem.removesuffix(".zip").removesuffix(".ZIP") or data.source


def default_name(card: ModelCard) -> str:
    """``unetseg U-Net (DIC-C2DH-HeLa)``: the architecture and what it was trained on."""
    text = f"unetseg {ARCH_NAMES[card.model.arch]} ({dataset_name(card.training_data)})"
    return _NAME_CHARS.sub("-", text)[:128]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a bioimage.io model name, or None when it can."""
    if not 5 <= len(name) <= 128:
        return f"must be 5 to 128 characters long, got {len(name)}"
    if _NAME_CHARS.search(name):
        return "may only hold letters, digits, spaces and _ + - ( )"
    return None


def default_description(card: ModelCard, scores: dict[str, float]) -> str:
    """One paragraph: what the network is, what it was trained on and how it scored."""
    m, data = card.model, card.training_data
    trained = f" trained on {dataset_name(data)}" if data else ""
    seg = f"; SEG {scores['seg']:.3f} on its held-out test split" if "seg" in scores else ""
    return (f"Cell segmentation with a {ARCH_NAMES[m.arch]} (depth {m.depth}, {m.base_filters} "
            f"filters, {m.padding} convolutions){trained}, made with unetseg{seg}. Outputs "
            "per-pixel background and cell probabilities; the documentation says how unetseg "
            "turns them into cells.")


def _modality(data: TrainingData | None) -> str:
    name = dataset_name(data)
    if data is not None and data.layout == "em":
        return "electron-microscopy"
    if data is not None and data.layout == "ctc" and name.startswith("Fluo-"):
        return "fluorescence-light-microscopy"
    if data is None or (data.layout == "ctc" and not re.match(r"(DIC|PhC|BF)-", name)):
        return "other"
    return "transmission-light-microscopy"


def _training_data(data: TrainingData) -> dict[str, Any]:
    papers = [DATA_PAPERS[data.layout]] if data.layout in DATA_PAPERS else []
    kind = {"synthetic": "generated by unetseg (touching HeLa-like cells in DIC-like images)",
            "ctc": "a Cell Tracking Challenge 2D dataset",
            "em": "an ISBI 2012 EM segmentation dataset"}[data.layout]
    return {"type": "dataset", "format_version": "0.3.0",
            "name": _NAME_CHARS.sub("-", dataset_name(data)).ljust(5, "_")[:128],
            "description": (f"{kind}; source {data.source!r}; {data.n_images} training images "
                            f"({data.annotations} masks); test split: {data.test_split}")[:1024],
            "cite": papers, "tags": [data.layout]}


def describe(card: ModelCard, postprocess: PostprocessParams, scores: dict[str, float], *,
             name: str, description: str, authors: list[str], files: dict[str, str],
             weights: dict[str, Any], parameters: int) -> dict[str, Any]:
    """The ``rdf.yaml`` content of an exported model (spec 0.5).

    Parameters
    ----------
    card, postprocess, scores : the model folder's card, post-processing and test scores.
    name, description, authors : the package's name, one-paragraph description and authors.
    files : package file names under the keys ``weights_keras``, ``weights_onnx``,
        ``test_input``, ``test_output``, ``sample_input``, ``sample_output``, ``cover``,
        ``documentation``.
    weights : ``keras_version``, ``backend`` (name, version) and ``onnx_opset``.
    parameters : the network's number of parameters.
    """
    m, t, g = card.model, card.train, tile_geometry(card)
    lo, hi = card.normalize_percentiles
    space = [{"type": "space", "id": axis, "size": {"min": g.min_size, "step": g.step},
              "description": f"valid sizes {g.min_size} + k * {g.step}"} for axis in "yx"]
    out_space = [{"type": "space", "id": axis,
                  "size": {"tensor_id": INPUT_ID, "axis_id": axis, "offset": 0},
                  **({"halo": g.halo} if g.halo else {}),
                  "description": f"crop the {g.halo} px halo on each side of a tile"}
                 for axis in "yx"]
    data = card.training_data
    cite = [PAPER, *([ARCH_PAPERS[m.arch]] if m.arch in ARCH_PAPERS else []),
            *([DATA_PAPERS[data.layout]] if data and data.layout in DATA_PAPERS else [])]
    rdf: dict[str, Any] = {
        "format_version": SPEC_VERSION, "type": "model", "name": name,
        "description": description, "authors": [{"name": a} for a in authors], "cite": cite,
        "license": LICENSE,
        "tags": ["unetseg", "unet", "2d", "cells", "semantic-segmentation", "tensorflow",
                 "keras", "onnx", _modality(data), *([data.layout] if data else [])],
        "covers": [{"source": files["cover"]}],
        "documentation": {"source": files["documentation"]},
        "inputs": [{
            "id": INPUT_ID,
            "description": "grayscale image, any intensity range (normalised by preprocessing)",
            "axes": [{"type": "batch"}, *space, {"type": "channel", "channel_names": ["gray"]}],
            "data": {"type": "float32"},
            "test_tensor": {"source": files["test_input"]},
            "sample_tensor": {"source": files["sample_input"]},
            "pad": {"mode": "symmetric"},
            "preprocessing": [
                {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                {"id": "scale_range", "kwargs": {"axes": ["y", "x", "channel"],
                                                 "min_percentile": lo, "max_percentile": hi,
                                                 "eps": NORMALIZE_EPS}}],
        }],
        "outputs": [{
            "id": OUTPUT_ID,
            "description": "per-pixel probabilities: background, cell (softmax), see channels",
            "axes": [{"type": "batch"}, *out_space,
                     {"type": "channel", "channel_names": channel_names(card)}],
            "data": {"type": "float32", "range": [0.0, 1.0]},
            "test_tensor": {"source": files["test_output"]},
            "sample_tensor": {"source": files["sample_output"]},
        }],
        "weights": {
            "keras_v3": {"source": files["weights_keras"],
                         "keras_version": weights["keras_version"],
                         "backend": list(weights["backend"]),
                         "comment": "trained by unetseg; logits -> probabilities appended"},
            "onnx": {"source": files["weights_onnx"], "opset_version": weights["onnx_opset"],
                     "parent": "keras_v3",
                     "comment": "Keras Model.export(format='onnx') (tf2onnx), checked against "
                                "Keras on the test tile"},
        },
        "config": {
            "bioimageio": {
                "architecture_type": ARCH_NAMES[m.arch],
                "architecture_description": (
                    f"{ARCH_NAMES[m.arch]} of depth {m.depth} (2x2 max-pools), {m.base_filters} "
                    f"filters at the first level, doubled per level, {m.padding} 3x3 "
                    f"convolutions, dropout {m.dropout:g}; a {m.tile_size} px input tile gives "
                    f"{card.out_size} px of output"),
                "task": "semantic segmentation (instances: see the documentation)",
                "modality": _modality(data), "target_structure": ["cells"],
                "model_parameter_count": parameters,
                "training": {"training_epochs": float(card.epochs),
                             "training_batch_size": float(t.batch_size),
                             "initial_learning_rate": t.lr, "learning_rate_schedule": t.lr_schedule,
                             "optimizer": t.optimizer,
                             "loss_function": "pixel-weighted cross-entropy (Ronneberger et al. "
                                              "2015, Eq. 1-2)",
                             "training_preprocessing": "percentile normalisation, elastic "
                                                       "deformation, flips, gray-value changes"},
            },
            "unetseg": {
                "resample_factor": card.prepare.resample_factor,
                "resampling": _resampling_note(card.prepare.resample_factor),
                "margin": g.margin, "shift": g.shift, "halo": g.halo,
                "tile_size": m.tile_size,
                "out_size": card.out_size, "channels": channel_names(card),
                "distance_px": card.distance_px,
                "postprocess": dataclasses.asdict(postprocess), "scores": dict(scores),
                "card": card.to_dict(),
            },
        },
    }
    if data is not None:
        rdf["training_data"] = _training_data(data)
    return rdf


def _resampling_note(factor: float) -> str:
    if factor == 1:
        return "none: the network works at the images' own resolution"
    return (f"resample each image by {factor:g} (linear) before the network and its "
            f"probabilities back by {1 / factor:g}; bioimage.io preprocessing cannot say this")
