"""End to end: DVC itself runs the five stages in a temporary git repo."""

import hashlib
import json
import zipfile
from pathlib import Path

import h5py
import pytest
import tifffile
from conftest import CACHE_FILES
from test_runtime import BACKEND_LINE

pytestmark = pytest.mark.slow


def test_repro_runs_all_stages_then_nothing(trained_base, trained_project):
    project, first = trained_project, trained_base.repro
    assert "Epoch 2/2" in first.stdout
    assert not BACKEND_LINE.search(first.stdout + first.stderr), "a quiet console: " + first.stderr
    for name in ("ingest", "prepare", "augment", "train", "evaluate"):
        assert f"Running stage '{name}'" in first.stdout, name
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
    # trained_base committed the first repro's results with `git add -A`: nothing was left
    # out, and the repro that ran nothing changed nothing either.
    assert project.run("git", "status", "--porcelain").stdout.strip() == ""
    assert {"offset_y", "offset_x"} <= evaluation.keys()
    post = json.loads((project.path / "models" / "postprocess.json").read_text())
    assert post["postprocess"]["threshold"] == 0.4 and post["scores"]["seg"] == evaluation["seg"]

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


def test_distance_head_trains_and_seeds_the_instances(trained_project):
    project = trained_project
    project.set_params({"train": {"distance_weight": 1.0, "distance_clip": 8.0},
                        "postprocess": {"instances": "distance"}})
    ran = project.run("dvc", "repro").stdout
    assert "Running stage 'train'" in ran and "Running stage 'evaluate'" in ran, ran
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


def _digests(folder: Path) -> dict[Path, str]:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_copy_of_the_trained_project_cannot_change_the_shared_one(trained_base,
                                                                     trained_project):
    base, copy = trained_base.project.path, trained_project.path
    before = _digests(base)
    cache = sorted(p for p in (copy / CACHE_FILES).rglob("*") if p.is_file())
    outputs = sorted(p for folder in ("data", "models") for p in (copy / folder).rglob("*")
                     if p.is_file())
    assert cache and all(p.stat().st_nlink >= 2 for p in cache), "the cache is shared, not copied"
    assert outputs and all(p.stat().st_nlink == 1 for p in outputs), "no output links to it"
    for path in outputs:  # a stage that rewrites its outputs in place...
        with path.open("r+b") as f:
            f.write(b"\0" * 64)
    trained_project.run("dvc", "commit", "--force")  # ...DVC caching them...
    trained_project.run("dvc", "gc", "--workspace", "--force")  # ...and dropping the old ones
    assert [p for p in cache if not p.exists()], "gc unlinked the old objects from the copy"
    assert _digests(base) == before
    for path in (base / CACHE_FILES).rglob("*"):
        if path.is_file():
            name = "".join(path.relative_to(base / CACHE_FILES).parts[1:]).removesuffix(".dir")
            assert hashlib.md5(path.read_bytes()).hexdigest() == name, path
