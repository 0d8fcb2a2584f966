"""The device check runs on CPU at a tiny size, importing only what a GPU machine has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from conftest import XLA_FAST_COMPILE

from unetseg.images import write_png

ROOT = Path(__file__).resolve().parents[1]

# TensorFlow, DVC and dvclive are absent on the GPU machine: any import of them fails here.
WITHOUT = textwrap.dedent("""
    import importlib.abc, runpy, sys
    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {"tensorflow", "dvc", "dvclive"}:
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, Absent())
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    print("LOADED", *sorted(n for n in sys.modules
                            if n.split(".")[0] in {"tensorflow", "dvc", "dvclive"}))
""")


def _em_folder(root: Path, n: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for sub in ("image", "label"):
        (root / "train" / sub).mkdir(parents=True)
    for k in range(n):
        label = np.full((48, 48), 255, np.uint8)
        label[rng.integers(0, 48), :] = 0
        label[:, rng.integers(0, 48)] = 0
        image = (label * 0.6 + rng.integers(0, 60, label.shape)).astype(np.uint8)
        write_png(root / "train" / "image" / f"{k}.png", image)
        write_png(root / "train" / "label" / f"{k}.png", label)
    return root


def test_gpu_train_runs_tiny_on_cpu_without_tensorflow_dvc_or_dvclive(tmp_path):
    data = _em_folder(tmp_path / "em")
    args = ["--tile", "44", "--depth", "2", "--filters", "4", "--batches", "2",
            "--bench-seconds", "0.1", "--warmup", "1", "--em-seconds", "2", "--em-tile", "44",
            "--em-depth", "2", "--em-filters", "4", "--copies", "1", "--holdout", "2",
            "--data", str(data), "--workers", "1"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "src"), "JAX_PLATFORMS": "cpu",
           "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": "", "XLA_FLAGS": XLA_FAST_COMPILE}
    out = subprocess.run([sys.executable, "-c", WITHOUT, str(ROOT / "benchmarks" / "gpu_train.py"),
                          *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "LOADED", "nothing of TensorFlow, DVC or dvclive loaded"
    result = json.loads(out.stdout[:out.stdout.rindex("LOADED")])
    assert result["backend"] == "jax" and result["platform"] == "cpu"
    speed = result["speed"]
    assert [(r["batch"], r["precision"]) for r in speed] == [(2, "bfloat16"), (2, "float32")]
    for r in speed:
        assert abs(r["samples_per_s"] - r["steps_per_s"] * r["batch"]) < 0.01 * r["samples_per_s"]
        assert 0 < r["share_of_peak"] < 1 and r["tflops"] >= 0
    model = result["model"]
    assert model["tile"] == "44->4" and model["forward_gflop_per_sample"] >= 0
    em = result["em"]
    assert em["test_slices"] == ["em_3", "em_4"] and em["train_slices"][-1] == "em_2"
    assert em["tiles"] > 0 and em["steps"] >= 1 and em["precision"] == "bfloat16"
    assert 0.0 <= em["pixel_error"] <= 1.0 and len(em["pixel_error_per_slice"]) == 2


def test_conv_flops_count_the_paper_network():
    import runpy

    from unetseg.config import ModelParams, TrainParams
    from unetseg.train.fit import compiled_model

    environ = dict(os.environ)
    conv_flops = runpy.run_path(str(ROOT / "benchmarks" / "gpu_train.py"))["conv_flops"]
    assert dict(os.environ) == environ, "importing the benchmark leaves the environment alone"
    paper = compiled_model(ModelParams(depth=4, base_filters=64, tile_size=572), TrainParams())
    assert 31.0e6 < paper.count_params() < 31.1e6, "the paper's ~31 M parameters"
    assert 100e9 < conv_flops(paper) < 400e9
    one = compiled_model(ModelParams(depth=1, base_filters=2, tile_size=20, dropout=0.0),
                         TrainParams())
    # 20 -> 18 -> 16, pool 8 -> 6 -> 4, up 8, concat 2+2 -> 6 -> 4, 1x1 logits: by hand.
    by_hand = 2 * (18 * 18 * 2 * 9 * 1 + 16 * 16 * 2 * 9 * 2 + 6 * 6 * 4 * 9 * 2 + 4 * 4 * 4 * 9 * 4
                   + 4 * 4 * 4 * 4 * 2 + 6 * 6 * 2 * 9 * 4 + 4 * 4 * 2 * 9 * 2 + 4 * 4 * 2 * 1 * 2)
    assert conv_flops(one) == by_hand
