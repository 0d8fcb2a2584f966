"""ingest: a dataset (synthetic, CTC 2D, ISBI-2012 EM; folder, zip, URL) -> PNG pairs, manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unetseg import cli
from unetseg.config import load_params
from unetseg.data.datasets import load_split, training_layout
from unetseg.files import atomic_path, write_json
from unetseg.images import write_png


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--cache", type=Path, required=True, help="download/extraction cache")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    p = params.ingest
    split = load_split(p, params.synthetic, args.cache)
    manifest = []
    with atomic_path(args.out) as tmp:
        pairs = [("train", s) for s in split.train] + [("test", s) for s in split.test]
        for part, s in tqdm(pairs, desc="ingest", unit="image", disable=None):
            image_path = Path(part, "images", f"{s.name}.png")
            mask_path = Path(part, "masks", f"{s.name}.png")
            write_png(tmp / image_path, s.image)
            write_png(tmp / mask_path, s.mask)
            manifest.append({"split": part, "name": s.name, "image": image_path.as_posix(),
                             "mask": mask_path.as_posix(), "origin": s.origin,
                             "annotation": s.annotation, "shape": list(s.image.shape),
                             "dtype": str(s.image.dtype),
                             "n_cells": int(np.unique(s.mask[s.mask > 0]).size)})
        left_out = [{"name": o.sample.name, "origin": o.sample.origin, "near": o.near,
                     "distance": o.distance, "annotation": o.sample.annotation}
                    for o in split.left_out]
        write_json(tmp / "manifest.json", {
            "source": p.source, "test_source": p.test_source, "annotations": p.annotations,
            "layout": training_layout(p.source, split),
            "split_gap": p.split_gap, "protocol": split.protocol, "pairs": manifest,
            "left_out": left_out})
    cells = {part: [m["n_cells"] for m in manifest if m["split"] == part]
             for part in ("train", "test")}
    write_json(args.metrics, {
        "n_train": len(split.train), "n_test": len(split.test),
        "n_train_st": sum(s.annotation == "st" for s in split.train),
        "n_train_completed": sum(s.annotation == "gt+st" for s in split.train),
        "n_left_out": len(split.left_out),
        "cells_train": int(sum(cells["train"])), "cells_test": int(sum(cells["test"])),
        "megapixels": round(sum(np.prod(m["shape"]) for m in manifest) / 1e6, 4),
    })


if __name__ == "__main__":
    sys.exit(cli.run(main))
