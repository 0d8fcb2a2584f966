"""The ingest stage on CTC layouts: GT/ST training masks, GT-only test frames, the split gap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image
from test_ctc import _mask, make_ctc, st_mask

from unetseg.data.datasets import training_layout
from unetseg.data.pairs import Sample, Split

ROOT = Path(__file__).resolve().parents[1]
U373 = ROOT / ".." / "shared" / "datasets" / "PhC-C2DH-U373"
HELA = U373.parent / "DIC-C2DH-HeLa"
GT_FRAMES = [3, 10, 15, 20, 27]
ST_FRAMES = [*range(9), 10, *range(12, 23), 27, 28]


def _ingest(tmp_path: Path, **ingest: object) -> tuple[subprocess.CompletedProcess, Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ingest": ingest}))
    out, metrics = tmp_path / "ingested", tmp_path / "metrics" / "ingest.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "ingest.py"), "--params",
                             str(params), "--out", str(out), "--metrics", str(metrics),
                             "--cache", str(tmp_path / "cache")],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    return result, out, metrics


def _ok(tmp_path: Path, **ingest: object) -> tuple[dict, dict, Path]:
    result, out, metrics = _ingest(tmp_path, **ingest)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "manifest.json").read_text()), json.loads(metrics.read_text()), out


def _fails(tmp_path: Path, expected: str, **ingest: object) -> str:
    result, out, metrics = _ingest(tmp_path, **ingest)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert expected in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert not out.exists() and not metrics.exists(), "nothing written"
    assert not list(tmp_path.glob(".ingested*")), "no temporary output left behind"
    return errors[0]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return make_ctc(tmp_path / "ds", {"02": list(range(31))}, {"02": GT_FRAMES},
                    st={"02": ST_FRAMES})


def _frame(name: str) -> int:
    return int(name.split("_t")[1])


def test_gt_plus_st_trains_on_both_and_tests_on_gt(tmp_path: Path, layout: Path) -> None:
    manifest, metrics, out = _ok(tmp_path, source=str(layout), annotations="gt+st",
                                 test_fraction=0.2, seed=0, split_gap=2)
    pairs = {(p["split"], p["name"]): p for p in manifest["pairs"]}
    assert manifest["layout"] == "ctc"
    test = [p for p in manifest["pairs"] if p["split"] == "test"]
    train = [p for p in manifest["pairs"] if p["split"] == "train"]
    assert len(test) == 1 and test[0]["annotation"] == "gt"
    t = _frame(test[0]["name"])
    assert t in GT_FRAMES and test[0]["origin"].startswith(f"02/t{t:03d}.tif + 02_GT/")
    near = {n for n in {*GT_FRAMES, *ST_FRAMES} if 0 < abs(n - t) <= 2}
    assert sorted(_frame(o["name"]) for o in manifest["left_out"]) == sorted(near)
    assert all(o["near"] == test[0]["name"] for o in manifest["left_out"])
    assert all(o["distance"] == abs(_frame(o["name"]) - t) for o in manifest["left_out"])
    trained = {_frame(p["name"]): p["annotation"] for p in train}
    # the fixture's ST masks hold cells its GT masks leave out: GT frames with ST are completed
    expected = {n: ("st" if n not in GT_FRAMES else "gt+st" if n in ST_FRAMES else "gt")
                for n in {*GT_FRAMES, *ST_FRAMES} if abs(n - t) > 2}
    assert trained == expected
    kind = {"gt": "GT", "st": "ST", "gt+st": "GT"}
    assert all(p["origin"].split(" + ")[1].startswith(f"02_{kind[p['annotation']]}/SEG/")
               for p in train)
    assert all("cells of 02_ST/SEG/" in p["origin"] for p in train if p["annotation"] == "gt+st")
    assert metrics["n_train_completed"] == sum(a == "gt+st" for a in trained.values()) > 0
    st_pair = pairs["train", "02_t000"] if t > 2 else pairs["train", "02_t028"]
    mask = np.asarray(Image.open(out / st_pair["mask"]))
    np.testing.assert_array_equal(mask, st_mask(_frame(st_pair["name"])))
    test_mask = np.asarray(Image.open(out / test[0]["mask"]))
    np.testing.assert_array_equal(test_mask, _mask(t))
    assert (manifest["annotations"], manifest["split_gap"]) == ("gt+st", 2)
    assert metrics["n_train"] == len(train) and metrics["n_test"] == 1
    assert metrics["n_left_out"] == len(near)
    assert metrics["n_train_st"] == sum(a == "st" for a in trained.values())


def test_the_same_seed_tests_the_same_frames_whatever_trains(tmp_path: Path,
                                                             layout: Path) -> None:
    tests = {}
    for kind in ("gt", "st", "gt+st"):
        manifest, _, _ = _ok(tmp_path / kind, source=str(layout),
                             annotations=kind, test_fraction=0.4, seed=3)
        tests[kind] = [(p["name"], p["origin"]) for p in manifest["pairs"]
                       if p["split"] == "test"]
        kinds = {p["annotation"] for p in manifest["pairs"] if p["split"] == "train"}
        if kind == "gt+st":
            assert "st" in kinds and kinds & {"gt", "gt+st"} and kinds <= {"gt", "st", "gt+st"}
        else:
            assert kinds == {kind}
    assert tests["gt"] == tests["st"] == tests["gt+st"] and len(tests["gt"]) == 2


def test_held_back_copy_of_the_sequence_gets_the_gap(tmp_path: Path, layout: Path) -> None:
    held = make_ctc(tmp_path / "held", {"02": [10]}, {"02": [10]})
    manifest, metrics, _ = _ok(tmp_path / "same", source=str(layout), test_source=str(held),
                               annotations="st", split_gap=2)
    assert sorted((_frame(o["name"]), o["distance"]) for o in manifest["left_out"]) \
        == [(8, 2), (10, 0), (12, 2)], "frame 10's own ST mask and its neighbours"
    assert [(p["name"], p["annotation"]) for p in manifest["pairs"] if p["split"] == "test"] \
        == [("02_t010", "gt")]
    assert metrics["n_train"] == len(ST_FRAMES) - 3 == metrics["n_train_st"]
    other = make_ctc(tmp_path / "other", {"02": [10]}, {"02": [10]})
    tifffile.imwrite(other / "02" / "t010.tif", np.full((12, 14), 7, np.uint8) + np.eye(12, 14,
                                                                                    dtype=np.uint8))
    manifest, metrics, _ = _ok(tmp_path / "different", source=str(layout),
                               test_source=str(other), annotations="st", split_gap=2)
    assert manifest["left_out"] == [] and metrics["n_train"] == len(ST_FRAMES)


def test_test_source_is_read_for_its_gt_only(tmp_path: Path, layout: Path) -> None:
    held = make_ctc(tmp_path / "held", {"05": [1, 2]}, {"05": [2]}, st={"05": [1, 2]})
    manifest, _, _ = _ok(tmp_path / "run", source=str(layout), test_source=str(held),
                         annotations="gt+st")
    assert [(p["name"], p["annotation"]) for p in manifest["pairs"] if p["split"] == "test"] \
        == [("05_t002", "gt")]


def test_st_for_a_dataset_without_st(tmp_path: Path) -> None:
    plain = make_ctc(tmp_path / "plain", {"01": [0, 1, 2]}, {"01": [0, 2]})
    for kind in ("st", "gt+st"):
        _fails(tmp_path, "no silver-truth masks", source=str(plain), annotations=kind)


def test_st_mask_of_another_shape(tmp_path: Path, layout: Path) -> None:
    tifffile.imwrite(layout / "02_ST" / "SEG" / "man_seg005.tif", st_mask(5, (12, 15)))
    line = _fails(tmp_path, "shapes differ", source=str(layout), annotations="gt+st")
    assert "02_ST/SEG/man_seg005.tif" in line and "02/t005.tif" in line


def test_float_st_mask(tmp_path: Path, layout: Path) -> None:
    tifffile.imwrite(layout / "02_ST" / "SEG" / "man_seg006.tif",
                     st_mask(6).astype(np.float32) + 0.5)
    assert "man_seg006.tif" in _fails(tmp_path, "mask ids are not integers",
                                      source=str(layout), annotations="st")


def test_st_for_em_and_synthetic_sources(tmp_path: Path) -> None:
    em = tmp_path / "em" / "train"
    for folder in ("image", "label"):
        (em / folder).mkdir(parents=True)
        for k in range(2):
            array = np.random.default_rng(k).integers(0, 255, (8, 8), np.uint8)
            Image.fromarray(array if folder == "image" else (array > 99).astype(np.uint8) * 255) \
                .save(em / folder / f"{k}.png")
    _fails(tmp_path, "ISBI-2012 EM dataset has no silver-truth masks", source=str(em.parent),
           annotations="gt+st")
    _fails(tmp_path, "params: ingest.annotations", annotations="st")


def test_gap_that_leaves_no_training_frames(tmp_path: Path) -> None:
    small = make_ctc(tmp_path / "small", {"01": [0, 1, 2]}, {"01": [0, 2]})
    _fails(tmp_path, "ingest.split_gap: 2 leaves no training frames", source=str(small),
           split_gap=2, test_fraction=0.5)


@pytest.mark.skipif(not U373.is_dir(), reason=f"needs the shared datasets at {U373.parent}")
def test_real_u373_gt_plus_st(tmp_path: Path) -> None:
    manifest, metrics, _ = _ok(tmp_path, source=str(U373), annotations="gt+st", split_gap=3,
                               test_fraction=0.25, seed=0)
    pairs = manifest["pairs"]
    test = [p for p in pairs if p["split"] == "test"]
    assert len(test) == round(0.25 * (15 + 13)) == metrics["n_test"]
    assert all(p["annotation"] == "gt" for p in test)
    train = [p for p in pairs if p["split"] == "train"]
    frame = {p["name"]: (p["name"][:2], int(p["name"][4:])) for p in pairs}
    for p in train:
        seq, n = frame[p["name"]]
        assert all(abs(n - frame[q["name"]][1]) > 3 for q in test if frame[q["name"]][0] == seq)
    gt_train = 28 - len(test) - sum(o["annotation"] == "gt" for o in manifest["left_out"])
    assert metrics["n_train"] - metrics["n_train_st"] == gt_train
    # 01: every frame has ST (15 with GT); 02: 13 GT frames and 53 ST frames, 6 of them both.
    assert metrics["n_train"] + metrics["n_left_out"] + metrics["n_test"] == 115 + (13 + 53 - 6)
    shutil.rmtree(tmp_path / "ingested")


@pytest.fixture
def two_sequences(tmp_path: Path) -> Path:
    return make_ctc(tmp_path / "two", {"01": list(range(8)), "02": list(range(31))},
                    {"01": [1, 5], "02": GT_FRAMES}, st={"01": list(range(8)), "02": ST_FRAMES})


def test_a_held_out_sequence_tests_on_its_gt_and_the_others_train(tmp_path: Path,
                                                                  two_sequences: Path) -> None:
    manifest, metrics, _ = _ok(tmp_path / "run", source=str(two_sequences), annotations="gt+st",
                               test_sequences=["02"], test_fraction=0.5, split_gap=9)
    test = [p for p in manifest["pairs"] if p["split"] == "test"]
    train = [p for p in manifest["pairs"] if p["split"] == "train"]
    assert [p["name"] for p in test] == [f"02_t{n:03d}" for n in GT_FRAMES]
    assert all(p["annotation"] == "gt" for p in test)
    assert [(p["name"], p["annotation"]) for p in train] == \
        [(f"01_t{n:03d}", "gt+st" if n in (1, 5) else "st") for n in range(8)]
    assert manifest["protocol"] == "sequences 02 held out" and manifest["left_out"] == []
    assert (metrics["n_test"], metrics["n_train"], metrics["n_left_out"]) == (5, 8, 0)
    manifest, _, _ = _ok(tmp_path / "back", source=str(two_sequences), test_sequences=["01"])
    assert [p["name"] for p in manifest["pairs"] if p["split"] == "test"] == \
        ["01_t001", "01_t005"]
    assert {p["name"][:2] for p in manifest["pairs"] if p["split"] == "train"} == {"02"}


def test_held_out_sequences_the_folder_cannot_give(tmp_path: Path, two_sequences: Path) -> None:
    line = _fails(tmp_path, "no sequence 03 to hold out", source=str(two_sequences),
                  test_sequences=["03"])
    assert str(two_sequences) in line and line.endswith("has: 01, 02")
    (two_sequences / "03").mkdir()
    _fails(tmp_path, f"{two_sequences / '03'}: empty sequence", source=str(two_sequences),
           test_sequences=["03"])
    (two_sequences / "04").mkdir()
    tifffile.imwrite(two_sequences / "04" / "t000.tif", np.arange(12 * 14, dtype=np.uint8)
                     .reshape(12, 14))
    _fails(tmp_path, f"{two_sequences / '04_GT' / 'SEG'}: no GT masks",
           source=str(two_sequences), test_sequences=["04"])
    _fails(tmp_path, "holding out sequence(s) 01, 02 leaves nothing to train on",
           source=str(two_sequences), test_sequences=["01", "02"])
    _fails(tmp_path, "ingest.test_sequences: must be a list of strings; got [2] (quote",
           source=str(two_sequences), test_sequences=[2])
    _fails(tmp_path, "ingest.test_sequences: needs a Cell Tracking Challenge source",
           test_sequences=["01"])
    _fails(tmp_path, "ingest.test_sequences: holds sequences of source out",
           source=str(two_sequences), test_source=str(two_sequences), test_sequences=["01"])


def test_a_held_out_mask_of_another_shape(tmp_path: Path, two_sequences: Path) -> None:
    tifffile.imwrite(two_sequences / "02_GT" / "SEG" / "man_seg015.tif", _mask(15, (12, 15)))
    line = _fails(tmp_path, "shapes differ", source=str(two_sequences), test_sequences=["02"])
    assert "02_GT/SEG/man_seg015.tif" in line and "02/t015.tif" in line


def test_held_out_sequences_of_an_em_dataset(tmp_path: Path) -> None:
    em = tmp_path / "em" / "train"
    for folder in ("image", "label"):
        (em / folder).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.full((8, 8), 200 * (folder == "label") + k, np.uint8)) \
                .save(em / folder / f"{k}.png")
    _fails(tmp_path, f"{em.parent}: ingest.test_sequences holds out sequences of a Cell Tracking "
           "Challenge dataset", source=str(em.parent), test_sequences=["01"])


@pytest.mark.skipif(not U373.is_dir(), reason=f"needs the shared datasets at {U373.parent}")
def test_real_u373_validates_01_on_02(tmp_path: Path) -> None:
    manifest, metrics, _ = _ok(tmp_path, source=str(U373), test_sequences=["02"])
    test = [p for p in manifest["pairs"] if p["split"] == "test"]
    train = [p for p in manifest["pairs"] if p["split"] == "train"]
    assert [int(p["name"][4:]) for p in test] == \
        [10, 17, 20, 22, 35, 36, 49, 51, 59, 74, 85, 92, 112], "the 13 GT frames of 02"
    assert all(p["origin"].startswith("02/") and p["annotation"] == "gt" for p in test)
    assert len(train) == 15 and all(p["name"].startswith("01_") for p in train)
    assert (metrics["n_test"], metrics["n_train"], metrics["n_left_out"]) == (13, 15, 0)
    assert manifest["protocol"] == "sequences 02 held out"
    shutil.rmtree(tmp_path / "ingested")


@pytest.mark.skipif(not HELA.is_dir(), reason=f"needs the shared datasets at {HELA.parent}")
def test_real_hela_has_no_other_sequence_to_train_on(tmp_path: Path) -> None:
    _fails(tmp_path, "holding out sequence(s) 01 leaves nothing to train on", source=str(HELA),
           test_sequences=["01"])


def test_the_layout_of_the_training_pairs_goes_into_the_manifest() -> None:
    def split(sequence: str) -> Split:
        pixels = np.zeros((4, 4), np.uint8)
        return Split([Sample("a", pixels, pixels, "a.png", sequence=sequence)], [], [])

    assert training_layout("synthetic", split("")) == "synthetic"
    assert training_layout("/data/DIC-C2DH-HeLa", split("01")) == "ctc"
    assert training_layout("/data/isbi2012", split("")) == "em"
