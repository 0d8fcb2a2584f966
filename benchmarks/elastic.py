"""Elastic deformation: unetseg.augment.deform vs. the `elasticdeform` package, side by side.

Both deform the same 512 x 512 image (cubic), instance mask (nearest) and weight map (cubic)
with a 3 x 3 grid and sigma = 10 px (paper §3.1). ``ratio`` compares like with like: mirrored
borders on both sides (elasticdeform ``mode="reflect"``, as ours); elasticdeform's default
``mode="constant"`` is timed too. Goal (augment issue): ours at least as fast.
Also times one full ``augment_pair`` (default AugmentParams) on 256 x 256 and 512 x 512.

elasticdeform is only a yardstick, never a dependency: its NumPy-1 wheel does not load on
NumPy 2, so it is built from the PyPI source into ``benchmarks/.cache/elasticdeform`` (git-ignored)
with ``pip install --target`` and put on ``sys.path`` of this process, so both sides share the
project's NumPy. If that fails the comparison is skipped and the JSON says why.
Prints JSON: best-of-``--repeats`` seconds and ``ratio`` = elasticdeform / ours (> 1: ours faster),
plus the mask's nearest-neighbour resampling by rounded indices vs. ``map_coordinates(order=0)``.
Usage: python benchmarks/elastic.py [--size 512] [--repeats 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from unetseg.augment.deform import (
    augment_pair,
    elastic_field,
    sampling_coords,
    warp_image,
    warp_labels,
)
from unetseg.config import AugmentParams

CACHE = Path(__file__).resolve().parent / ".cache" / "elasticdeform"


def load_elasticdeform() -> ModuleType | str:
    """The elasticdeform module, built from source into the cache if needed, or why not."""
    if not any(CACHE.glob("elasticdeform/__init__.py")):
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--no-binary", "elasticdeform", "--target", str(CACHE), "elasticdeform"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"skipped: building elasticdeform from source failed: {tail[0]}"
    sys.path.insert(0, str(CACHE))
    try:
        return importlib.import_module("elasticdeform")
    except ImportError as err:
        return f"skipped: elasticdeform does not import: {err}"


def best_of(functions: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time per function, the functions interleaved so machine noise hits all alike."""
    for f in functions.values():
        f()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, f in functions.items():
            start = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def synthetic_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(size, size) float32 image, uint16 mask of blobs and float32 weight map."""
    rng = np.random.default_rng(seed)
    smooth = ndi.gaussian_filter(rng.random((size, size)), 6)
    mask, _ = ndi.label(smooth > np.median(smooth))
    image = (0.5 * (mask > 0) + 0.5 * rng.random((size, size))).astype(np.float32)
    weights = (1 + 9 * np.exp(-ndi.distance_transform_edt(mask > 0) / 5)).astype(np.float32)
    return image, mask.astype(np.uint16), weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    image, mask, weights = synthetic_pair(args.size)
    rng = np.random.default_rng(0)

    def ours() -> list[np.ndarray]:
        coords = sampling_coords(image.shape, elastic_field(image.shape, 3, 10.0, rng))
        return [warp_image(image, coords), warp_labels(mask, coords), warp_image(weights, coords)]

    report: dict[str, Any] = {"benchmark": "elastic", "size": args.size,
                              "arrays": "image, mask, weights", "order": [3, 0, 3], "sigma": 10.0,
                              "points": 3, "repeats": args.repeats}
    elasticdeform = load_elasticdeform()
    functions: dict[str, Callable[[], Any]] = {"ours": ours}
    if isinstance(elasticdeform, str):
        report["elasticdeform"] = elasticdeform
    else:
        report["elasticdeform"] = f"{metadata.version('elasticdeform')} (built from source)"
        for mode in ("reflect", "constant"):
            functions[f"elasticdeform_{mode}"] = functools.partial(
                elasticdeform.deform_random_grid, [image, mask, weights], sigma=10.0, points=3,
                order=[3, 0, 3], mode=mode)
    seconds = best_of(functions, args.repeats)
    report["seconds"] = {name: round(s, 5) for name, s in seconds.items()}
    if "elasticdeform_reflect" in seconds:
        report["ratio"] = round(seconds["elasticdeform_reflect"] / seconds["ours"], 3)
        report["ratio_vs_default_constant_mode"] = round(
            seconds["elasticdeform_constant"] / seconds["ours"], 3)
        report["goal"] = "ratio >= 1 (ours at least as fast)"
    coords = sampling_coords(image.shape, elastic_field(image.shape, 3, 10.0, rng))
    nearest = best_of({"rounded_index": lambda: warp_labels(mask, coords),
                       "map_coordinates_order0": lambda: ndi.map_coordinates(mask, coords, order=0,
                                                                             mode="reflect")},
                      args.repeats)
    report["mask_nearest_seconds"] = {name: round(s, 5) for name, s in nearest.items()}
    params = {k: v for k, v in dataclasses.asdict(AugmentParams()).items()
              if k not in ("copies", "seed")}
    pair_seconds = {}
    for size in (256, 512):
        img, msk, _ = synthetic_pair(size)
        pair_seconds[str(size)] = round(best_of(
            {"pair": functools.partial(augment_pair, img, msk, rng, **params)},
            args.repeats)["pair"], 5)
    report["augment_pair_seconds"] = pair_seconds
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
