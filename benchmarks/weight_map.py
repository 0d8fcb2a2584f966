"""weight_map (paper Eq. 2) vs. its per-cell-EDT reference and vs. one plain EDT, side by side.

Goals (weights issue): >= 25x faster than the reference at 512² with 30 touching cells,
>= 150x at 1024² with 150, and <= 1.5x the time of ONE scipy ``distance_transform_edt``
of the background mask at both sizes. Also checks agreement (max abs diff) with the
reference, including 2000 tiny 3x3 cells on 512² (``--no-tiny`` skips that slow case).

Masks: a Voronoi tessellation of random seeds (nearest seed via EDT indices), each
region clipped to a disk of radius 0.6 * size / sqrt(n) around its seed, then
``separate_touching``: most neighbours touch across a thin gap and 35-45 % of the
image is background, as in the paper's HeLa images. Times are the best of
``--repeats`` runs of ours and of the EDT, interleaved; the reference is the best of 3
runs at 512² and runs once at 1024² (several seconds).
Prints JSON. Usage: python benchmarks/weight_map.py [--repeats 15] [--no-tiny]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from unetseg.prepare.weights import reference_weight_map, separate_touching, weight_map


def touching_cells(size: int, n_cells: int, seed: int) -> np.ndarray:
    """(size, size) uint16 mask of ``n_cells`` clipped Voronoi cells with thin gaps."""
    rng = np.random.default_rng(seed)
    seeds = rng.choice(size * size, n_cells, replace=False)
    marks = np.zeros(size * size, np.uint16)
    marks[seeds] = np.arange(1, n_cells + 1)
    marks = marks.reshape(size, size)
    dist, (iy, ix) = ndi.distance_transform_edt(marks == 0, return_indices=True)
    labels = marks[iy, ix]
    labels[dist > 0.6 * size / np.sqrt(n_cells)] = 0
    return separate_touching(labels)


def tiny_cells(size: int, n_cells: int, seed: int) -> np.ndarray:
    """(size, size) uint16 mask of ``n_cells`` 3x3 squares on a random subset of a 4-px grid."""
    rng = np.random.default_rng(seed)
    grid = size // 4
    slots = rng.choice(grid * grid, n_cells, replace=False)
    cells = np.zeros((grid, grid), np.uint16)
    cells.flat[slots] = np.arange(1, n_cells + 1)
    labels = np.kron(cells, np.ones((4, 4), np.uint16))
    labels[3::4, :] = 0
    labels[:, 3::4] = 0
    return labels


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def case(size: int, n_cells: int, repeats: int, reference_repeats: int) -> dict[str, float | int]:
    labels = touching_cells(size, n_cells, seed=size + n_cells)
    background = labels == 0
    ours, edt = [], []
    for _ in range(repeats):
        edt.append(_seconds(lambda: ndi.distance_transform_edt(background)))
        ours.append(_seconds(lambda: weight_map(labels)))
    t_ref = float("inf")
    for _ in range(reference_repeats):
        start = time.perf_counter()
        reference = reference_weight_map(labels)
        t_ref = min(t_ref, time.perf_counter() - start)
    t_ours, t_edt = min(ours), min(edt)
    return {
        "size": size, "cells": int(len(np.unique(labels)) - 1),
        "background_fraction": round(float(background.mean()), 3),
        "ours_s": round(t_ours, 5), "reference_s": round(t_ref, 4), "one_edt_s": round(t_edt, 5),
        "speedup_vs_reference": round(t_ref / t_ours, 1),
        "ours_over_one_edt": round(t_ours / t_edt, 3),
        "max_abs_diff": float(np.abs(weight_map(labels) - reference).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-tiny", action="store_true")
    args = parser.parse_args()
    small, large = case(512, 30, args.repeats, 3), case(1024, 150, args.repeats, 1)
    results: dict[str, object] = {
        "goals": {"speedup_512_30": 25, "speedup_1024_150": 150, "max_ours_over_one_edt": 1.5},
        "goals_met": {
            "speedup_512_30": small["speedup_vs_reference"] >= 25,
            "speedup_1024_150": large["speedup_vs_reference"] >= 150,
            "ours_over_one_edt": max(small["ours_over_one_edt"], large["ours_over_one_edt"]) <= 1.5,
        },
        "cases": [small, large],
    }
    if not args.no_tiny:
        labels = tiny_cells(512, 2000, seed=0)
        results["tiny_2000_cells_512_max_abs_diff"] = float(
            np.abs(weight_map(labels) - reference_weight_map(labels)).max())
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
