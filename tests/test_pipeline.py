"""End to end: DVC itself runs the five stages in a temporary git repo."""

import json
import zipfile

import h5py
import numpy as np
import pytest
import tifffile

from unetseg.data import contact_tiles, split_by_sample, weighted_tiles
from unetseg.store import TileReader
from unetseg.targets import annotated_region

pytestmark = pytest.mark.slow


def test_repro_runs_all_stages_then_nothing(project):
    project.run("dvc", "repro")
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
    status = project.run("dvc", "status")
    assert "up to date" in status.stdout
    again = project.run("dvc", "repro")
    assert "Running stage" not in again.stdout
    project.commit("results")
    assert project.run("git", "status", "--porcelain").stdout.strip() == ""
    assert {"offset_y", "offset_x"} <= evaluation.keys()


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


def test_scaled_eroded_pipeline_trains_small_and_scores_at_full_size(project):
    project.set_params({"prepare": {"scale": 0.5, "erode_px": 2},
                        "synthetic": {"height": 96, "width": 128}})
    project.run("dvc", "repro")
    with h5py.File(project.path / "data" / "prepared" / "train.h5") as train, \
            h5py.File(project.path / "data" / "prepared" / "test.h5") as test:
        shapes = {f["samples"][n]["image"].shape for f in (train, test) for n in f["samples"]}
        tiles = test["tiles"][:]
        cells = [(g["classes"][()] > 0, g["mask"][()] > 0) for g in train["samples"].values()]
    assert all((target <= drawn).all() for target, drawn in cells), "targets lie inside masks"
    assert sum(t.sum() for t, _ in cells) < 0.8 * sum(d.sum() for _, d in cells), "eroded"
    with h5py.File(project.path / "data" / "augmented" / "train.h5") as augmented:
        assert json.loads(augmented.attrs["target"])["erode"] == 2
    assert shapes == {(48, 64), (96, 128)}, "train at half size, test at full size"
    assert tiles[:, 1:].max() < 64, "test tiles lie on the half-size grid"
    masks = list((project.path / "data" / "predictions" / "test" / "01_RES").glob("mask*.tif"))
    assert masks and {tifffile.imread(m).shape for m in masks} == {(96, 128)}
    evaluation = json.loads((project.path / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["seg"] <= 1.0


def test_contact_oversampling_draws_touching_cells_more_often(project):
    project.set_params({"train": {"contact_oversample": 3}})
    project.run("dvc", "repro", "train")
    with TileReader(project.path / "data" / "augmented" / "train.h5") as reader:
        train_idx, _ = split_by_sample(reader.sample, reader.copy, 0.15, 0)
        n_contact = int(contact_tiles(reader, train_idx, 10.0).sum())
    trained = json.loads((project.path / "metrics" / "train.json").read_text())
    assert 0 < n_contact < len(train_idx) and trained["contact_tiles"] == n_contact
    assert trained["train_tiles"] == len(train_idx) + 3 * n_contact, "contact tiles drawn 4x"


def test_contact_oversampling_without_border_weights_fails_cleanly(project):
    project.set_params({"prepare": {"w0": 0.0}, "train": {"contact_oversample": 2}})
    result = project.run("dvc", "repro", check=False)
    out = result.stdout + result.stderr
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, out
    assert "train.contact_oversample" in errors[0] and "w0 = 0.0" in errors[0], out
    assert "Traceback" not in out, out
    assert not (project.path / "models" / "model.keras").exists()


def test_distance_head_trains_and_seeds_the_instances(project):
    project.set_params({"train": {"distance_weight": 1.0, "distance_clip": 8.0},
                        "evaluate": {"instances": "distance"}})
    project.run("dvc", "repro")
    card = json.loads((project.path / "models" / "card.json").read_text())
    assert card["distance_clip"] == 8.0 and "distance" in card["channels"][2]
    assert card["evaluate"]["instances"] == "distance"
    probe = ("import keras; m = keras.saving.load_model('models/model.keras', compile=False); "
             "print(m.output_shape[-1])")
    assert project.run("python", "-c", probe).stdout.split()[-1] == "3"
    masks = list((project.path / "data" / "predictions" / "test" / "01_RES").glob("mask*.tif"))
    assert masks and all(tifffile.imread(m).dtype == "uint16" for m in masks)
    evaluation = json.loads((project.path / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["seg"] <= 1.0 and evaluation["n_images"] == len(masks)


def test_partial_annotation_ignores_far_pixels_through_every_stage(project):
    project.set_params({"prepare": {"ignore_beyond_px": 3.0}})
    project.run("dvc", "repro", "train")
    with h5py.File(project.path / "data" / "prepared" / "train.h5") as train:
        pairs = [(g["mask"][()], g["weights"][()]) for g in train["samples"].values()]
    for mask, weights in pairs:
        np.testing.assert_array_equal(weights > 0, annotated_region(mask, 3.0))
    with TileReader(project.path / "data" / "augmented" / "train.h5") as reader:
        train_idx, val_idx = split_by_sample(reader.sample, reader.copy, 0.15, 0)
        kept = [int(weighted_tiles(reader, idx).sum()) for idx in (train_idx, val_idx)]
    with h5py.File(project.path / "data" / "augmented" / "train.h5") as augmented:
        assert json.loads(augmented.attrs["target"])["ignore_beyond"] == 3.0
    trained = json.loads((project.path / "metrics" / "train.json").read_text())
    assert [trained["train_tiles"], trained["val_tiles"]] == kept
    assert 0 < trained["unweighted_tiles"] == len(train_idx) + len(val_idx) - sum(kept)
