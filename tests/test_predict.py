"""``unetseg predict`` end to end, on a tiny model that DVC trains in a temporary repo."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from conftest import TINY, Project, Trained, clone_project
from PIL import Image

from unetseg.images import read_png
from unetseg.infer.segmenter import Segmenter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trained_base: Trained) -> Project:
    """The tiny project trained a little longer (3 epochs of 6 steps) by ``dvc repro`` in a copy
    of ``trained_base``, which re-runs train and evaluate only. models/ holds model.keras, card
    and post-processing; data/predictions the masks evaluate wrote with them."""
    project = clone_project(trained_base.project, tmp_path_factory.mktemp("predict") / "proj")
    project.set_params({"train": {**TINY["train"], "epochs": 3, "fixed_steps_per_epoch": 6}})
    ran = project.run("dvc", "repro").stdout
    assert "Running stage 'train'" in ran and "Running stage 'evaluate'" in ran, ran
    return project


def _predict(project: Project, *args: str) -> subprocess.CompletedProcess:
    return project.run(sys.executable, "-m", "unetseg", "predict", *args, check=False)


def _test_frames(project: Project, folder) -> dict[str, np.ndarray]:
    """The test split's images written as a CTC sequence ``folder/tTTT.tif``."""
    folder.mkdir(parents=True)
    frames = {}
    for png in sorted((project.path / "data" / "ingested" / "test" / "images").glob("01_t*.png")):
        number = png.stem.split("_t")[1]
        frames[number] = read_png(png)
        tifffile.imwrite(folder / f"t{number}.tif", frames[number], compression="lzw")
    return frames


def test_ctc_sequence_gives_the_challenge_layout_equal_to_evaluate(trained, tmp_path):
    frames = _test_frames(trained, tmp_path / "01")
    result = _predict(trained, "models", str(tmp_path / "01"), "--out", str(tmp_path / "X"))
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if line.strip()], result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"unetseg predict: {len(frames)} images,") and "objects" in summary
    for number in frames:
        ours = tifffile.imread(tmp_path / "X" / "01_RES" / f"mask{number}.tif")
        theirs = tifffile.imread(trained.path / "data/predictions/test/01_RES" /
                                 f"mask{number}.tif")
        assert ours.dtype == np.uint16
        np.testing.assert_array_equal(ours, theirs)
    assert sorted(p.name for p in (tmp_path / "X").iterdir()) == ["01_RES"]


def test_plain_images_with_every_option_match_the_api(trained, tmp_path):
    frames = _test_frames(trained, tmp_path / "seq" / "01")
    first, second = list(frames.values())[:2]
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(first).save(inputs / "gray.png")
    for name, image in (("rgb_a.png", first), ("rgb_b.png", second)):
        Image.fromarray(np.repeat(image[..., None], 3, axis=-1)).save(inputs / name)
    tifffile.imwrite(tmp_path / "single.tif", second.astype(np.uint16) * 200)
    options = {"threshold": 0.5, "min_size": 5, "tta": True, "instances": "components"}
    result = _predict(trained, "models", str(inputs), str(tmp_path / "single.tif"), "--out",
                      str(tmp_path / "X"), "--threshold", "0.5", "--min-size", "5", "--tta",
                      "--instances", "components", "--batch-size", "3", "--probabilities",
                      "--overlays")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "grayscale" in notes[0] and "rgb_a.png" in notes[0]
    segmenter = Segmenter.load(trained.path / "models", batch_size=3, **options)
    assert segmenter.batch_size == 3
    for stem, image in (("gray", first), ("rgb_a", first), ("rgb_b", second),
                        ("single", second.astype(np.uint16) * 200)):
        labels, prob = segmenter.segment(image, probability=True)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "X" / f"{stem}.tif"), labels)
        written = tifffile.imread(tmp_path / "X" / f"{stem}_prob.tif")
        assert written.dtype == np.float32
        np.testing.assert_allclose(written, prob, atol=1e-6)
        overlay = np.asarray(Image.open(tmp_path / "X" / f"{stem}_overlay.png"))
        assert overlay.shape == (*image.shape, 3)
    default = Segmenter.load(trained.path / "models").segment(first)
    assert not np.array_equal(default, segmenter.segment(first)), "options change the masks"


