import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from unetseg.config import Params, flatten_overrides, load_params, params_from_dict
from unetseg.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_load_and_match_defaults_types():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params, Params)
    assert params.model.out_size > 0


def test_missing_keys_take_defaults():
    assert params_from_dict({}) == Params()


@pytest.mark.parametrize("raw,key", [
    ({"train": {"lrr": 0.1}}, "train.lrr"),
    ({"trian": {}}, "trian"),
    ({"train": {"lr": "fast"}}, "train.lr"),
    ({"train": {"epochs": 1.5}}, "train.epochs"),
    ({"train": {"epochs": True}}, "train.epochs"),
    ({"prepare": {"sigma": 0}}, "prepare.sigma"),
    ({"prepare": {"sigma": -1.0}}, "prepare.sigma"),
    ({"prepare": {"resample_factor": 0}}, "prepare.resample_factor"),
    ({"prepare": {"resample_factor": 10}}, "prepare.resample_factor"),
    ({"postprocess": {"label_offset_y": 9}}, "postprocess.label_offset_y"),
    ({"postprocess": {"label_offset_x": -8.5}}, "postprocess.label_offset_x"),
    ({"prepare": {"balance": "yes"}}, "prepare.balance"),
    ({"model": {"arch": "vnet"}}, "model.arch"),
    ({"model": {"tile_size": 570, "depth": 4}}, "model.tile_size"),
    ({"model": {"padding": "same", "tile_size": 100, "depth": 3}}, "model.tile_size"),
    ({"ingest": {"sha256": "abc"}}, "ingest.sha256"),
    ({"ingest": {"test_fraction": 1.0}}, "ingest.test_fraction"),
    ({"ingest": {"annotations": "silver"}}, "ingest.annotations"),
    ({"ingest": {"annotations": "st"}}, "ingest.annotations"),
    ({"ingest": {"annotations": "gt+st", "source": "synthetic"}}, "ingest.annotations"),
    ({"ingest": {"split_gap": -1}}, "ingest.split_gap"),
    ({"ingest": {"split_gap": 1.5}}, "ingest.split_gap"),
    ({"postprocess": {"threshold": float("nan")}}, "postprocess.threshold"),
    ({"postprocess": {"neck_ratio": 0}}, "postprocess.neck_ratio"),
    ({"postprocess": {"neck_ratio": 1.2}}, "postprocess.neck_ratio"),
    ({"postprocess": {"fill_holes": 1}}, "postprocess.fill_holes"),
    ({"train": {"distance_weight": -0.1}}, "train.distance_weight"),
    ({"train": {"distance_clip": 0.5}}, "train.distance_clip"),
    ({"postprocess": {"instances": "distance"}}, "postprocess.instances"),
    ({"train": []}, "train"),
    ({"evaluate": {"threshold": 0.5}}, "evaluate.threshold: unknown key"),
    ({"evaluate": {"batch_size": 0}}, "evaluate.batch_size"),
    ({"ingest": {"source": "x", "test_sequences": "02"}}, "ingest.test_sequences"),
    ({"ingest": {"source": "x", "test_sequences": [2]}}, "ingest.test_sequences"),
    ({"ingest": {"source": "x", "test_sequences": ["a2"]}}, "ingest.test_sequences"),
    ({"ingest": {"source": "x", "test_sequences": ["02", "02"]}}, "ingest.test_sequences"),
    ({"ingest": {"test_sequences": ["01"]}}, "ingest.test_sequences"),
    ({"ingest": {"source": "x", "test_source": "y", "test_sequences": ["01"]}},
     "ingest.test_sequences"),
])
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(InputError) as err:
        params_from_dict(raw)
    message = str(err.value)
    assert key in message and "\n" not in message


def test_int_is_accepted_for_float():
    assert params_from_dict({"train": {"lr": 1}}).train.lr == 1.0


def test_params_are_frozen():
    params = Params()
    with pytest.raises(AttributeError):
        params.train.lr = 0.1  # type: ignore[misc]


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(InputError, match="p.yaml: not valid YAML"):
        load_params(bad)
    with pytest.raises(InputError, match="no such params file"):
        load_params(tmp_path / "none.yaml")


