"""augment: prepared training images -> elastic/flip/gray-value augmented tiles in HDF5."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from unetseg import cli
from unetseg.config import PrepareParams, load_params
from unetseg.files import atomic_path
from unetseg.store import PreparedReader, TileWriter
from unetseg.targets import target_options
from unetseg.tileset import TileJob, build_tiles
from unetseg.tiling import TileGrid


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="prepared train.h5")
    parser.add_argument("--out", type=Path, required=True, help="output tile store")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--workers", type=int, default=0, help="processes (0 = one per CPU)")
    args = parser.parse_args(argv)
    a = load_params(args.params).augment
    augment_kw = {k: v for k, v in dataclasses.asdict(a).items() if k not in ("copies", "seed")}
    with PreparedReader(args.prepared) as reader:
        in_size, out_size = reader.attr("in_size"), reader.attr("out_size")
        target_kw = target_options(PrepareParams(**reader.attr("params")))
        tiles = reader.tiles
        counts = [int((tiles[:, 0] == i).sum()) for i in range(len(reader))]

        def jobs() -> Iterator[TileJob]:
            for i, sample in enumerate(reader):
                grid = TileGrid(in_size, out_size, tiles[tiles[:, 0] == i, 1:].astype("int64"),
                                sample.mask.shape)
                yield TileJob(i, sample, grid, a.copies, a.seed, augment_kw, target_kw)

        n_tiles = sum(counts) * (a.copies + 1)
        workers = args.workers or os.cpu_count() or 1
        start = time.perf_counter()
        with atomic_path(args.out) as tmp, TileWriter(tmp, n_tiles, in_size, out_size,
                                                      {"augment": dataclasses.asdict(a),
                                                       "target": target_kw,
                                                       "prepare": reader.attr("params")}) as writer:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                results = pool.imap(build_tiles, jobs()) if workers > 1 else map(build_tiles, jobs())
                for i, per_copy in enumerate(tqdm(results, total=len(reader), desc="augment",
                                                  unit="image", disable=None)):
                    for copy, inputs, classes, weights in per_copy:
                        writer.append(inputs, classes, weights, i, copy)
        seconds = time.perf_counter() - start
    augmented = sum(counts) * a.copies
    cli.write_json(args.metrics, {
        "n_images": len(counts), "n_tiles": n_tiles, "augmented_tiles": augmented,
        "seconds": round(seconds, 3),
        "samples_per_s": round(augmented / seconds, 3) if augmented else 0.0,
        "tiles_per_s": round(n_tiles / seconds, 3),
    })


if __name__ == "__main__":
    sys.exit(cli.run(main))
