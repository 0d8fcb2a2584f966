"""``unetseg export``: a model folder as a bioimage.io package, on small random-weight networks.

One package is exported per module (the slow end-to-end test, on a model DVC trains, is
``test_export_trained.py``); the tests read it back as a consumer would: its ``rdf.yaml``, its
weights in Keras without unetseg and in ONNX Runtime, bioimageio.core's preprocessing and tiling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from scipy import ndimage
from test_rdf import SCORES, _card

from unetseg.__main__ import main
from unetseg.config import PostprocessParams
from unetseg.data.synthetic import generate
from unetseg.errors import InputError
from unetseg.export import network, spec
from unetseg.export.rdf import default_name
from unetseg.images import normalize, write_png
from unetseg.infer.model_folder import POSTPROCESS_FILE, write_postprocess
from unetseg.infer.segmenter import Segmenter
from unetseg.train.card import CARD_FILE, WEIGHTS_FILE, write_card
from unetseg.train.models import build_model

needs_tensorflow = pytest.mark.tensorflow
"""Exports convert to ONNX through TensorFlow, and the CUDA environment has neither TensorFlow
nor onnx and bioimageio: tests that export are left out there."""

def model_folder(folder: Path, **card_args) -> Path:
    """A complete model folder with a small network of random (but not tiny) weights."""
    card = _card(**card_args)
    m = card.model
    model = build_model(m.arch, depth=m.depth, base_filters=m.base_filters, padding=m.padding,
                        dropout=m.dropout, input_size=m.tile_size, n_classes=card.train.n_outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    folder.mkdir(parents=True)
    model.save(folder / WEIGHTS_FILE)
    write_card(folder / CARD_FILE, card)
    post = PostprocessParams(threshold=0.4, min_size=5, instances="components",
                             grow_into_gaps_px=1)
    write_postprocess(folder / POSTPROCESS_FILE, post, SCORES)
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, Path]:
    """``(model folder, package zip, the zip unpacked)`` of one export with a real sample."""
    root = tmp_path_factory.mktemp("export")
    models = model_folder(root / "models")
    write_png(root / "frame.png", generate(1, 150, 130, 6, 3)[0].image)
    assert main(["export", str(models), str(root / "out.zip"), "--sample",
                 str(root / "frame.png")]) == 0
    with zipfile.ZipFile(root / "out.zip") as z:
        z.extractall(root / "unpacked")
    return models, root / "out.zip", root / "unpacked"


def _rdf(unpacked: Path) -> dict:
    return yaml.safe_load((unpacked / "rdf.yaml").read_text())


@needs_tensorflow
def test_the_description_states_the_card(exported):
    models, _, unpacked = exported
    rdf = _rdf(unpacked)
    card = json.loads((models / CARD_FILE).read_text())
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    assert rdf["name"] == "unetseg U-Net (DIC-C2DH-HeLa)" == default_name(_card())
    assert "U-Net (depth 3, 4 filters, valid" in rdf["description"]
    assert "DIC-C2DH-HeLa" in rdf["description"] and "SEG 0.812" in rdf["description"]
    assert rdf["authors"] == [{"name": "the unetseg project"}]
    assert rdf["license"] == "BSD-3-Clause"
    assert {c["doi"] for c in rdf["cite"]} == {"10.1007/978-3-319-24574-4_28",
                                               "10.1038/s41592-023-02061-w"}
    assert {"unet", "cells", "2d", "ctc", "transmission-light-microscopy"} <= set(rdf["tags"])
    data = rdf["training_data"]
    assert data["name"] == "DIC-C2DH-HeLa" and "9 training images" in data["description"]
    assert data["cite"][0]["doi"] == "10.1038/s41592-023-02061-w"
    assert set(rdf["weights"]) == {"keras_v3", "onnx"}
    assert rdf["weights"]["onnx"]["parent"] == "keras_v3"
    assert rdf["weights"]["keras_v3"]["keras_version"] == keras.__version__
    assert rdf["weights"]["onnx"]["opset_version"] >= 7
    unetseg = rdf["config"]["unetseg"]
    assert unetseg["card"] == card and unetseg["scores"] == SCORES
    assert unetseg["postprocess"]["threshold"] == 0.4 and unetseg["resample_factor"] == 1.0
    assert rdf["config"]["bioimageio"]["model_parameter_count"] == \
        keras.saving.load_model(models / WEIGHTS_FILE, compile=False).count_params()
    assert [c["channel_names"] for c in (rdf["inputs"][0]["axes"][3],
                                         rdf["outputs"][0]["axes"][3])] == \
        [["gray"], ["background", "cell"]]
    for entry in [*rdf["covers"], rdf["documentation"], *rdf["weights"].values(),
                  *(t[k] for t in rdf["inputs"] + rdf["outputs"]
                    for k in ("test_tensor", "sample_tensor"))]:
        assert (unpacked / entry["source"]).is_file() and len(entry["sha256"]) == 64
    assert "://" not in json.dumps({k: v for k, v in rdf.items()
                                    if k not in ("training_data", "config")}), \
        "no URL field to check: validation stays offline (free text may name one)"


@needs_tensorflow
def test_the_documentation_page_gives_the_models_own_recipe(exported):
    _, _, unpacked = exported
    page = (unpacked / "README.md").read_text()
    for text in ("## Validation", "probability > 0.4", "smaller than 5 px", "halo of 48 px",
                 "104 + k * 8 px", "drops the first 4 rows", "4-connected components",
                 "percentile 1 ", "percentile 99.8",
                 "| SEG (Cell Tracking Challenge: mean Jaccard of the reference cells) | 0.8125 |",
                 "centre of frame frame.png", "Grow the cells by 1 px"):
        assert text in page, text
    assert "Resample first" not in page and "distance" not in page.split("## Output")[1][:400]


def test_the_command_is_listed(capsys):
    assert main(["--help"]) == 0
    assert "export" in capsys.readouterr().out


@needs_tensorflow
def test_keras_v3_weights_load_without_unetseg(exported):
    _, _, unpacked = exported
    script = ("import sys, keras, numpy as np\n"
              f"m = keras.saving.load_model({str(unpacked / 'weights.keras')!r}, compile=False, "
              "safe_mode=True)\n"
              f"x = np.load({str(unpacked / 'test_input.npy')!r})\n"
              "lo, hi = np.percentile(x, [1.0, 99.8])\n"
              "y = np.asarray(m.predict_on_batch((x - lo) / max(hi - lo, 1e-6)))\n"
              f"print(float(np.abs(y - np.load({str(unpacked / 'test_output.npy')!r})).max()), "
              "'unetseg' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=unpacked, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    difference, imported = result.stdout.split()[-2:]
    assert float(difference) <= 1e-5 and imported == "False"


@needs_tensorflow
def test_onnx_weights_reproduce_keras(exported):
    import onnxruntime

    _, _, unpacked = exported
    session = onnxruntime.InferenceSession(str(unpacked / "weights.onnx"),
                                           providers=["CPUExecutionProvider"])
    x = np.load(unpacked / "test_input.npy")
    y = session.run(None, {session.get_inputs()[0].name: normalize(x[0, ..., 0])[None, ...,
                                                                                 None]})[0]
    expected = np.load(unpacked / "test_output.npy")
    assert y.shape == expected.shape == (1, 104, 104, 2)
    assert np.abs(y - expected).max() <= 1e-4
    top, bottom = 44 + 4, 44  # margin + shift, margin: the zero border
    valid = expected[0, top:-bottom, top:-bottom]
    np.testing.assert_allclose(valid.sum(axis=-1), 1.0, atol=1e-6)
    assert not expected[0, :top].any() and not expected[0, :, -bottom:].any()
    assert 0.05 < valid[..., 1].mean() < 0.95, "a non-trivial test output"


def test_the_network_appends_softmax_and_sigmoid():
    card = _card(distance=1.0)
    model = build_model("unet", depth=3, base_filters=4, padding="valid", dropout=0.0,
                        input_size=100, n_classes=3)
    portable = network.probability_network(model, card, margin=44, shift=4)
    x = np.random.default_rng(2).random((2, 112, 112, 1)).astype(np.float32)
    logits = np.asarray(model.predict_on_batch(x[:, 4:104, 4:104]))  # a 100 px tile inside
    free = np.asarray(network.predict(portable, x))
    assert free.shape == (2, 112, 112, 3)
    assert not free[:, :48].any() and not free[:, :, -44:].any(), "zero border"
    tile = free[:, 48:60, 48:60]  # the 100 px tile's 12 px of output
    e = np.exp(logits[..., :2] - logits[..., :2].max(axis=-1, keepdims=True))
    np.testing.assert_allclose(tile[..., :2], e / e.sum(axis=-1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(tile[..., 2], 1 / (1 + np.exp(-logits[..., 2])), atol=1e-5)


def _core(unpacked: Path):
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.spec import load_description

    return create_prediction_pipeline(load_description(unpacked / "rdf.yaml"),
                                      weight_format="onnx")


@needs_tensorflow
def test_bioimageio_core_preprocessing_is_unetsegs_normalisation(exported):
    from bioimageio.core import Sample, Tensor

    _, _, unpacked = exported
    pipeline = _core(unpacked)
    rng = np.random.default_rng(4)
    spread = ndimage.gaussian_filter(rng.random((97, 83)), 2) * 40000 + 1000
    for raw in (np.load(unpacked / "test_input.npy")[0, ..., 0],
                spread.astype(np.uint16), (spread / 1e4).astype(np.float32)):
        sample = Sample(members={"raw": Tensor.from_numpy(raw[None, ..., None],
                                                          dims=("batch", "y", "x", "channel"))},
                        stat={}, id="s")
        pipeline.apply_preprocessing(sample)
        theirs = sample.members["raw"].data.values[0, ..., 0]
        assert theirs.dtype == np.float32
        assert np.abs(theirs - normalize(raw)).max() <= 1e-5


@needs_tensorflow
def test_bioimageio_core_tiles_as_unetseg_does(exported):
    """bioimageio.core's blocks (declared sizes, the halo mirrored at the border and cropped from
    each output) give unetseg's probabilities whatever their size; only its last block along a
    side that is not a multiple of 8 px, which it shifts back to end at the border, sees the
    max-pooling grid at another phase (these chaotic random weights exaggerate the change, to
    about 0.5; and ONNX Runtime's float32 rounding to about 1e-4)."""
    from bioimageio.core import Tensor, predict

    models, _, unpacked = exported
    pipeline = _core(unpacked)
    segmenter = Segmenter.load(models)
    for shape, ks in (((152, 128), (1, 2)), ((150, 130), (2,))):
        image = generate(1, *shape, 8, 5)[0].image
        ours = segmenter.maps(image)[..., 0]
        for k in ks:  # blocks of 104 + 8k px: 8 + 8k px of output each
            theirs = predict(model=pipeline, blocksize_parameter=k, inputs={
                "raw": Tensor.from_numpy(image[None, ..., None],
                                         dims=("batch", "y", "x", "channel"))})
            cell = theirs.members["probabilities"].data.values[0, ..., 1]
            assert cell.shape == image.shape
            last = [n % 8 and 8 + 8 * k for n in shape]  # rows, columns of a shifted last block
            np.testing.assert_allclose(cell[:shape[0] - last[0], :shape[1] - last[1]],
                                       ours[:shape[0] - last[0], :shape[1] - last[1]], atol=1e-3)
            assert np.isfinite(cell).all() and cell.min() >= 0 and cell.max() <= 1


@needs_tensorflow
def test_the_package_loads_as_a_valid_bioimageio_model(exported):
    from bioimageio.spec import load_description

    _, package, _ = exported
    descr = load_description(package)
    assert descr.validation_summary.status == "valid-format", spec.first_problem(descr)


def _run(*argv: str) -> tuple[int, list[str]]:
    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["export", *argv])
    return code, [line for line in err.getvalue().splitlines() if line.startswith("error:")]