def test_test_sequences_are_quoted_names_and_a_number_gets_a_hint():
    params = load_params(ROOT / "params.yaml")
    assert params.ingest.test_sequences == () == Params().ingest.test_sequences
    raw = yaml.safe_load('ingest: {source: x, test_sequences: ["02", "01"]}')
    assert params_from_dict(raw).ingest.test_sequences == ("02", "01")
    with pytest.raises(InputError, match=r'got \[2\] \(quote names such as "02"'):
        params_from_dict(yaml.safe_load("ingest: {source: x, test_sequences: [02]}"))


def test_flatten_overrides_round_trips_through_yaml():
    raw = {"ingest": {"source": "../x y", "sha256": "", "test_sequences": ["02"]},
           "train": {"lr": 0.0005, "epochs": 3},
           "prepare": {"balance": False}}
    items = flatten_overrides(raw)
    rebuilt: dict = {}
    for item in items:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        rebuilt.setdefault(section, {})[name] = yaml.safe_load(value)
    assert rebuilt == raw


def test_overrides_cli_prints_nul_separated_args(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lr: 0.01\n")
    out = subprocess.run([sys.executable, "-m", "unetseg.config", "--overrides", str(cfg)],
                         capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [b"-S", b"train.lr=0.01"]
    cfg.write_text("train:\n  typo: 1\n")
    bad = subprocess.run([sys.executable, "-m", "unetseg.config", "--overrides", str(cfg)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "train.typo" in bad.stderr and "Traceback" not in bad.stderr


values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["ingest", "train", "model", "prepare", "evaluate", "x"]),
                       st.dictionaries(st.sampled_from(["lr", "epochs", "arch", "sigma", "depth",
                                                        "tile_size", "source", "seed", "zz"]),
                                       values, max_size=4), max_size=3))
def test_fuzz_loader_either_loads_or_raises_input_error(raw):
    try:
        params = params_from_dict(raw)
    except InputError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(params, Params)


RECIPES = sorted((ROOT / "configs").glob("*.yaml"))
DATASETS = ROOT / ".." / "shared" / "datasets"


def _recipe_params(config: Path) -> Params:
    merged = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in yaml.safe_load(config.read_text()).items():
        assert section in merged, section
        unknown = set(values) - set(merged[section])
        assert not unknown, f"{config.name}: {unknown} are not keys of params.yaml"
        merged[section].update(values)
    return params_from_dict(merged)


@pytest.mark.parametrize("config", RECIPES, ids=lambda p: p.name)
def test_recipes_are_valid_overrides_of_the_project_params(config):
    source = _recipe_params(config).ingest.source
    assert source.startswith("../shared/datasets/"), source
    header = config.read_text().split("\ningest:")[0]
    assert "ingest.source=" in header, f"{config.name}: say how to point it at your own download"


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"the shared example data is not at {DATASETS}")
@pytest.mark.parametrize("config", RECIPES, ids=lambda p: p.name)
def test_recipes_read_the_shared_example_data(config):
    assert (ROOT / _recipe_params(config).ingest.source).is_dir()



@pytest.mark.parametrize("value, expected", [(False, "none"), ("none", "none"),
                                             ("float16", "float16"), ("bfloat16", "bfloat16")])
def test_mixed_precision_takes_a_dtype_or_false(value, expected):
    assert params_from_dict({"train": {"mixed_precision": value}}).train.mixed_precision == expected


@pytest.mark.parametrize("value", [True, "fp16", "mixed_bfloat16", 1])
def test_mixed_precision_refuses_anything_else_naming_the_choices(value):
    with pytest.raises(InputError, match="train.mixed_precision: must be one of none, float16, "
                                         "bfloat16"):
        params_from_dict({"train": {"mixed_precision": value}})


@pytest.mark.parametrize("value", [0, 257, 1.5, True])
def test_workers_must_be_a_count(value):
    with pytest.raises(InputError, match="train.workers"):
        params_from_dict({"train": {"workers": value}})
