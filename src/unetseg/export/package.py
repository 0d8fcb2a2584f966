"""``unetseg export MODEL_DIR OUT.zip``: a trained model folder as a bioimage.io model package.

The package (spec 0.5, validated with bioimageio.spec) holds the network with probabilities
out in two weight formats (keras_v3 and ONNX, checked against each other), ``rdf.yaml`` with the
model card's facts, the input normalisation as preprocessing and the tile geometry, a test tile
of a real frame (``--sample``) with the output it gives, a cover (the segmented sample) and a
documentation page that says how unetseg turns the probabilities into cells. napari, Fiji
(deepImageJ), ilastik, QuPath and bioimageio.core read it without unetseg.

Nothing is written unless everything succeeds: the zip appears whole or not at all.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import tifffile

from unetseg.errors import InputError
from unetseg.export.docpage import documentation
from unetseg.export.rdf import (
    block_size,
    default_description,
    default_name,
    describe,
    name_problem,
    tile_geometry,
)
from unetseg.files import atomic_path
from unetseg.images import check_image, normalize, read_image, to_gray
from unetseg.infer.model_folder import POSTPROCESS_FILE, read_model_folder, read_postprocess
from unetseg.prepare.resampling import resample_image
from unetseg.runtime import configure_backend
from unetseg.train.card import WEIGHTS_FILE, ModelCard, package_versions

if TYPE_CHECKING:
    from unetseg.infer.segmenter import Segmenter

DEFAULT_AUTHORS = ("the unetseg project",)
COVER_SIDE = 256
"""Largest side, in pixels, of the sample crop that the cover shows segmented."""
FILES = {"weights_keras": "weights.keras", "weights_onnx": "weights.onnx",
         "test_input": "test_input.npy", "test_output": "test_output.npy",
         "sample_input": "sample_input.tif", "sample_output": "sample_output.tif",
         "cover": "cover.png", "documentation": "README.md"}
"""Names of the package's files, by role (see :func:`unetseg.export.rdf.describe`)."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_package` wrote: the zip, its size in bytes, the side of its test tile
    and the largest ``|ONNX - Keras|`` probability on that tile."""

    out: Path
    size: int
    test_tile: int
    onnx_difference: float


def check_target(out: Path, force: bool) -> None:
    """Refuse an output that is not a ``.zip`` in an existing folder, or exists (without
    ``force``), before any work.

    Raises
    ------
    InputError
        One line naming ``out``.
    """
    if out.suffix.lower() != ".zip":
        raise InputError(f"{out}: a bioimage.io package is a .zip file; name it OUT.zip")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such folder for {out.name}")
    if out.is_dir():
        raise InputError(f"{out}: is a folder")
    if out.exists() and not force:
        raise InputError(f"{out}: exists (pass --force to replace it)")


def sample_image(path: Path | None) -> np.ndarray:
    """The frame the test tile and cover come from: ``(Y, X)`` uint8 or uint16.

    ``path`` is read like ``unetseg predict`` reads images (colour becomes gray). Without one,
    a synthetic frame (:func:`unetseg.data.synthetic.generate`) stands in, and a note says so.

    Raises
    ------
    InputError
        An unreadable, 3-D or constant image.
    """
    if path is None:
        from unetseg.data.synthetic import generate

        print("note: no --sample given; the test tile and cover come from a synthetic frame "
              "(pass a frame of your data with --sample)", file=sys.stderr)
        return generate(1, COVER_SIDE, COVER_SIDE, 18, 0)[0].image
    return check_image(path, to_gray(read_image(path, colour=True)))


def centre_tile(image: np.ndarray, card: ModelCard, size: int) -> np.ndarray:
    """The ``(size, size)`` centre of ``image`` at the network's resolution (resampled by the
    card's factor), mirrored at its borders where it is smaller; raw values, image dtype."""
    work = resample_image(image, card.prepare.resample_factor)
    pads = []
    for n in work.shape:
        extra = max(size - n, 0)
        pads.append((extra // 2, extra - extra // 2))
    work = np.pad(work, pads, mode="symmetric")
    y, x = ((n - size) // 2 for n in work.shape)
    return work[y: y + size, x: x + size]


def cover(image: np.ndarray, segmenter: Segmenter) -> np.ndarray:
    """A ``(h, 2 w, 3)`` uint8 picture: the centre (at most :data:`COVER_SIDE` px a side) of
    ``image`` in gray, and beside it the same with the outlines of the cells that
    ``segmenter`` finds in it."""
    from unetseg.score.overlays import outline_overlay

    y, x = (max((n - COVER_SIDE) // 2, 0) for n in image.shape)
    crop = image[y: y + COVER_SIDE, x: x + COVER_SIDE]
    labels = segmenter.segment(crop)
    none = np.zeros_like(labels)
    return np.concatenate([outline_overlay(crop, none, none),
                           outline_overlay(crop, none, labels)], axis=1)


def export_package(model_dir: Path, out: Path, *, sample: Path | None = None,
                   name: str | None = None, description: str | None = None,
                   authors: tuple[str, ...] = DEFAULT_AUTHORS,
                   force: bool = False) -> ExportReport:
    """Write the bioimage.io package of the model folder ``model_dir`` to ``out`` (a zip).

    Parameters
    ----------
    model_dir : a model folder (``model.keras``, ``card.json``, ``postprocess.json``).
    out : the ``.zip`` to write; its folder must exist.
    sample : an image (TIFF/PNG) of the kind the model segments, for the test tile and cover;
        None uses a synthetic frame.
    name, description, authors : the package's; the name and description default to the
        card's architecture, training data and SEG.
    force : replace an existing ``out``.

    Raises
    ------
    InputError
        One line for: an output that exists (without ``force``) or lies in a missing folder; a
        missing or incomplete model folder; a bad sample or name; an ONNX conversion that fails
        or gives a file that ``onnx.checker`` refuses or that disagrees with Keras; a package
        that bioimageio.spec refuses. Nothing is left at ``out`` then.
    """
    check_target(out, force)
    if name is not None and (problem := name_problem(name)):
        raise InputError(f"--name: {problem}")
    card, postprocess = read_model_folder(model_dir)
    _, scores = read_postprocess(Path(model_dir) / POSTPROCESS_FILE)
    image = sample_image(sample)
    configure_backend()
    import keras

    from unetseg.export import network, spec
    from unetseg.infer.segmenter import Segmenter, load_weights
    from unetseg.score.overlays import write_rgb_png

    model = load_weights(Path(model_dir) / WEIGHTS_FILE)
    geometry = tile_geometry(card)
    portable = network.probability_network(model, card, geometry.margin, geometry.shift)
    size = block_size(geometry, card.model.tile_size)
    raw = centre_tile(image, card, size)
    batch = normalize(raw, *card.normalize_percentiles)[None, :, :, None]
    expected = network.predict(portable, batch)
    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory(prefix="unetseg-export-") as tmp:
        folder = Path(tmp)
        network.save_keras_v3(portable, folder / FILES["weights_keras"])
        reloaded = keras.saving.load_model(folder / FILES["weights_keras"], compile=False)
        if not np.allclose(network.predict(reloaded, batch), expected, atol=1e-6, rtol=0):
            raise InputError(f"{FILES['weights_keras']}: the saved Keras network does not "
                             "reproduce itself on the test tile")
        network.export_onnx(portable, folder / FILES["weights_onnx"])
        difference, opset = network.check_onnx(folder / FILES["weights_onnx"], expected, batch)
        np.save(folder / FILES["test_input"], raw.astype(np.float32)[None, :, :, None])
        np.save(folder / FILES["test_output"], expected)
        for key, array in (("sample_input", raw), ("sample_output", expected[0])):
            tifffile.imwrite(folder / FILES[key], array, compression="zlib", metadata=None)
        write_rgb_png(folder / FILES["cover"], cover(image, Segmenter(model, card, postprocess)))
        title = name or default_name(card)
        (folder / FILES["documentation"]).write_text(
            documentation(card, postprocess, scores, geometry, name=title, test_tile=size,
                          sample=f"frame {sample.name}" if sample else "a synthetic frame"))
        rdf = describe(card, postprocess, scores, name=title,
                       description=description or default_description(card, scores),
                       authors=list(authors), files=FILES,
                       weights={"keras_version": keras.__version__,
                                "backend": (backend, package_versions(backend).get(backend,
                                                                                   "0")),
                                "onnx_opset": opset},
                       parameters=int(model.count_params()))
        spec.write_package(rdf, folder, folder / "package.zip")
        with atomic_path(out) as tmp_out:
            shutil.copyfile(folder / "package.zip", tmp_out)
    return ExportReport(out=out, size=out.stat().st_size, test_tile=size,
                        onnx_difference=difference)


def parser() -> argparse.ArgumentParser:
    """The ``unetseg export`` argument parser."""
    p = argparse.ArgumentParser(prog="unetseg export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                   help="model folder (model.keras, card.json, postprocess.json), e.g. models")
    p.add_argument("out", type=Path, metavar="OUT.zip", help="the package to write")
    p.add_argument("--sample", type=Path, metavar="IMAGE",
                   help="a frame of your data (TIFF/PNG) for the test tile and the cover "
                        "(default: a synthetic frame)")
    p.add_argument("--name", help="package name (default: unetseg <architecture> (<data>))")
    p.add_argument("--description",
                   help="one paragraph (default: from the card: network, data and SEG)")
    p.add_argument("--authors", nargs="+", metavar="NAME", default=list(DEFAULT_AUTHORS),
                   help=f"authors of the package (default: {DEFAULT_AUTHORS[0]})")
    p.add_argument("--force", action="store_true", help="replace OUT.zip if it exists")
    return p


def run(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and export; bad input raises a one-line InputError."""
    args = parser().parse_args(argv)
    if any("/" in a or not a.strip() for a in args.authors):
        raise InputError("--authors: names must be non-empty and hold no '/'")
    report = export_package(args.model_dir, args.out, sample=args.sample, name=args.name,
                            description=args.description, authors=tuple(args.authors),
                            force=args.force)
    print(f"unetseg export: {report.out} ({report.size / 1e6:.1f} MB; keras_v3 + onnx, "
          f"|onnx - keras| <= {report.onnx_difference:.1g} on the {report.test_tile} px test "
          "tile)")