def _one_error(argv, expected: str, out: Path) -> None:
    code, errors = _run(*argv)
    assert code == 1 and len(errors) == 1 and expected in errors[0], errors
    assert not [p for p in out.parent.glob(f".{out.name}*")], "no temporary left behind"


@needs_tensorflow
def test_bad_input_is_one_line_and_leaves_nothing(exported, tmp_path):
    models, package, _ = exported
    out = tmp_path / "new.zip"
    before = package.stat().st_mtime_ns
    _one_error([str(models), str(package)], "exists (pass --force to replace it)", package)
    assert package.stat().st_mtime_ns == before
    _one_error([str(models), str(tmp_path / "no" / "x.zip")], "no such folder", out)
    _one_error([str(models), str(tmp_path / "x.tar")], "is a .zip file", out)
    _one_error([str(tmp_path / "nowhere"), str(out)], "no such model folder", out)
    (tmp_path / "bare").mkdir()
    _one_error([str(tmp_path / "bare"), str(out)], "no model card", out)
    incomplete = model_folder(tmp_path / "incomplete")
    (incomplete / POSTPROCESS_FILE).unlink()
    _one_error([str(incomplete), str(out)], "no post-processing file", out)
    _one_error([str(models), str(out), "--name", "my/model"], "--name: may only hold", out)
    _one_error([str(models), str(out), "--sample", str(tmp_path / "none.png")],
               "cannot read image", out)
    assert not out.exists()


