"""prepare: ingested PNG pairs -> HDF5 with weight maps (paper Eq. 2) and overlap tiles (Fig. 2).

Training images are resampled by ``prepare.resample_factor`` and get their targets and tiles on
the grid the network works on; test images and masks are stored as they are (evaluate resamples
and tiles them on the fly and scores at the original size).
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
from unetseg.files import atomic_path, write_json
from unetseg.images import read_png
from unetseg.prepare.store import PreparedSample, tile_table, write_prepared
from unetseg.prepare.targets import prepared_sample
from unetseg.tiling import tile_step


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--ingested", type=Path, required=True, help="ingest output folder")
    parser.add_argument("--train", type=Path, required=True, help="output train.h5")
    parser.add_argument("--test", type=Path, required=True, help="output test.h5")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    p, m = params.prepare, params.model
    step = tile_step(m.out_size, m.depth, m.padding)
    pairs = json.loads((args.ingested / "manifest.json").read_text())["pairs"]
    attrs = {"prepare": dataclasses.asdict(p), "in_size": m.tile_size, "out_size": m.out_size,
             "step": step, "depth": m.depth, "padding": m.padding}
    metrics: dict[str, float] = {"in_size": m.tile_size, "out_size": m.out_size, "step": step}
    seconds, megapixels = 0.0, 0.0
    samples, positions = [], []
    for e in tqdm([e for e in pairs if e["split"] == "train"], desc="prepare train",
                  unit="image", disable=None):
        image, mask = read_png(args.ingested / e["image"]), read_png(args.ingested / e["mask"])
        start = time.perf_counter()
        sample, tiles = prepared_sample(e["name"], e["origin"], image, mask, p, m)
        seconds += time.perf_counter() - start
        megapixels += sample.mask.size / 1e6
        samples.append(sample)
        positions.append(tiles)
    with atomic_path(args.train) as tmp:
        write_prepared(tmp, samples, attrs, tile_table(positions))
    metrics["n_train"], metrics["tiles_train"] = len(samples), sum(map(len, positions))
    if samples:
        metrics["mean_weight_train"] = round(float(np.mean([s.weights.mean() for s in samples])), 4)
    test = [PreparedSample(e["name"], e["origin"], read_png(args.ingested / e["image"]),
                           read_png(args.ingested / e["mask"]).astype(np.uint16))
            for e in pairs if e["split"] == "test"]
    with atomic_path(args.test) as tmp:
        write_prepared(tmp, test, attrs)
    metrics["n_test"] = len(test)
    metrics["weight_map_s_per_mpx"] = round(seconds / max(megapixels, 1e-9), 5)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    sys.exit(cli.run(main))
