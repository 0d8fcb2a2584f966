"""augment: prepared training images -> elastic/flip/gray-value augmented tiles in HDF5."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from unetseg import cli
from unetseg.augment.tiles import write_tile_store
from unetseg.config import load_params
from unetseg.files import atomic_path, write_json
from unetseg.prepare.store import PreparedReader


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="prepared train.h5")
    parser.add_argument("--out", type=Path, required=True, help="output tile store")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--workers", type=int, default=0, help="processes (0 = one per CPU)")
    args = parser.parse_args(argv)
    a = load_params(args.params).augment
    with PreparedReader(args.prepared) as reader, atomic_path(args.out) as tmp:
        start = time.perf_counter()
        n_tiles = write_tile_store(reader, tmp, a, args.workers or os.cpu_count() or 1)
        seconds = time.perf_counter() - start
        n_images = len(reader)
    augmented = n_tiles // (a.copies + 1) * a.copies
    write_json(args.metrics, {
        "n_images": n_images, "n_tiles": n_tiles, "augmented_tiles": augmented,
        "seconds": round(seconds, 3),
        "samples_per_s": round(augmented / seconds, 3) if augmented else 0.0,
        "tiles_per_s": round(n_tiles / seconds, 3),
    })


if __name__ == "__main__":
    sys.exit(cli.run(main))
