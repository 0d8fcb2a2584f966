"""``unetseg predict MODEL_DIR INPUT... --out DIR``: segment new images with a trained model.

INPUT is an image file (TIFF, PNG), an OME-Zarr image or Zarr array (``*.zarr``), a folder of
them, a Cell Tracking Challenge sequence folder ``NN/`` (frames ``tTTT.tif``) or a folder of
such sequences. Masks are instance label images: ``DIR/<stem>.tif`` for plain images
(16-bit, 32-bit beyond 65,535 cells), ``DIR/NN_RES/maskTTT.tif`` (the challenge's result
layout, always 16-bit) for sequence frames, ``DIR/<stem>.ome.zarr`` for Zarr inputs or with
``--format zarr``. With ``--probabilities`` the cell probability (float32) goes beside each
mask (``<stem>_prob.tif`` or ``.ome.zarr``; ``NN_PROB/probTTT.tif`` for sequences, so the
challenge's evaluator sees only masks in ``NN_RES``), and with ``--overlays`` an outline
picture (``<stem>_overlay.png``; ``NN_OVERLAY/overlayTTT.png``).

Zarr inputs, TIFFs above 4096 x 4096 px, OME-Zarr outputs and, with ``--blocks``, any TIFF are
segmented block by block on dask (:mod:`unetseg.infer.blockwise`), locally or with
``--scheduler`` on a ``dask.distributed`` cluster, which then also segments the other images.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from unetseg.config import PostprocessParams
from unetseg.data.ctc import is_sequence, result_name, sequence_frames
from unetseg.errors import InputError
from unetseg.images import (
    IMAGE_SUFFIXES,
    MAX_LABEL16,
    TIFF_SUFFIXES,
    check_image,
    probe_image,
    read_image,
    to_gray,
    write_mask,
    write_probability,
)
from unetseg.infer.blockwise import (
    DEFAULT_BLOCK,
    DEFAULT_OVERLAP,
    block_layout,
    segment_blockwise,
)
from unetseg.infer.cluster import Runner, connect, worker_segmenter
from unetseg.infer.large_images import is_zarr, open_image, zarr_stem
from unetseg.infer.model_folder import read_model_folder, with_overrides
from unetseg.train.card import ModelCard

_OPTIONS = {"threshold": "--threshold", "tta": "--tta", "min_size": "--min-size",
            "instances": "--instances"}
"""Post-processing fields that options override, and the option of each."""
BLOCKWISE_PIXELS = 4096 * 4096
"""TIFFs with more pixels than this are segmented block by block."""


@dataclass(frozen=True)
class Job:
    """One image to segment and where its outputs go (paths relative to the output folder).

    ``challenge``: a sequence frame, whose mask must stay 16-bit. ``blocks``: segmented block
    by block (decided by :func:`check_plan`).
    """

    image: Path
    mask: Path
    probability: Path
    overlay: Path
    challenge: bool = False
    blocks: bool = False


def _sequence_jobs(folder: Path) -> list[Job]:
    seq = folder.name
    return [Job(path, Path(result_name(seq, n)), Path(f"{seq}_PROB/prob{n}.tif"),
                Path(f"{seq}_OVERLAY/overlay{n}.png"), challenge=True)
            for n, path in sequence_frames(folder).items()]


def _image_job(path: Path, fmt: str | None) -> Job:
    zarr_in = is_zarr(path)
    stem = zarr_stem(path) if zarr_in else path.stem
    suffix = ".ome.zarr" if fmt == "zarr" or (fmt is None and zarr_in) else ".tif"
    return Job(path, Path(f"{stem}{suffix}"), Path(f"{stem}_prob{suffix}"),
               Path(f"{stem}_overlay.png"))


def find_jobs(inputs: list[Path], fmt: str | None = None) -> list[Job]:
    """The images named by ``inputs`` (files, Zarr stores, folders, sequence folders), in order.

    ``fmt`` (``"tif"`` or ``"zarr"``) chooses the masks' format; by default Zarr inputs give
    OME-Zarr and the others TIFF. Sequence frames always give the challenge's TIFFs.

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
                                 f"{', '.join(IMAGE_SUFFIXES)}, or a .zarr folder)")
            jobs.append(_image_job(path, fmt))
        elif is_zarr(path):
            jobs.append(_image_job(path, fmt))
        elif path.is_dir():
            jobs.extend(_folder_jobs(path, fmt))
        else:
            raise InputError(f"{path}: no such file or folder")
    return jobs