@needs_tensorflow
def test_a_failing_or_corrupt_onnx_conversion_is_refused(exported, tmp_path, monkeypatch):
    models, _, _ = exported
    out = tmp_path / "out.zip"

    def garbage(self, path, **kwargs):
        Path(path).write_bytes(b"\x08\x07not an onnx model")

    monkeypatch.setattr(keras.Model, "export", garbage)
    _one_error([str(models), str(out)], "weights.onnx: not a valid ONNX model", out)

    def fails(self, path, **kwargs):
        raise RuntimeError("tf2onnx could not convert Conv2DTranspose")

    monkeypatch.setattr(keras.Model, "export", fails)
    _one_error([str(models), str(out)], "ONNX export failed: tf2onnx could not convert", out)
    assert not out.exists()


@needs_tensorflow
def test_onnx_that_disagrees_with_keras_is_refused(exported):
    _, _, unpacked = exported
    x = np.load(unpacked / "test_input.npy")
    batch = normalize(x[0, ..., 0])[None, ..., None]
    expected = np.load(unpacked / "test_output.npy")
    difference, opset = network.check_onnx(unpacked / "weights.onnx", expected, batch)
    assert difference <= 1e-4 and opset >= 7
    with pytest.raises(InputError, match=r"weights.onnx: ONNX probabilities differ from Keras "
                                         r"by 0.001 \(> 0.0001\)"):
        network.check_onnx(unpacked / "weights.onnx", expected + 1e-3, batch)


@needs_tensorflow
def test_a_description_bioimageio_refuses_is_one_line(exported, tmp_path, monkeypatch):
    from unetseg.export import package

    models, _, _ = exported
    out = tmp_path / "out.zip"
    real = package.describe
    monkeypatch.setattr(package, "describe", lambda *a, **k: {**real(*a, **k),
                                                              "license": "no-such-licence"})
    _one_error([str(models), str(out)], "bioimage.io validation failed: license", out)
    assert not out.exists()
