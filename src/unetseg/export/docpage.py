"""The documentation page (``README.md``) of an exported model: how to feed it, how to tile it,
and how unetseg turns its probabilities into cells, with the model folder's own values."""

from __future__ import annotations

from unetseg.config import PostprocessParams
from unetseg.export.rdf import ARCH_NAMES, INPUT_ID, OUTPUT_ID, TileGeometry, dataset_name
from unetseg.train.card import ModelCard

_SCORES = {"seg": "SEG (Cell Tracking Challenge: mean Jaccard of the reference cells)",
           "iou": "foreground IoU", "dice": "foreground Dice",
           "pixel_error": "pixel error", "rand_error": "Rand error (ISBI 2012)"}


def documentation(card: ModelCard, postprocess: PostprocessParams, scores: dict[str, float],
                  geometry: TileGeometry, *, name: str, test_tile: int, sample: str) -> str:
    """The Markdown page: input, tiling, output channels, instances, validation, training.

    ``test_tile`` is the side of the package's test input in pixels, ``sample`` what it was
    cut from (``"frame t012.tif"``, ``"a synthetic frame"``).
    """
    m, g, p = card.model, geometry, postprocess
    lo, hi = card.normalize_percentiles
    sections = [
        f"# {name}\n\n"
        f"A {ARCH_NAMES[m.arch]} (Ronneberger et al. 2015) exported by `unetseg export` from a "
        "unetseg model folder. It segments cells in 2-D grayscale images: per pixel, it gives "
        "the probability of background and of cell. The section *From probabilities to cells* "
        "says how unetseg turns them into one label per cell.",
        "## Input\n\n"
        f"`{INPUT_ID}`: one gray channel, axes `batch, y, x, channel`, float32. The "
        f"preprocessing maps percentile {lo:g} of each whole image to 0 and percentile "
        f"{hi:g} to 1, linearly and without clipping: "
        "`(x - p_lo) / (p_hi - p_lo + 1e-6)` (unetseg divides by `max(p_hi - p_lo, 1e-6)`: "
        "a relative difference of `1e-6 / (p_hi - p_lo)`). Compute the percentiles on the "
        "whole image, not per tile."
        + _resampling(card.prepare.resample_factor),
        "## Tiles\n\n" + _tiles(card, g),
        "## Output\n\n"
        f"`{OUTPUT_ID}`: axes `batch, y, x, channel`, float32 in [0, 1].\n\n"
        "| channel | meaning |\n|---|---|\n"
        "| 0 `background` | probability of background (softmax of the two class logits) |\n"
        "| 1 `cell` | probability of a cell: 1 - channel 0 |\n"
        + (f"| 2 `distance` | predicted distance to the nearest background pixel as a fraction "
           f"of {card.distance_px:g} px (sigmoid); times {card.distance_px:g} gives pixels of "
           "the network's grid |\n"
           if card.has_distance else ""),
        "## From probabilities to cells\n\n" + _instances(p, card) + "\n\n"
        "`unetseg predict MODEL_DIR IMAGE --out DIR` runs exactly this on the model folder "
        "this package was exported from.",
        "## Validation\n\n" + _validation(scores, card),
        "## Training\n\n" + _training(card),
        "## Test tensors\n\n"
        f"`test_input.npy` is the {test_tile} x {test_tile} px centre of {sample} (at the "
        "network's resolution), before preprocessing; `test_output.npy` is what the Keras "
        "weights give for it. The ONNX weights reproduce it to 1e-4. The cover shows the "
        "centre of the same frame, and the cells unetseg finds in it.",
        "## Licence and citation\n\n"
        "BSD-3-Clause (the unetseg project). Cite Ronneberger et al. 2015 for the network"
        + (" and the dataset's paper listed under `cite`" if card.training_data
           and card.training_data.layout != "synthetic" else "") + ".",
    ]
    return "\n\n".join(sections) + "\n"


def _tiles(card: ModelCard, g: TileGeometry) -> str:
    m = card.model
    context = (f"The network uses valid convolutions: they take {g.margin} px of context on "
               f"each side (a {m.tile_size} px tile gives {card.out_size} px). The exported "
               "network pads its output back to its input's size with zeros, so output pixel "
               "(y, x) lies over input pixel (y, x). " if g.margin else
               "The network uses same convolutions; overlapping tiles hide their seams. ")
    shift = (f"The network drops the first {g.shift} rows and columns of each block before its "
             f"U-Net, so that blocks cut this way (their inner parts start at multiples of "
             f"{g.step} px) see the max-pooling grid where unetseg's own tiles do. " if g.shift
             else "")
    return (context + f"It declares a halo of {g.halo} px: mirror the image by the halo at its "
            "borders (`symmetric` padding, the paper's overlap-tile strategy), cut input blocks "
            f"of {g.min_size} + k * {g.step} px (k = 0, 1, ...) that overlap by twice the halo, "
            "and crop the halo from every side of every output block. " + shift
            + "bioimageio.core does this when it predicts with blocks "
            "(`predict(..., blocksize_parameter=k)`), and gives unetseg's probabilities, "
            "whatever k, without seams. It shifts the last block along an axis back to end at "
            f"the border: where the image side is not a multiple of {g.step} px, that block "
            "sees the pooling grid at another phase and differs slightly. Without blocks, feed "
            f"images whose sides are multiples of {g.step} px (bioimageio.core 0.11 then "
            "computes the normalisation's percentiles on the image padded by the halo, which "
            "moves them slightly).")


