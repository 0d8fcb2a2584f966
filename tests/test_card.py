"""The model card: round trip, and a reader that refuses what it does not know."""

import json

import pytest

from unetseg.config import ModelParams, PrepareParams, TrainParams
from unetseg.errors import InputError
from unetseg.train.card import (
    CARD_VERSION,
    ModelCard,
    TrainingData,
    network_card,
    read_card,
    read_training_data,
    write_card,
)

DATA = TrainingData(source="/data/DIC-C2DH-HeLa.zip", layout="ctc", annotations="gt+st",
                    n_images=7, test_split="seeded split of the GT pairs")


def _card(**train) -> ModelCard:
    return network_card(ModelParams(depth=2, base_filters=4, tile_size=60), TrainParams(**train),
                        PrepareParams(resample_factor=0.5), backend="tensorflow", replicas=1,
                        epochs=3, training_data=DATA)


def test_round_trip_keeps_every_field(tmp_path):
    card = _card()
    write_card(tmp_path / "card.json", card)
    again = read_card(tmp_path / "card.json")
    assert again == card
    assert again.out_size == 20 and again.step == 20 and again.prepare.resample_factor == 0.5
    assert again.versions["keras"] and again.versions["numpy"]
    assert not again.has_distance and again.distance_px == 0 and len(again.channels) == 2
    assert again.training_data == DATA


def test_a_network_trained_outside_the_pipeline_has_no_training_data(tmp_path):
    card = network_card(ModelParams(), TrainParams(), PrepareParams(), backend="jax",
                        replicas=1, epochs=1)
    write_card(tmp_path / "card.json", card)
    assert read_card(tmp_path / "card.json").training_data is None


def _manifest(tmp_path, **changes):
    raw = {"source": DATA.source, "test_source": "", "annotations": "gt+st", "layout": "ctc",
           "split_gap": 3, "protocol": DATA.test_split, "left_out": [],
           "pairs": [{"split": "train"}] * DATA.n_images + [{"split": "test"}] * 2}
    raw.update(changes)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({k: v for k, v in raw.items() if v is not None}))
    return path


def test_the_training_data_comes_from_the_ingest_manifest(tmp_path):
    assert read_training_data(_manifest(tmp_path)) == DATA
    for changes, expected in [({"layout": None}, "(no 'layout'); re-run the ingest stage"),
                              ({"layout": "tiff"}, "training_data.layout: must be one of"),
                              ({"pairs": 3}, "not an ingest manifest"),
                              ({"source": 1}, "training_data.source: must be a string")]:
        with pytest.raises(InputError) as err:
            read_training_data(_manifest(tmp_path, **changes))
        assert str(err.value).startswith(str(tmp_path)) and expected in str(err.value)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(InputError, match="no ingest manifest"):
        read_training_data(tmp_path / "manifest.json")


def test_the_distance_head_follows_the_training_params(tmp_path):
    card = _card(distance_weight=1.0, distance_clip=12.0)
    assert card.has_distance and card.distance_px == 12.0
    assert len(card.channels) == 3 and "12 px" in card.channels[2]
    write_card(tmp_path / "card.json", card)
    assert read_card(tmp_path / "card.json") == card


def _edit(tmp_path, change):
    raw = _card().to_dict()
    change(raw)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        read_card(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_unknown_and_missing_keys_are_refused(tmp_path):
    assert "unknown key(s) colour" in _edit(tmp_path, lambda r: r.update(colour="red"))
    assert "missing key(s) backend" in _edit(tmp_path, lambda r: r.pop("backend"))
    assert "model: missing key(s) depth" in _edit(tmp_path, lambda r: r["model"].pop("depth"))
    assert "model.wide" in _edit(tmp_path, lambda r: r["model"].update(wide=True))
    assert "unknown key(s) evaluate" in _edit(tmp_path, lambda r: r.update(evaluate={}))
    assert "missing key(s) training_data" in _edit(tmp_path, lambda r: r.pop("training_data"))
    assert "training_data: expected null or the keys" in _edit(
        tmp_path, lambda r: r["training_data"].pop("layout"))
    assert "training_data.n_images" in _edit(
        tmp_path, lambda r: r["training_data"].update(n_images=-1))


def test_other_formats_and_bad_values_are_refused(tmp_path):
    newer = _edit(tmp_path, lambda r: r.update(format_version=CARD_VERSION + 1))
    assert "newer" in newer and "upgrade" in newer
    older = _edit(tmp_path, lambda r: r.update(format_version=CARD_VERSION - 1))
    assert "older" in older and "re-run the train stage" in older
    assert "model.depth" in _edit(tmp_path, lambda r: r["model"].update(depth=0))
    assert "out_size" in _edit(tmp_path, lambda r: r.update(out_size=99))
    assert "channels" in _edit(tmp_path, lambda r: r.update(channels=["one"]))
    assert "channels" in _edit(tmp_path, lambda r: r["train"].update(distance_weight=1.0))
    assert "normalize_percentiles" in _edit(tmp_path,
                                            lambda r: r.update(normalize_percentiles=[1]))


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no model card"):
        read_card(tmp_path / "card.json")
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_card(tmp_path / "card.json")
