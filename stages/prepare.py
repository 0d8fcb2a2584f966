"""prepare: ingested PNG pairs -> HDF5 with weight maps (paper Eq. 2) and overlap tiles (Fig. 2).

Training images are resampled by ``prepare.scale``; test images keep their resolution
(evaluate resamples them on the fly and scores at the original size), and the tiles of
both are laid out on the grid the network works on.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unetseg import cli
from unetseg.config import load_params
from unetseg.files import atomic_path
from unetseg.images import read_png
from unetseg.resampling import resample_image, resample_mask, scaled_shape
from unetseg.store import PreparedSample, write_prepared
from unetseg.targets import target_options, training_target
from unetseg.tiling import tile_grid, tile_step


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--ingested", type=Path, required=True, help="ingest output folder")
    parser.add_argument("--train", type=Path, required=True, help="output train.h5")
    parser.add_argument("--test", type=Path, required=True, help="output test.h5")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    p, m = params.prepare, params.model
    in_size, out_size = m.tile_size, m.out_size
    step = tile_step(out_size, m.depth, m.padding)
    pairs = json.loads((args.ingested / "manifest.json").read_text())["pairs"]
    attrs = {"params": dataclasses.asdict(p), "in_size": in_size, "out_size": out_size,
             "step": step, "depth": m.depth, "padding": m.padding}
    metrics: dict[str, float] = {"in_size": in_size, "out_size": out_size, "step": step}
    weight_seconds, megapixels = 0.0, 0.0
    for split, target in (("train", args.train), ("test", args.test)):
        samples, tiles = [], []
        for entry in tqdm([e for e in pairs if e["split"] == split], desc=f"prepare {split}",
                          unit="image", disable=None):
            image = read_png(args.ingested / entry["image"])
            mask = read_png(args.ingested / entry["mask"])
            grid = tile_grid(scaled_shape(mask.shape, p.scale), in_size, out_size, step)
            if split == "train":
                image, mask = resample_image(image, p.scale), resample_mask(mask, p.scale)
            start = time.perf_counter()
            classes, weights = training_target(mask, **target_options(p))
            weight_seconds += time.perf_counter() - start
            megapixels += mask.size / 1e6
            index = np.full((len(grid.positions), 1), len(samples), dtype=np.int32)
            tiles.append(np.hstack([index, grid.positions.astype(np.int32)]))
            samples.append(PreparedSample(entry["name"], entry["origin"], image,
                                          mask.astype(np.uint16), classes, weights))
        all_tiles = np.concatenate(tiles) if tiles else np.zeros((0, 3), np.int32)
        with atomic_path(target) as tmp:
            write_prepared(tmp, samples, all_tiles, attrs)
        metrics[f"n_{split}"] = len(samples)
        metrics[f"tiles_{split}"] = len(all_tiles)
        if split == "train" and samples:
            metrics["mean_weight_train"] = round(float(np.mean([s.weights.mean() for s in samples])), 4)
    metrics["weight_map_s_per_mpx"] = round(weight_seconds / max(megapixels, 1e-9), 5)
    cli.write_json(args.metrics, metrics)


if __name__ == "__main__":
    sys.exit(cli.run(main))
