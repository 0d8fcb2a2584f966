"""The model folder: post-processing file round trip, overrides, and what a folder must hold."""

import json

import pytest

from unetseg.config import ModelParams, PostprocessParams, PrepareParams, TrainParams
from unetseg.errors import InputError
from unetseg.infer.model_folder import (
    POSTPROCESS_FILE,
    read_model_folder,
    read_postprocess,
    with_overrides,
    write_postprocess,
)
from unetseg.train.card import CARD_FILE, WEIGHTS_FILE, network_card, write_card

DEFAULT = PostprocessParams()


def _folder(tmp_path, weights=True, postprocess=DEFAULT, **train):
    folder = tmp_path / "m"
    folder.mkdir(parents=True)
    write_card(folder / CARD_FILE, network_card(
        ModelParams(depth=2, base_filters=4, tile_size=60), TrainParams(**train), PrepareParams(),
        backend="tensorflow", replicas=1, epochs=1))
    if postprocess is not None:
        write_postprocess(folder / POSTPROCESS_FILE, postprocess, {"seg": 0.9})
    if weights:
        (folder / WEIGHTS_FILE).write_bytes(b"not read here")
    return folder


def test_round_trip_keeps_the_post_processing_and_its_scores(tmp_path):
    post = PostprocessParams(threshold=0.6, tta=True, instances="watershed")
    write_postprocess(tmp_path / "p.json", post, {"seg": 0.9, "iou": 0.8})
    assert read_postprocess(tmp_path / "p.json") == (post, {"seg": 0.9, "iou": 0.8})


def test_a_model_folder_gives_its_card_and_post_processing(tmp_path):
    card, post = read_model_folder(_folder(tmp_path, postprocess=PostprocessParams(min_size=7)))
    assert post.min_size == 7 and card.out_size == 20


def test_overrides_are_validated_like_params():
    post = PostprocessParams()
    assert with_overrides(post, threshold=0.3).threshold == 0.3
    assert with_overrides(post) == post
    with pytest.raises(InputError, match="postprocess.threshold"):
        with_overrides(post, threshold=1.5)
    with pytest.raises(InputError, match="postprocess.colour: unknown key"):
        with_overrides(post, colour="red")


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda r: r.update(colour=1), "expected exactly the keys"),
    (lambda r: r.update(format_version=2), "newer than this unetseg reads"),
    (lambda r: r["postprocess"].pop("tta"), "postprocess: missing key(s) tta"),
    (lambda r: r["postprocess"].update(threshold=2), "postprocess.threshold"),
    (lambda r: r.update(scores={"seg": "high"}), "scores: must map names to numbers"),
])
def test_bad_post_processing_files_are_one_line_errors(tmp_path, edit, expected):
    path = tmp_path / "p.json"
    write_postprocess(path, PostprocessParams(), {"seg": 0.5})
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        read_postprocess(path)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_incomplete_folders_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such model folder"):
        read_model_folder(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no post-processing file"):
        read_model_folder(_folder(tmp_path / "a", postprocess=None))
    with pytest.raises(InputError, match="no model.keras"):
        read_model_folder(_folder(tmp_path / "b", weights=False))
    with pytest.raises(InputError, match="needs a model with a distance head"):
        read_model_folder(_folder(tmp_path / "c", postprocess=PostprocessParams(
            instances="distance")))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / POSTPROCESS_FILE).write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        read_postprocess(tmp_path / "d" / POSTPROCESS_FILE)