def test_a_dataset_folder_of_sequences_gives_one_result_folder_each(trained, tmp_path):
    _test_frames(trained, tmp_path / "data" / "01")
    shutil.copytree(tmp_path / "data" / "01", tmp_path / "data" / "02")
    result = _predict(trained, "models", str(tmp_path / "data"), "--out", str(tmp_path / "X"))
    assert result.returncode == 0, result.stderr
    first = sorted(p.name for p in (tmp_path / "X" / "01_RES").iterdir())
    assert first and first == sorted(p.name for p in (tmp_path / "X" / "02_RES").iterdir())


def _bad_card(models, tmp_path):
    shutil.copytree(models, tmp_path / "m")
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    (tmp_path / "m" / "card.json").write_text(json.dumps({**card, "format_version": 99}))
    return "m", "card format 99 is newer"


def _no_card(models, tmp_path):
    (tmp_path / "m").mkdir()
    shutil.copy(models / "model.keras", tmp_path / "m")
    return "m", "no model card"


def _no_postprocess(models, tmp_path):
    shutil.copytree(models, tmp_path / "m")
    (tmp_path / "m" / "postprocess.json").unlink()
    return "m", "no post-processing file (the evaluate stage writes it)"


def _truncated(tmp_path):
    tifffile.imwrite(tmp_path / "in" / "cut.tif", np.arange(64 * 64, dtype=np.uint16)
                     .reshape(64, 64), compression="zlib")
    data = (tmp_path / "in" / "cut.tif").read_bytes()
    (tmp_path / "in" / "cut.tif").write_bytes(data[: len(data) // 3])
    return "in/cut.tif", "cut.tif: cannot read image"


BAD_INPUTS = {
    "truncated image": lambda tmp_path: _truncated(tmp_path),
    "3-D stack": lambda tmp_path: (tifffile.imwrite(tmp_path / "in" / "stack.tif",
                                                    np.ones((3, 20, 20), np.uint8)),
                                   ("in/stack.tif", "3-D"))[1],
    "not an image": lambda tmp_path: ((tmp_path / "in" / "notes.txt").write_text("x"),
                                      ("in/notes.txt", "not an image file"))[1],
    "folder without images": lambda tmp_path: ((tmp_path / "in" / "empty").mkdir(),
                                               ("in/empty", "no images"))[1],
    "missing input": lambda tmp_path: ("in/nothing.tif", "no such file or folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_end_in_one_error_line_and_write_nothing(trained, tmp_path, case):
    (tmp_path / "in").mkdir()
    target, expected = BAD_INPUTS[case](tmp_path)
    trained_models = str(trained.path / "models")
    result = _predict(trained, trained_models, str(tmp_path / target), "--out", str(tmp_path / "X"))
    _assert_one_error(result, expected)
    assert not (tmp_path / "X").exists() or not any((tmp_path / "X").rglob("*"))


@pytest.mark.parametrize("make", [_bad_card, _no_card, _no_postprocess],
                         ids=["newer card", "no card", "no post-processing"])
def test_bad_model_folders_end_in_one_error_line(trained, tmp_path, make):
    model_dir, expected = make(trained.path / "models", tmp_path)
    frames = tmp_path / "01"
    _test_frames(trained, frames)
    result = _predict(trained, str(tmp_path / model_dir), str(frames), "--out", str(tmp_path / "X"))
    _assert_one_error(result, expected)
    missing = _predict(trained, str(tmp_path / "nowhere"), str(frames), "--out",
                       str(tmp_path / "X"))
    _assert_one_error(missing, "no such model folder")
    assert not (tmp_path / "X").exists()


def test_existing_outputs_and_output_inside_input_are_refused(trained, tmp_path):
    frames = tmp_path / "01"
    _test_frames(trained, frames)
    args = ["models", str(frames), "--out", str(tmp_path / "X")]
    assert _predict(trained, *args).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "X").rglob("*.tif")}
    _assert_one_error(_predict(trained, *args), "exists (pass --overwrite")
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "X").rglob("*.tif")} == before
    assert _predict(trained, *args, "--overwrite").returncode == 0
    inside = _predict(trained, "models", str(frames), "--out", str(frames / "masks"))
    _assert_one_error(inside, "inside input folder")
    _assert_one_error(_predict(trained, *args, "--threshold", "1.5"), "--threshold")
    _assert_one_error(_predict(trained, *args, "--batch-size", "0"), "--batch-size")


def test_the_command_lists_its_subcommands():
    ok = subprocess.run([sys.executable, "-m", "unetseg", "--help"], capture_output=True,
                        text=True)
    assert ok.returncode == 0 and "predict" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "unetseg", "train"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "predict" in bad.stderr


def _assert_one_error(result: subprocess.CompletedProcess, expected: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert result.returncode == 1, result.stderr
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
