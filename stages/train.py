"""train: the U-Net family on augmented tiles, weighted loss, tracked by dvclive, resumable."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from unetseg.runtime import configure_backend

configure_backend()
import keras

from unetseg import cli
from unetseg.config import load_params
from unetseg.files import atomic_path, write_json
from unetseg.prepare.store import TileReader, recorded_prepare
from unetseg.train.batches import training_batches
from unetseg.train.card import network_card, read_training_data, write_card
from unetseg.train.fit import (
    compiled_model,
    distribution_scope,
    fingerprint,
    fit,
    load_state,
    run_metrics,
)


def main(argv: list[str] | None = None) -> None:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="augmented tile store")
    parser.add_argument("--manifest", type=Path, required=True,
                        help="ingest manifest: what the network trains on, for the card")
    parser.add_argument("--model", type=Path, required=True, help="output .keras model")
    parser.add_argument("--card", type=Path, required=True, help="output model card (card.json)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON")
    parser.add_argument("--live", type=Path, required=True, help="dvclive folder (plots)")
    parser.add_argument("--checkpoint", type=Path, required=True, help="resume checkpoint folder")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    m, p = params.model, params.train
    with TileReader(args.data) as store:
        prepared_with = recorded_prepare(store)
    training_data = read_training_data(args.manifest)
    keras.utils.set_random_seed(p.seed)
    run_id = fingerprint(dataclasses.asdict(m), dataclasses.asdict(p), keras.backend.backend(),
                         files=(args.data,))
    state = load_state(args.checkpoint, run_id)

    def make_live():
        from dvclive import Live

        return Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None)

    with distribution_scope(p.strategy, p.batch_size) as replicas:
        train, val = training_batches(args.data, m, p, replicas)
        model = compiled_model(m, p, steps_per_epoch=len(train))
        state = fit(model, train, val, p, args.checkpoint, state, make_live)
    card = network_card(m, p, prepared_with, backend=keras.backend.backend(), replicas=replicas,
                        epochs=state.epoch, training_data=training_data)
    with atomic_path(args.model) as tmp:
        model.save(tmp.with_suffix(".keras"))
        tmp.with_suffix(".keras").rename(tmp)
    write_card(args.card, card)
    write_json(args.metrics, {**run_metrics(state, len(train.indices),
                                                len(val.indices) if val is not None else 0),
                                  "replicas": replicas})
    train.close()
    if val is not None:
        val.close()


if __name__ == "__main__":
    sys.exit(cli.run(main))