def _resampling(factor: float) -> str:
    if factor == 1:
        return ""
    return (f"\n\n**Resample first.** The network was trained on images resampled by "
            f"{factor:g} (linear interpolation, anti-aliased when shrinking). Resample your "
            f"image by {factor:g} before the network and its probabilities back to the image's "
            "size after it (linear). bioimage.io's preprocessing cannot express this step; "
            "`config.unetseg.resample_factor` in `rdf.yaml` records it. The test tensors are "
            "at the network's resolution.")


def _instances(p: PostprocessParams, card: ModelCard) -> str:
    factor = card.prepare.resample_factor
    steps = ["Take the cell probability (channel 1) of the whole image"
             + (f", brought back to the image's own grid (x {1 / factor:g}, linear)"
                if factor != 1 else "") + "."]
    if p.tta:
        steps.append("Average it over the 8 flips and 90-degree rotations of the input "
                     "(test-time augmentation).")
    if p.label_offset != (0.0, 0.0):
        steps.append(f"Shift it by {p.label_offset_y:g} px in y and {p.label_offset_x:g} px in "
                     "x (linear interpolation): the training labels sit that far off the "
                     "structures they annotate.")
    steps.append(f"Foreground: probability > {p.threshold:g}.")
    if p.instances == "components":
        steps.append("Cells: the 4-connected components of the foreground "
                     "(`scipy.ndimage.label` with a cross-shaped structure).")
    else:
        where = ("the Euclidean distance transform of the foreground" if p.instances ==
                 "watershed" else "the predicted distance (channel 2 times "
                 f"{card.distance_px / factor:g} px, smoothed by a Gaussian of 1 px)")
        steps.append(f"Cells: a marker watershed on {where}: markers are its h-maxima of height "
                     "2 px (8-connected), flooded on its negative within the foreground "
                     "(4-connected); two adjacent regions are merged again unless the largest "
                     f"distance along their border is at most {p.neck_ratio:g} times the lower "
                     "of their two peaks. Foreground left without a marker keeps its "
                     "4-connected components.")
    steps.append(f"Drop cells smaller than {p.min_size} px.")
    if p.fill_holes:
        steps.append("Give every background hole that lies inside a single cell to that cell.")
    steps.append("Number the cells 1..n (0 = background).")
    if p.grow_into_gaps_px:
        steps.append(f"Grow the cells by {p.grow_into_gaps_px} px "
                     "(`skimage.segmentation.expand_labels`), but only into the gaps between "
                     "cells: background pixels with two different cells within "
                     f"{2 * p.grow_into_gaps_px} px (square window). Training drew a gap between "
                     "touching cells (paper Fig. 3c); this gives it back.")
    return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))


def _validation(scores: dict[str, float], card: ModelCard) -> str:
    data = card.training_data
    where = f"the test split of {dataset_name(data)} ({data.test_split})" if data else \
        "the test split unetseg's evaluate stage scored"
    if not scores:
        return f"No scores recorded: the model folder's `postprocess.json` has none ({where})."
    rows = "\n".join(f"| {_SCORES.get(k, k)} | {v:.4f} |" for k, v in sorted(scores.items()))
    return (f"Scores on {where}, with the post-processing above, as unetseg's evaluate stage "
            f"measured them:\n\n| metric | value |\n|---|---|\n{rows}")


def _training(card: ModelCard) -> str:
    t, data = card.train, card.training_data
    what = (f"{data.n_images} images of {dataset_name(data)} ({data.annotations} masks, "
            f"source `{data.source}`)" if data else "data the model card does not record")
    return (f"Trained on {what} with elastic deformations, flips and gray-value changes, "
            f"for {card.epochs} epochs ({t.optimizer}, learning rate {t.lr:g}, "
            f"{t.lr_schedule} schedule, batch {t.batch_size}) on the pixel-weighted "
            "cross-entropy of the paper (Eq. 1-2), which weighs the gaps between touching "
            f"cells heavily. Keras {card.versions.get('keras', '?')} on {card.backend}.")