def _folder_jobs(folder: Path, fmt: str | None) -> list[Job]:
    try:
        if is_sequence(folder):
            return _sequence_jobs(folder)
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise InputError(f"{folder}: cannot list folder: {err.strerror or err}") from None
    images = [p for p in entries if (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
              or is_zarr(p)]
    if images:
        return [_image_job(p, fmt) for p in images]
    sequences = [p for p in entries if is_sequence(p)]
    if sequences:
        return [job for seq in sequences for job in _sequence_jobs(seq)]
    raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}, .zarr) and no "
                     "sequence folders NN/ of frames tTTT.tif")


def check_plan(jobs: list[Job], inputs: list[Path], out: Path, *, probabilities: bool,
               overlays: bool, overwrite: bool, blocks: bool = False) -> list[Job]:
    """Refuse, before anything is written, a plan that would clobber or mix up files; decide
    which images go block by block (all TIFFs with ``blocks``).

    Returns
    -------
    ``jobs``, with ``blocks`` set.

    Raises
    ------
    InputError
        An output folder inside an input folder, two inputs with the same output, an
        output file that exists (unless ``overwrite``), an input whose header is bad, or an
        option the image's path cannot honour.
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
    return [_route(job, blocks, overlays) for job in jobs]


def _route(job: Job, blocks: bool, overlays: bool) -> Job:
    """``job`` with ``blocks`` decided from its header (which is checked on the way)."""
    zarr_out = job.mask.suffix.lower() == ".zarr"
    if is_zarr(job.image) or job.image.suffix.lower() in TIFF_SUFFIXES:
        shape = open_image(job.image).shape
        if is_zarr(job.image) or zarr_out or blocks or shape[0] * shape[1] > BLOCKWISE_PIXELS:
            if overlays:
                raise InputError(f"{job.image}: --overlays is not available for images "
                                 f"segmented block by block ({shape[0]} x {shape[1]} px)")
            return dataclasses.replace(job, blocks=True)
    elif zarr_out:
        raise InputError(f"{job.image}: a PNG is segmented whole and written as TIFF; "
                         "--format zarr needs a TIFF or Zarr input")
    probe_image(job.image, colour=True)
    return job


def parser() -> argparse.ArgumentParser:
    """The ``unetseg predict`` argument parser."""
    p = argparse.ArgumentParser(prog="unetseg predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR",
                   help="model folder (model.keras, card.json, postprocess.json), e.g. models")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="images (TIFF, PNG, Zarr), folders of them, or CTC sequence folders NN/")
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
                   help="also write the cell probability (float32)")
    p.add_argument("--overlays", action="store_true", help="also write outline pictures (PNG)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--format", choices=("tif", "zarr"),
                   help="masks of plain images as TIFF or OME-Zarr (default: OME-Zarr for Zarr "
                        "inputs, TIFF otherwise)")
    p.add_argument("--blocks", action="store_true",
                   help="segment every TIFF block by block, not only those above 4096 x 4096")
    p.add_argument("--block-size", type=int,
                   help=f"block size in px ({DEFAULT_BLOCK}); implies --blocks")
    p.add_argument("--block-overlap", type=int, default=DEFAULT_OVERLAP,
                   help="px labelled around each block: cells up to about this size are "
                        f"whole across block seams ({DEFAULT_OVERLAP})")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on this dask.distributed scheduler (tcp://host:port); workers "
                        "must see the model, the inputs and --out at the same paths")
    p.add_argument("--scheduler-timeout", type=float, default=10.0,
                   help="seconds to wait for the scheduler to answer (10)")
    return p


@dataclass(frozen=True)
class Options:
    """What segmenting one whole image needs, wherever it runs (absolute paths)."""

    model_dir: Path
    postprocess: PostprocessParams
    batch_size: int
    out: Path
    probabilities: bool
    overlays: bool


def segment_job(job: Job, options: Options) -> tuple[int, bool]:
    """Segment one image whole and write its outputs; returns (objects, was it colour).

    Runs here or as a task on a dask worker, with the process's :func:`worker_segmenter`.

    Raises
    ------
    InputError
        An unreadable image, or a challenge frame with more than 65,535 cells.
    """
    from unetseg.score.overlays import outline_overlay, write_rgb_png

    segmenter, lock = worker_segmenter(options.model_dir, options.postprocess,
                                       options.batch_size)
    raw = read_image(job.image, colour=True)
    image = check_image(job.image, to_gray(raw))
    try:
        with lock:
            labels, prob = segmenter.segment(image, probability=True)
    except InputError as err:
        raise InputError(f"{job.image}: {err}") from None
    objects = int(labels.max())
    if job.challenge and objects > MAX_LABEL16:
        raise InputError(f"{job.image}: {objects} cells, more than the {MAX_LABEL16} a 16-bit "
                         "challenge mask holds")
    write_mask(options.out / job.mask, labels)
    if options.probabilities:
        write_probability(options.out / job.probability, prob)
    if options.overlays:
        write_rgb_png(options.out / job.overlay, outline_overlay(image, 0 * labels, labels))
    return objects, raw.ndim == 3


def _check_numbers(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise InputError(f"--batch-size: must be >= 1, got {args.batch_size}")
    if not args.scheduler_timeout > 0:
        raise InputError(f"--scheduler-timeout: must be > 0 s, got {args.scheduler_timeout}")


def run(argv: list[str] | None = None) -> None:
    """Parse ``argv`` and segment every input; bad input raises a one-line InputError."""
    args = parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    _check_numbers(args)
    card, saved = read_model_folder(args.model_dir)
    try:
        postprocess = with_overrides(saved, **overrides)
    except InputError as err:
        text = str(err)
        for key, option in _OPTIONS.items():
            text = text.replace(f"params: postprocess.{key}", option)
        raise InputError(text) from None
    block = args.block_size or DEFAULT_BLOCK
    block_layout((1, 1), card, postprocess, block, args.block_overlap)
    jobs = check_plan(find_jobs(args.inputs, args.format), args.inputs, args.out,
                      probabilities=args.probabilities, overlays=args.overlays,
                      overwrite=args.overwrite, blocks=args.blocks or args.block_size is not None)
    client = connect(args.scheduler, args.scheduler_timeout) if args.scheduler else None
    options = Options(args.model_dir.absolute(), postprocess, args.batch_size,
                      args.out.absolute(), args.probabilities, args.overlays)
    start, objects, colour = time.perf_counter(), 0, None
    try:
        whole = [dataclasses.replace(j, image=j.image.absolute()) for j in jobs if not j.blocks]
        if client is not None:
            done = Runner(client).map("unetseg-segment-image", segment_job, whole, options)
        else:
            done = [segment_job(job, options)
                    for job in tqdm(whole, desc="predict", unit="image", disable=None)]
        objects += sum(n for n, _ in done)
        colour = next((j.image for j, (_, c) in zip(whole, done, strict=True) if c), None)
        for job in (j for j in jobs if j.blocks):
            found, was_colour = _segment_blocks(job, args, card, postprocess, Runner(client),
                                                block)
            objects += found
            colour = colour or (job.image if was_colour else None)
    finally:
        if client is not None:
            client.close()
    if colour is not None:
        print(f"note: colour images are converted to grayscale (luminance), first {colour}",
              file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"unetseg predict: {len(jobs)} images, {objects} objects, {seconds:.1f} s -> {args.out}")


def _segment_blocks(job: Job, args: argparse.Namespace, card: ModelCard,
                    postprocess: PostprocessParams, runner: Runner,
                    block: int) -> tuple[int, bool]:
    image = open_image(job.image)
    result = segment_blockwise(
        image, args.out / job.mask, model_dir=args.model_dir, card=card,
        postprocess=postprocess, runner=runner, batch_size=args.batch_size, block=block,
        overlap=args.block_overlap,
        probability=args.out / job.probability if args.probabilities else None,
        max_objects=MAX_LABEL16 if job.challenge else None)
    if result.pieces or result.unowned:
        print(f"note: {job.image}: {result.pieces + result.unowned} parts of cells larger than "
              f"--block-overlap allows were labelled apart at block seams; raise "
              f"--block-overlap (now {args.block_overlap} px)", file=sys.stderr)
    return result.objects, image.colour
