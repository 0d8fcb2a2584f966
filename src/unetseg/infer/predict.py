"""``unetseg predict MODEL_DIR INPUT... --out DIR``: segment new images with a trained model.

INPUT is an image file (TIFF, PNG), a folder of them, a Cell Tracking Challenge sequence
folder ``NN/`` (frames ``tTTT.tif``) or a folder of such sequences. Masks are 16-bit
instance TIFFs: ``DIR/<stem>.tif`` for plain images, ``DIR/NN_RES/maskTTT.tif`` (the
challenge's result layout) for sequence frames. With ``--probabilities`` a float32 TIFF of
the cell probability goes beside each mask (``<stem>_prob.tif``; ``NN_PROB/probTTT.tif``
for sequences, so the challenge's evaluator sees only masks in ``NN_RES``), and with
``--overlays`` an outline picture (``<stem>_overlay.png``; ``NN_OVERLAY/overlayTTT.png``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from unetseg.data.ctc import is_sequence, result_name, sequence_frames
from unetseg.errors import InputError
from unetseg.images import (
    IMAGE_SUFFIXES,
    check_image,
    probe_image,
    read_image,
    to_gray,
    write_mask,
    write_probability,
)
from unetseg.infer.model_folder import read_model_folder, with_overrides
from unetseg.runtime import configure_backend
from unetseg.train.card import WEIGHTS_FILE

_OPTIONS = {"threshold": "--threshold", "tta": "--tta", "min_size": "--min-size",
            "instances": "--instances"}
"""Post-processing fields that options override, and the option of each."""


@dataclass(frozen=True)
class Job:
    """One image to segment and where its outputs go (paths relative to the output folder)."""

    image: Path
    mask: Path
    probability: Path
    overlay: Path


def _sequence_jobs(folder: Path) -> list[Job]:
    seq = folder.name
    return [Job(path, Path(result_name(seq, n)), Path(f"{seq}_PROB/prob{n}.tif"),
                Path(f"{seq}_OVERLAY/overlay{n}.png"))
            for n, path in sequence_frames(folder).items()]


def _image_job(path: Path) -> Job:
    return Job(path, Path(f"{path.stem}.tif"), Path(f"{path.stem}_prob.tif"),
               Path(f"{path.stem}_overlay.png"))


def find_jobs(inputs: list[Path]) -> list[Job]:
    """The images named by ``inputs`` (files, folders, sequence folders), in order.

    Raises
    ------
    InputError
        A missing input, a file that is not a TIFF or PNG, a folder with no images.
    """
    jobs: list[Job] = []
    for path in inputs:
        if path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{path}: not an image file (expected "
                                 f"{', '.join(IMAGE_SUFFIXES)})")
            jobs.append(_image_job(path))
        elif path.is_dir():
            jobs.extend(_folder_jobs(path))
        else:
            raise InputError(f"{path}: no such file or folder")
    return jobs


def _folder_jobs(folder: Path) -> list[Job]:
    try:
        if is_sequence(folder):
            return _sequence_jobs(folder)
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise InputError(f"{folder}: cannot list folder: {err.strerror or err}") from None
    images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        return [_image_job(p) for p in images]
    sequences = [p for p in entries if is_sequence(p)]
    if sequences:
        return [job for seq in sequences for job in _sequence_jobs(seq)]
    raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) and no sequence "
                     "folders NN/ of frames tTTT.tif")


def check_plan(jobs: list[Job], inputs: list[Path], out: Path, *, probabilities: bool,
               overlays: bool, overwrite: bool) -> None:
    """Refuse, before anything is written, a plan that would clobber or mix up files.

    Raises
    ------
    InputError
        An output folder inside an input folder, two inputs with the same output, an
        output file that exists (unless ``overwrite``), or an input whose header is bad.
    """
    out_abs = out.resolve()
    for path in inputs:
        if path.is_dir() and out_abs.is_relative_to(path.resolve()):
            raise InputError(f"{out}: output folder lies inside input folder {path}; "
                             "choose another --out")
    seen: dict[Path, Path] = {}
    for job in jobs:
        targets = [job.mask] + [job.probability] * probabilities + [job.overlay] * overlays
        for target in targets:
            if target in seen:
                raise InputError(f"{out / target}: both {seen[target]} and {job.image} would "
                                 "be written there; rename one")
            seen[target] = job.image
            if (out / target).resolve() == job.image.resolve():
                raise InputError(f"{out / target}: would overwrite its own input")
            if (out / target).exists() and not overwrite:
                raise InputError(f"{out / target}: exists (pass --overwrite to replace it)")
    for job in jobs:
        probe_image(job.image, colour=True)


def parser() -> argparse.ArgumentParser:
    """The ``unetseg predict`` argument parser."""
    p = argparse.ArgumentParser(prog="unetseg predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                   help="model folder (model.keras, card.json, postprocess.json), e.g. models")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="image files, folders of images, or CTC sequence folders NN/")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--threshold", type=float,
                   help="cell probability cut-off (the model folder's default)")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                   help="average the 8 flips/rotations of each tile (model's default)")
    p.add_argument("--min-size", type=int, help="smallest object kept, in pixels")
    p.add_argument("--instances", choices=("components", "watershed", "distance"),
                   help="how foreground becomes objects (model's default)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per network call (4)")
    p.add_argument("--probabilities", action="store_true",
                   help="also write the cell probability as float32 TIFF")
    p.add_argument("--overlays", action="store_true", help="also write outline pictures (PNG)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return p


def run(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and segment every input; bad input raises a one-line InputError."""
    args = parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    if args.batch_size < 1:
        raise InputError(f"--batch-size: must be >= 1, got {args.batch_size}")
    card, saved = read_model_folder(args.model_dir)
    try:
        postprocess = with_overrides(saved, **overrides)
    except InputError as err:
        text = str(err)
        for key, option in _OPTIONS.items():
            text = text.replace(f"params: postprocess.{key}", option)
        raise InputError(text) from None
    jobs = find_jobs(args.inputs)
    check_plan(jobs, args.inputs, args.out, probabilities=args.probabilities,
               overlays=args.overlays, overwrite=args.overwrite)
    configure_backend()
    from unetseg.infer.segmenter import Segmenter, load_weights
    from unetseg.score.overlays import outline_overlay, write_rgb_png

    segmenter = Segmenter(load_weights(args.model_dir / WEIGHTS_FILE), card, postprocess,
                          args.batch_size)
    start, objects, told = time.perf_counter(), 0, False
    for job in tqdm(jobs, desc="predict", unit="image", disable=None):
        raw = read_image(job.image, colour=True)
        if raw.ndim == 3 and not told:
            print(f"note: colour images are converted to grayscale (luminance), "
                  f"first {job.image}", file=sys.stderr)
            told = True
        image = check_image(job.image, to_gray(raw))
        try:
            labels, prob = segmenter.segment(image, probability=True)
        except InputError as err:
            raise InputError(f"{job.image}: {err}") from None
        write_mask(args.out / job.mask, labels)
        if args.probabilities:
            write_probability(args.out / job.probability, prob)
        if args.overlays:
            write_rgb_png(args.out / job.overlay, outline_overlay(image, 0 * labels, labels))
        objects += int(labels.max())
    seconds = time.perf_counter() - start
    print(f"unetseg predict: {len(jobs)} images, {objects} objects, {seconds:.1f} s -> {args.out}")
