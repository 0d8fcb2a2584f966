"""End to end: DVC itself runs the five stages in a temporary git repo."""

import json
import zipfile

import h5py
import pytest
import tifffile
from test_runtime import BACKEND_LINE

pytestmark = pytest.mark.slow


def test_repro_runs_all_stages_then_nothing(project):
    project.env = {k: v for k, v in project.env.items() if not k.startswith("TF_")}
    first = project.run("dvc", "repro")
    assert "Epoch 2/2" in first.stdout
    assert not BACKEND_LINE.search(first.stdout + first.stderr), "a quiet console: " + first.stderr
    for name in ("ingest", "prepare", "augment", "train", "evaluate"):
        assert (project.path / "metrics" / f"{name}.json").exists(), name
    evaluation = json.loads((project.path / "metrics" / "evaluate.json").read_text())
    for key in ("iou", "seg", "dice", "pixel_error", "rand_error"):
        assert 0.0 <= evaluation[key] <= 1.0, key
    train = json.loads((project.path / "metrics" / "train.json").read_text())
    assert train["samples_per_s"] > 0 and train["epochs"] == 2
    assert (project.path / "models" / "model.keras").exists()
    masks = list((project.path / "data" / "predictions" / "test" / "01_RES").glob("mask*.tif"))
    assert masks, "CTC-style 16-bit mask TIFFs"
    assert list((project.path / "plots" / "evaluate" / "overlays").glob("*.png"))
    errors = sorted((project.path / "plots" / "evaluate" / "errors").glob("*.png"))
    assert len(errors) == len(masks) == evaluation["n_images"], "an error picture per test image"
    assert 0.0 <= evaluation["ap_50"] <= 1.0 and evaluation["n_missed"] >= 0
    status = project.run("dvc", "status")
    assert "up to date" in status.stdout
    again = project.run("dvc", "repro")
    assert "Running stage" not in again.stdout
    project.commit("results")
    assert project.run("git", "status", "--porcelain").stdout.strip() == ""
    assert {"offset_y", "offset_x"} <= evaluation.keys()
    post = json.loads((project.path / "models" / "postprocess.json").read_text())
    assert post["postprocess"]["threshold"] == 0.5 and post["scores"]["seg"] == evaluation["seg"]

    project.set_params({"postprocess": {"threshold": 0.6, "min_size": 3}})
    retuned = project.run("dvc", "repro")
    assert "Running stage 'evaluate'" in retuned.stdout
    assert [s for s in ("ingest", "prepare", "augment", "train")
            if f"Running stage '{s}'" in retuned.stdout] == [], "no retraining to retune"
    post = json.loads((project.path / "models" / "postprocess.json").read_text())
    assert post["postprocess"]["threshold"] == 0.6 and post["postprocess"]["min_size"] == 3


def test_bad_sources_fail_ingest_cleanly_through_dvc(project, tmp_path):
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as z:
        z.writestr("../../escaped.txt", "x")
    cases = {"/no/such/folder": "no such file or folder", str(hostile): str(hostile),
             str(tmp_path / "empty"): str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    for source, expected in cases.items():
        result = project.run("dvc", "exp", "run", "ingest", "-S", f'ingest.source="{source}"',
                             check=False)
        out = result.stdout + result.stderr
        assert result.returncode != 0, source
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and expected in errors[0], out
        assert "Traceback" not in out, out
    for folder in (tmp_path, project.path.parent):
        assert not (folder / "escaped.txt").exists(), folder
    project.run("git", "checkout", "--", "params.yaml")
    project.run("dvc", "repro", "ingest")


def test_scaled_pipeline_trains_small_and_scores_at_full_size(project):
    project.set_params({"prepare": {"resample_factor": 0.5},
                        "synthetic": {"height": 96, "width": 128}})
    project.run("dvc", "repro")
    with h5py.File(project.path / "data" / "prepared" / "train.h5") as train, \
            h5py.File(project.path / "data" / "prepared" / "test.h5") as test:
        shapes = {f["samples"][n]["image"].shape for f in (train, test) for n in f["samples"]}
        tiles = train["tiles"][:]
        assert "tiles" not in test, "evaluate tiles the test images itself"
        assert all(sorted(test["samples"][n]) == ["image", "mask"] for n in test["samples"])
    assert shapes == {(48, 64), (96, 128)}, "train at half size, test at full size"
    assert tiles[:, 1:].max() < 64, "training tiles lie on the half-size grid"
    masks = list((project.path / "data" / "predictions" / "test" / "01_RES").glob("mask*.tif"))
    assert masks and {tifffile.imread(m).shape for m in masks} == {(96, 128)}
    evaluation = json.loads((project.path / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["seg"] <= 1.0


def test_distance_head_trains_and_seeds_the_instances(project):
    project.set_params({"train": {"distance_weight": 1.0, "distance_clip": 8.0},
                        "postprocess": {"instances": "distance"}})
    project.run("dvc", "repro")
    card = json.loads((project.path / "models" / "card.json").read_text())
    assert card["train"]["distance_clip"] == 8.0 and "8 px" in card["channels"][2]
    post = json.loads((project.path / "models" / "postprocess.json").read_text())
    assert post["postprocess"]["instances"] == "distance"
    probe = ("import keras; m = keras.saving.load_model('models/model.keras', compile=False); "
             "print(m.output_shape[-1])")
    assert project.run("python", "-c", probe).stdout.split()[-1] == "3"
    masks = list((project.path / "data" / "predictions" / "test" / "01_RES").glob("mask*.tif"))
    assert masks and all(tifffile.imread(m).dtype == "uint16" for m in masks)
    evaluation = json.loads((project.path / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["seg"] <= 1.0 and evaluation["n_images"] == len(masks)
