"""evaluate: overlap-tile inference on the test split -> instance masks, metrics, overlays."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()
import keras
import numpy as np
from tqdm import tqdm

from unetseg import cli
from unetseg.config import PrepareParams, load_params
from unetseg.ctc import prediction_name
from unetseg.files import atomic_path
from unetseg.images import normalize, write_png, write_tif
from unetseg.errors import InputError
from unetseg.inference import predict_maps
from unetseg.instances import label_instances
from unetseg.metrics import aggregate, evaluate_pair
from unetseg.overlays import outline_overlay, write_rgb_png
from unetseg.resampling import (offset_errors, offset_grid, resample_image, resize_probability,
                                shift_map)
from unetseg.store import PreparedReader
from unetseg.tiling import TileGrid


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--prepared", type=Path, required=True, help="prepared test.h5")
    parser.add_argument("--model", type=Path, required=True, help="trained .keras model")
    parser.add_argument("--config", type=Path, required=True, help="model config JSON")
    parser.add_argument("--out", type=Path, required=True, help="predictions folder")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--plots", type=Path, required=True, help="plots folder (overlays, per-image)")
    args = parser.parse_args(argv)
    e = load_params(args.params).evaluate
    config = json.loads(args.config.read_text())
    model = keras.saving.load_model(args.model, compile=False)
    blend = config["model"]["padding"] == "same"
    clip = float(config.get("distance_clip", 0.0))
    if e.instances == "distance" and not (clip > 0 and model.output_shape[-1] > 2):
        raise InputError(f"evaluate.instances: 'distance' needs a model with a distance head, "
                         f"and {args.model} has none (train it with train.distance_weight > 0)")
    results, per_image = [], []
    offsets = offset_grid()
    shifted_errors = np.zeros(len(offsets), dtype=np.int64)
    with PreparedReader(args.prepared) as reader, atomic_path(args.out) as out, \
            atomic_path(args.plots) as plots:
        in_size, out_size = reader.attr("in_size"), reader.attr("out_size")
        made_with = PrepareParams(**reader.attr("params"))
        tiles, scale = reader.tiles, made_with.resample_factor
        (out / "test").mkdir(parents=True)
        (plots / "overlays").mkdir(parents=True)
        for i, s in enumerate(tqdm(reader, total=len(reader), desc="evaluate", unit="image",
                                   disable=None)):
            work = resample_image(s.image, scale)
            grid = TileGrid(in_size, out_size, tiles[tiles[:, 0] == i, 1:].astype(np.int64),
                            work.shape)
            maps = predict_maps(model, normalize(work), grid, tta=e.tta,
                                batch_size=e.batch_size, blend=blend)

            def on_labels(channel: int) -> np.ndarray:
                return shift_map(resize_probability(maps[..., channel], s.mask.shape),
                                 e.label_offset)

            prob = on_labels(0)
            distance = on_labels(1) * (clip / scale) if e.instances == "distance" else None
            labels = label_instances(prob, threshold=e.threshold, min_size=e.min_size,
                                     method=e.instances, border_px=e.grow_into_gaps_px,
                                     neck_ratio=e.neck_ratio, fill_holes=e.fill_holes,
                                     distance=distance)
            result = evaluate_pair(s.mask, labels)
            shifted_errors += offset_errors(prob, s.mask > 0, e.threshold, offsets)
            results.append(result)
            per_image.append({"name": s.name, **{k: round(float(result[k]), 5)
                                                 for k in ("seg", "iou", "dice")}})
            target = out / "test" / prediction_name(s.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_png(target, labels) if target.suffix == ".png" else write_tif(target, labels)
            if i < e.n_overlays:
                write_rgb_png(plots / "overlays" / f"{s.name}.png",
                              outline_overlay(s.image, s.mask, labels))
        cli.write_json(plots / "per_image.json", per_image)
    summary = aggregate(results)
    summary["offset_y"], summary["offset_x"] = map(float, offsets[np.argmin(shifted_errors)])
    cli.write_json(args.metrics, {k: (round(v, 6) if isinstance(v, float) else v)
                                  for k, v in summary.items()})


if __name__ == "__main__":
    sys.exit(cli.run(main))
