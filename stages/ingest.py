"""ingest: a dataset (synthetic, CTC 2D, ISBI-2012 EM; folder, zip or URL) -> PNG pairs + manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unetseg import cli, ctc, sources, synthetic
from unetseg.config import IngestParams, Params, load_params
from unetseg.dataset import (ANNOTATION_KINDS, Annotation, Sample, Split, hold_out,
                             split_annotated, training_pool)
from unetseg.files import atomic_path
from unetseg.images import write_png


def _load(source: str, sha256: str, kinds: tuple[Annotation, ...], params: Params,
          cache: Path) -> tuple[Path | None, dict[str, list[Sample]]]:
    if source == "synthetic":
        s = params.synthetic
        return None, {"gt": synthetic.generate(s.n_images, s.height, s.width, s.n_cells, s.seed)}
    folder = sources.resolve_source(source, sha256=sha256, cache_dir=cache)
    return folder, {kind: sources.read_samples(folder, kind) for kind in kinds}


def _split(p: IngestParams, params: Params, cache: Path) -> Split:
    kinds = ANNOTATION_KINDS[p.annotations]
    if p.test_source:
        folder, read = _load(p.source, p.sha256, kinds, params, cache)
        _, held = _load(p.test_source, p.test_sha256, ("gt",), params, cache)
        shared = ctc.shared_sequences(folder, held["gt"]) if folder else set()
        pool = training_pool(read.get("gt", []), read.get("st", []), p.annotations)
        return hold_out(pool, held["gt"], p.split_gap, shared)
    if p.test_fraction > 0:
        kinds = ("gt", *(k for k in kinds if k != "gt"))  # test frames are drawn from the GT
    _, read = _load(p.source, p.sha256, kinds, params, cache)
    return split_annotated(read.get("gt", []), read.get("st", []), p.annotations,
                           p.test_fraction, p.seed, p.split_gap)


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--cache", type=Path, required=True, help="download/extraction cache")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    p = params.ingest
    split = _split(p, params, args.cache)
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
        cli.write_json(tmp / "manifest.json", {
            "source": p.source, "test_source": p.test_source, "annotations": p.annotations,
            "split_gap": p.split_gap, "pairs": manifest, "left_out": left_out})
    cells = {part: [m["n_cells"] for m in manifest if m["split"] == part]
             for part in ("train", "test")}
    cli.write_json(args.metrics, {
        "n_train": len(split.train), "n_test": len(split.test),
        "n_train_st": sum(s.annotation == "st" for s in split.train),
        "n_left_out": len(split.left_out),
        "cells_train": int(sum(cells["train"])), "cells_test": int(sum(cells["test"])),
        "megapixels": round(sum(np.prod(m["shape"]) for m in manifest) / 1e6, 4),
    })


if __name__ == "__main__":
    sys.exit(cli.run(main))
