"""train: the U-Net family on augmented tiles with the weighted loss, tracked by dvclive, resumable."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()
import keras

from unetseg import cli
from unetseg.config import load_params
from unetseg.data import (TileBatches, contact_tiles, oversample, split_by_sample,
                          weighted_tiles)
from unetseg.errors import InputError
from unetseg.files import atomic_path
from unetseg.store import TileReader
from unetseg.training import (compiled_model, distribution_scope, fingerprint, fit, load_state,
                              samples_per_second)


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="augmented tile store")
    parser.add_argument("--model", type=Path, required=True, help="output .keras model")
    parser.add_argument("--config", type=Path, required=True, help="output model config JSON")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder (plots)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resume checkpoint folder")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    m, p = params.model, params.train
    with TileReader(args.data) as reader:
        if reader.in_size != m.tile_size or reader.out_size != m.out_size:
            raise InputError(f"{args.data}: tiles are {reader.in_size}->{reader.out_size} px but "
                             f"model.tile_size gives {m.tile_size}->{m.out_size}; re-run prepare")
        if len(reader) == 0:
            raise InputError(f"{args.data}: no training tiles")
        train_idx, val_idx = split_by_sample(reader.sample, reader.copy, p.val_fraction, p.seed)
        keep_train, keep_val = weighted_tiles(reader, train_idx), weighted_tiles(reader, val_idx)
        n_unweighted = int((~keep_train).sum() + (~keep_val).sum())
        train_idx, val_idx = train_idx[keep_train], val_idx[keep_val]
        if len(train_idx) == 0:
            raise InputError(f"{args.data}: every training tile has weight 0 (nothing annotated)")
        n_contact = 0
        if p.contact_oversample:
            w0 = float(reader.attr("target")["w0"])
            if w0 <= 0:
                raise InputError("train.contact_oversample: needs weight maps with prepare.w0 > 0 "
                                 f"(Eq. 2's border term finds the contacts); {args.data} has w0 = {w0}")
            chosen = contact_tiles(reader, train_idx, w0)
            n_contact = int(chosen.sum())
            train_idx = oversample(train_idx, chosen, p.contact_oversample)
    keras.utils.set_random_seed(p.seed)
    clip = p.distance_clip if p.distance_weight > 0 else 0.0
    run_id = fingerprint(dataclasses.asdict(m), dataclasses.asdict(p), keras.backend.backend(),
                         files=(args.data,))
    state = load_state(args.checkpoint, run_id)

    def make_live():
        from dvclive import Live

        return Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None)

    with distribution_scope(p.strategy, p.batch_size) as replicas:
        train = TileBatches(args.data, train_idx, p.batch_size, shuffle=True, seed=p.seed,
                            steps=p.steps_per_epoch, distance_clip=clip, multiple=replicas,
                            workers=p.workers)
        val = (TileBatches(args.data, val_idx, p.batch_size, shuffle=False, seed=p.seed,
                           distance_clip=clip, multiple=replicas, workers=p.workers)
               if len(val_idx) >= replicas else None)
        model = compiled_model(m, p, steps_per_epoch=len(train))
        state = fit(model, train, val, p, args.checkpoint, state, make_live)
    output = "logits (B, out, out, 2); softmax channel 1 = cell"
    if clip:
        output = ("logits (B, out, out, 3); softmax of channels 0-1: channel 1 = cell; sigmoid of "
                  f"channel 2 = distance to background / {clip:g} px, clipped at 1")
    config = {"model": dataclasses.asdict(m), "out_size": m.out_size, "n_classes": 2,
              "distance_clip": clip,
              "input": "percentile-normalised (1, 99.8) grayscale, (B, tile, tile, 1) float32",
              "output": output,
              "train": dataclasses.asdict(p), "backend": keras.backend.backend(),
              "keras": keras.__version__, "replicas": replicas, "epochs_done": state.epoch,
              "dtype_policy": model.dtype_policy.name}
    with atomic_path(args.model) as tmp:
        model.save(tmp.with_suffix(".keras"))
        tmp.with_suffix(".keras").rename(tmp)
    cli.write_json(args.config, config)
    history = state.history or {}
    cli.write_json(args.metrics, {
        "loss": round(history["loss"][-1], 6) if "loss" in history else None,
        "val_loss": round(history["val_loss"][-1], 6) if "val_loss" in history else None,
        "pixel_accuracy": round(history["pixel_accuracy"][-1], 6) if "pixel_accuracy" in history else None,
        "samples_per_s": round(samples_per_second(state), 3),
        "epochs": state.epoch, "replicas": replicas, "train_tiles": int(len(train_idx)),
        "val_tiles": int(len(val_idx)),
        "contact_tiles": n_contact, "unweighted_tiles": n_unweighted,
    })
    train.close()
    if val is not None:
        val.close()


if __name__ == "__main__":
    sys.exit(cli.run(main))
