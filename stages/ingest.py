"""ingest: a dataset (synthetic, CTC 2D, ISBI-2012 EM; folder, zip or URL) -> PNG pairs + manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unetseg import cli, sources
from unetseg.config import load_params
from unetseg.files import atomic_path
from unetseg.images import write_png


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--cache", type=Path, required=True, help="download/extraction cache")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    train, test = sources.load_split(params.ingest, params.synthetic, args.cache)
    manifest = []
    with atomic_path(args.out) as tmp:
        pairs = [("train", s) for s in train] + [("test", s) for s in test]
        for split, s in tqdm(pairs, desc="ingest", unit="image", disable=None):
            image_path = Path(split, "images", f"{s.name}.png")
            mask_path = Path(split, "masks", f"{s.name}.png")
            write_png(tmp / image_path, s.image)
            write_png(tmp / mask_path, s.mask)
            manifest.append({"split": split, "name": s.name, "image": image_path.as_posix(),
                             "mask": mask_path.as_posix(), "origin": s.origin,
                             "shape": list(s.image.shape), "dtype": str(s.image.dtype),
                             "n_cells": int(np.unique(s.mask[s.mask > 0]).size)})
        cli.write_json(tmp / "manifest.json", {"source": params.ingest.source,
                                               "test_source": params.ingest.test_source,
                                               "pairs": manifest})
    cells = {split: [m["n_cells"] for m in manifest if m["split"] == split] for split in ("train", "test")}
    cli.write_json(args.metrics, {
        "n_train": len(train), "n_test": len(test),
        "cells_train": int(sum(cells["train"])), "cells_test": int(sum(cells["test"])),
        "megapixels": round(sum(np.prod(m["shape"]) for m in manifest) / 1e6, 4),
    })


if __name__ == "__main__":
    sys.exit(cli.run(main))
