"""``unetseg export`` end to end: a model that DVC trains in a temporary repo becomes a package
that ``bioimageio test`` passes, whose ONNX weights agree with Keras, and the model folder is a
registered DVC artifact that ``dvc artifacts get`` fetches."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import Project

from unetseg.images import normalize

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow]

BIN = Path(sys.executable).parent


def _bioimageio_test(project: Project, package: Path) -> subprocess.CompletedProcess:
    """``bioimageio test`` (the CLI of bioimageio.core), as a consumer runs it."""
    return project.run(str(BIN / "bioimageio"), "test", str(package), check=False)


def test_the_trained_model_exports_to_a_package_bioimageio_test_passes(trained_project, tmp_path):
    import keras
    import onnxruntime

    trained = trained_project

    sample = sorted((trained.path / "data/ingested/test/images").glob("*.png"))[0]
    package = tmp_path / "unetseg-model.zip"
    result = trained.run(sys.executable, "-m", "unetseg", "export", "models", str(package),
                         "--sample", str(sample), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith(f"unetseg export: {package}")
    with zipfile.ZipFile(package) as z:
        z.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked"
    rdf = yaml.safe_load((unpacked / "rdf.yaml").read_text())
    card = json.loads((trained.path / "models/card.json").read_text())
    scores = json.loads((trained.path / "models/postprocess.json").read_text())["scores"]
    assert rdf["config"]["unetseg"]["card"] == card and rdf["config"]["unetseg"]["scores"] == scores
    assert card["training_data"]["layout"] == "synthetic" and card["training_data"]["n_images"]
    assert rdf["training_data"]["name"] == "synthetic HeLa-like cells"
    assert f"SEG {scores['seg']:.3f}" in rdf["description"]

    tested = _bioimageio_test(trained, package)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert "passed" in tested.stdout

    x = np.load(unpacked / "test_input.npy")
    batch = normalize(x[0, ..., 0])[None, ..., None]
    session = onnxruntime.InferenceSession(str(unpacked / "weights.onnx"),
                                           providers=["CPUExecutionProvider"])
    onnx = session.run(None, {session.get_inputs()[0].name: batch})[0]
    ours = np.asarray(keras.saving.load_model(unpacked / "weights.keras", compile=False)
                      .predict_on_batch(batch))
    assert np.abs(onnx - ours).max() <= 1e-4
    assert np.abs(ours - np.load(unpacked / "test_output.npy")).max() <= 1e-5


def test_the_model_folder_is_a_registered_artifact(trained_project, tmp_path):
    trained = trained_project
    trained.run(str(BIN / "gto"), "register", "unetseg-model", "--version", "v0.1.0")
    shown = trained.run(str(BIN / "gto"), "show").stdout
    assert "unetseg-model" in shown and "v0.1.0" in shown
    got = tmp_path / "got"
    trained.run("dvc", "artifacts", "get", str(trained.path), "unetseg-model", "-o", str(got))
    for name in ("model.keras", "card.json", "postprocess.json"):
        assert (got / name).read_bytes() == (trained.path / "models" / name).read_bytes(), name
