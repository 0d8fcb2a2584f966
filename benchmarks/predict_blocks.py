"""Block-wise prediction of huge images on dask: time per megapixel, peak memory, equality.

Each size runs in a fresh process, as ``unetseg predict`` does it without ``--scheduler``
(dask's threaded scheduler in one process, which is then the only worker), from a tiled TIFF
read lazily to an OME-Zarr label image, with the network loaded and warmed up first: a trained
model folder given with ``--model-dir`` (e.g. ``models/`` after ``make repro``: real cells to
compare), else the default network (``params.yaml``'s model) with random weights, which finds
few cells (speed and memory do not depend on the weights).
Goals (issue #37): peak RSS <= 2 GB at 16384² on 2 cores; seconds per MP at 16384² within
1.2x of 4096²; and block-wise labels equal to a whole-image pass at 2048² (blocks of 512 px:
every cell matched at IoU >= 0.95, none split or merged). At 4096² the whole-image pass is
timed too, in the same process, for the cost of going block by block.

    python benchmarks/predict_blocks.py [--model-dir models] [--sizes 4096 16384]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from predict_large import _cpu, _image, _model_folder

from unetseg.runtime import configure_backend

configure_backend()

import numpy as np  # noqa: E402
import tifffile  # noqa: E402


def _write_tiff(path: Path, size: int) -> Path:
    tifffile.imwrite(path, _image(size), tile=(512, 512), compression="zlib",
                     bigtiff=size * size >= 2**31, metadata=None)
    return path


def _blockwise(model_dir: Path, image: Path, target: Path, block: int,
               probability: Path | None = None):  # noqa: ANN202 - a BlockResult
    from unetseg.infer.blockwise import segment_blockwise
    from unetseg.infer.cluster import Runner, worker_segmenter
    from unetseg.infer.large_images import open_image
    from unetseg.infer.model_folder import read_model_folder

    card, post = read_model_folder(model_dir)
    return segment_blockwise(open_image(image), target, model_dir=model_dir, card=card,
                             postprocess=post, runner=Runner(), block=block,
                             probability=probability), worker_segmenter(model_dir, post, 4)[0]


def _child(model_dir: Path, size: int, folder: Path, whole: bool) -> dict:
    from unetseg.infer.cluster import worker_segmenter
    from unetseg.infer.model_folder import read_model_folder

    _, post = read_model_folder(model_dir)
    segmenter, _ = worker_segmenter(model_dir, post, 4)
    segmenter.segment(_image(256))
    start = time.perf_counter()
    result, _ = _blockwise(model_dir, folder / f"image{size}.tif",
                           folder / f"labels{size}.ome.zarr", 2048)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    run = {"size": size, "seconds": round(seconds, 3),
           "s_per_mp": round(seconds / (size * size / 1e6), 4), "peak_rss_mb": round(rss, 1),
           "objects": result.objects, "pieces": result.pieces, "blocks": result.blocks}
    if whole:
        start = time.perf_counter()
        segmenter.segment(_image(size))
        whole_s = time.perf_counter() - start
        run["whole_image_s_per_mp"] = round(whole_s / (size * size / 1e6), 4)
        run["blockwise_vs_whole_time_ratio"] = round(seconds / whole_s, 3)
    return run


def _equality(model_dir: Path, size: int, folder: Path) -> dict:
    """Block-wise (512 px blocks) against one whole-image pass, labels and probabilities."""
    from unetseg.infer.large_images import open_level0
    from unetseg.score.matching import match_labels

    image = _write_tiff(folder / "equal.tif", size)
    result, segmenter = _blockwise(model_dir, image, folder / "equal.ome.zarr", 512,
                                   folder / "equal_prob.ome.zarr")
    blocks = np.asarray(open_level0(folder / "equal.ome.zarr"))
    prob = np.asarray(open_level0(folder / "equal_prob.ome.zarr"))
    whole, whole_prob = segmenter.segment(tifffile.imread(image), probability=True)
    m = match_labels(whole, blocks, thresholds=(0.5, 0.95))
    return {"size": size, "block": 512, "blocks": result.blocks, "cells_whole": int(whole.max()),
            "cells_blockwise": int(blocks.max()), "matched_iou_95": int(m.tp[1]),
            "split": m.count("reference", "split"), "merged": m.count("reference", "merged"),
            "labels_identical": bool(np.array_equal(whole, blocks)),
            "probability_max_abs_diff": float(np.abs(prob - whole_prob).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--equal-size", type=int, default=2048)
    parser.add_argument("--model-dir", type=Path, help="a trained model folder (copied first)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.model_dir, args.child, args.folder, args.whole)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        trained = args.model_dir is not None
        model_dir = shutil.copytree(args.model_dir, Path(tmp) / "model") if trained \
            else _model_folder(Path(tmp) / "model")
        runs = []
        for size in args.sizes:
            _write_tiff(Path(tmp) / f"image{size}.tif", size)  # here: not in the child's memory
            out = subprocess.run([sys.executable, __file__, "--child", str(size), "--model-dir",
                                  str(model_dir), "--folder", tmp]
                                 + ["--whole"] * (size == min(args.sizes)),
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            for name in (f"image{size}.tif", f"labels{size}.ome.zarr"):
                shutil.rmtree(Path(tmp) / name, ignore_errors=True)
                (Path(tmp) / name).unlink(missing_ok=True)
        equal = _equality(model_dir, args.equal_size, Path(tmp))
    first, last = runs[0], runs[-1]
    print(json.dumps({
        "benchmark": "predict_blocks", "cpu": _cpu(), "scheduler": "local threads (default)",
        "weights": "trained" if trained else "random",
        "runs": runs,
        "time_ratio_per_mp_largest_vs_smallest": round(last["s_per_mp"] / first["s_per_mp"], 3),
        "goal_time_ratio_at_most": 1.2,
        "peak_rss_mb_largest": last["peak_rss_mb"], "goal_peak_rss_mb_at_most": 2048,
        "equality": equal,
    }, indent=2))


if __name__ == "__main__":
    main()
