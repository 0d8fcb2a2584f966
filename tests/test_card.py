"""The model card: round trip, and a reader that refuses what it does not know."""

import json

import pytest

from unetseg.train.card import (CARD_VERSION, ModelCard, network_card, read_card, read_model_folder,
                          write_card)
from unetseg.config import EvaluateParams, ModelParams, PrepareParams, TrainParams
from unetseg.errors import InputError


def _network() -> ModelCard:
    return network_card(ModelParams(depth=2, base_filters=4, tile_size=60), TrainParams(),
                        PrepareParams(resample_factor=0.5), distance_clip=0.0, backend="tensorflow",
                        replicas=1, epochs=3)


def _card(**evaluate) -> ModelCard:
    return _network().evaluated(EvaluateParams(**evaluate), {"seg": 0.9})


def test_round_trip_keeps_every_field(tmp_path):
    card = _card(threshold=0.6, tta=True)
    write_card(tmp_path / "card.json", card)
    again = read_card(tmp_path / "card.json")
    assert again == card
    assert again.out_size == 20 and again.step == 20 and again.prepare.resample_factor == 0.5
    assert again.evaluate.threshold == 0.6 and again.scores == {"seg": 0.9}
    assert again.versions["keras"] and again.versions["numpy"]


def test_network_card_has_no_post_processing_until_evaluated(tmp_path):
    card = _network()
    assert card.evaluate is None and card.scores is None
    with pytest.raises(InputError, match="no post-processing"):
        card.postprocess()
    (tmp_path / "m").mkdir()
    write_card(tmp_path / "m" / "card.json", card)
    with pytest.raises(InputError, match="holds no post-processing"):
        read_model_folder(tmp_path / "m")


def test_overrides_are_validated_like_params():
    card = _card()
    assert card.postprocess(threshold=0.3).threshold == 0.3
    with pytest.raises(InputError, match="evaluate.threshold"):
        card.postprocess(threshold=1.5)


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


def test_newer_format_and_bad_values_are_refused(tmp_path):
    newer = _edit(tmp_path, lambda r: r.update(format_version=CARD_VERSION + 1))
    assert "newer" in newer and "upgrade" in newer
    assert "model.depth" in _edit(tmp_path, lambda r: r["model"].update(depth=0))
    assert "out_size" in _edit(tmp_path, lambda r: r.update(out_size=99))
    assert "channels" in _edit(tmp_path, lambda r: r.update(channels=["one"]))
    assert "normalize_percentiles" in _edit(tmp_path,
                                            lambda r: r.update(normalize_percentiles=[1]))


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="no model card"):
        read_card(tmp_path / "card.json")
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_card(tmp_path / "card.json")
    with pytest.raises(InputError, match="no such model folder"):
        read_model_folder(tmp_path / "nowhere")
    write_card(tmp_path / "card.json", _card())
    with pytest.raises(InputError, match="no model.keras"):
        read_model_folder(tmp_path)
