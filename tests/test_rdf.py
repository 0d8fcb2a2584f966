"""The bioimage.io description of a model card (``unetseg.export.rdf``) and its documentation
page: tile geometry, axes, preprocessing, citations, names. Pure functions: no export runs."""

from __future__ import annotations

import dataclasses

import pytest

from unetseg.config import ModelParams, PostprocessParams, PrepareParams, TrainParams
from unetseg.export.docpage import documentation
from unetseg.export.rdf import (
    dataset_name,
    default_name,
    describe,
    name_problem,
    tile_geometry,
)
from unetseg.tiling import output_size
from unetseg.train.card import TrainingData, network_card

DATA = TrainingData(source="https://example.org/data/DIC-C2DH-HeLa.zip", layout="ctc",
                    annotations="gt+st", n_images=9, test_split="seeded split of the GT pairs")
SCORES = {"seg": 0.8125, "iou": 0.875}


def _card(depth=3, tile=100, padding="valid", distance=0.0, resample=1.0, data=DATA, **model):
    m = ModelParams(depth=depth, base_filters=4, tile_size=tile, padding=padding, **model)
    train = TrainParams(distance_weight=distance)
    return network_card(m, train, PrepareParams(resample_factor=resample), backend="tensorflow",
                        replicas=1, epochs=2, training_data=data)


@pytest.mark.parametrize(("depth", "tile", "padding", "margin", "shift", "min_size"), [
    (4, 572, "valid", 92, 4, 208),  # the paper's network: 572 -> 388
    (3, 188, "valid", 44, 4, 104),  # the default: 188 -> 100
    (2, 60, "valid", 20, 0, 44),
    (1, 18, "valid", 8, 0, 18),
    (5, 412, "valid", 188, 4, 416),
    (3, 128, "same", 0, 0, 72),
])
def test_tile_geometry(depth, tile, padding, margin, shift, min_size):
    g = tile_geometry(_card(depth=depth, tile=tile, padding=padding))
    step = 2**depth
    assert (g.margin, g.shift, g.min_size, g.step) == (margin, shift, min_size, step)
    assert g.halo == g.margin + g.shift if padding == "valid" else g.halo == 32
    for k in range(3):  # every declared block fits the network and leaves output after the halo
        size = g.min_size + k * g.step
        assert output_size(size - g.shift, depth, padding) == size - g.shift - 2 * g.margin
        inner = size - 2 * g.halo
        assert inner > 0 and inner % step == 0
        # a side of n * step px, mirrored by the halo, is itself a valid block
        assert output_size((k + 1) * step + 2 * g.halo - g.shift, depth, padding) > 0
    # an inner block at j * inner feeds the U-Net from where unetseg's tiles start
    assert (g.shift - g.halo + g.margin) % step == 0
    if padding == "valid":
        assert g.margin == (tile - output_size(tile, depth, padding)) // 2
        below = g.min_size - g.step  # the smallest block: one less step leaves no block
        if below - 2 * g.halo > 0:
            with pytest.raises(ValueError):
                output_size(below - g.shift, depth, padding)


def _describe(card, **changes):
    files = {k: f"{k}.x" for k in ("weights_keras", "weights_onnx", "test_input", "test_output",
                                   "sample_input", "sample_output", "cover", "documentation")}
    return describe(card, PostprocessParams(), SCORES, name="a model", description="d",
                    authors=["A"], files=files, parameters=10,
                    weights={"keras_version": "3", "backend": ("tensorflow", "2"),
                             "onnx_opset": 15}, **changes)


def test_the_axes_declare_the_tile_geometry():
    card = _card(depth=4, tile=572)
    rdf = _describe(card)
    (raw,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a.get("id", a["type"]) for a in raw["axes"]] == ["batch", "y", "x", "channel"]
    assert [a.get("id", a["type"]) for a in out["axes"]] == ["batch", "y", "x", "channel"]
    for axis in raw["axes"][1:3]:
        assert axis["size"] == {"min": 208, "step": 16}
    for axis in out["axes"][1:3]:
        assert axis["size"] == {"tensor_id": "raw", "axis_id": axis["id"], "offset": 0}
        assert axis["halo"] == 96
    assert raw["pad"] == {"mode": "symmetric"}
    (scale,) = [p for p in raw["preprocessing"] if p["id"] == "scale_range"]
    assert scale["kwargs"] == {"axes": ["y", "x", "channel"], "min_percentile": 1.0,
                               "max_percentile": 99.8, "eps": 1e-6}
    assert (rdf["config"]["unetseg"]["margin"], rdf["config"]["unetseg"]["shift"]) == (92, 4)


def test_distance_heads_resampling_and_other_data_are_described():
    card = _card(distance=1.0, resample=0.5, arch="unetpp",
                 data=dataclasses.replace(DATA, layout="em", source="/data/isbi2012"))
    rdf = _describe(card)
    assert rdf["outputs"][0]["axes"][3]["channel_names"] == ["background", "cell", "distance"]
    assert rdf["config"]["unetseg"]["resample_factor"] == 0.5
    assert "bioimage.io preprocessing cannot" in rdf["config"]["unetseg"]["resampling"]
    assert {c["doi"] for c in rdf["cite"]} == {"10.1007/978-3-319-24574-4_28",
                                               "10.1007/978-3-030-00889-5_1",
                                               "10.3389/fnana.2015.00142"}
    assert "electron-microscopy" in rdf["tags"] and rdf["name"] == "a model"
    page = documentation(card, PostprocessParams(instances="distance", tta=True), SCORES,
                         tile_geometry(card), name="n", test_tile=60, sample="a frame")
    assert "Resample first" in page and "by 0.5" in page and "| 2 `distance` |" in page
    assert "predicted distance (channel 2 times 40 px" in page and "8 flips" in page
    synthetic = _card(data=dataclasses.replace(DATA, layout="synthetic", source="synthetic"))
    assert "training_data" in _describe(synthetic) and \
        [c["doi"] for c in _describe(synthetic)["cite"]] == ["10.1007/978-3-319-24574-4_28"]
    assert "training_data" not in _describe(_card(data=None))
    assert default_name(_card(data=None)) == "unetseg U-Net (unrecorded data)"


def test_names():
    assert name_problem("unetseg U-Net (HeLa) v2_b+c") is None
    assert "letters" in name_problem("bad/name")
    assert "5 to 128" in name_problem("abc")
    assert dataset_name(DATA) == "DIC-C2DH-HeLa"
    assert dataset_name(dataclasses.replace(DATA, source="/data/PhC-C2DH-U373/")) == \
        "PhC-C2DH-U373"
    assert dataset_name(dataclasses.replace(DATA, layout="synthetic")) == \
        "synthetic HeLa-like cells"
