"""The JAX backend: the pipeline trains on it, data-parallel over devices, models load on TF.

Each backend runs in its own subprocess (Keras picks its backend once per process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import XLA_FAST_COMPILE

from unetseg.config import PrepareParams
from unetseg.prepare.store import TileWriter

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, backend: str, cwd: Path, devices: int = 1,
            check: bool = True) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "src"), "KERAS_BACKEND": backend,
           "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} {XLA_FAST_COMPILE}"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_dvc_experiment_trains_on_jax_in_bfloat16(trained_project):
    project = trained_project
    project.env.update(KERAS_BACKEND="jax", XLA_FLAGS=XLA_FAST_COMPILE)
    ran = project.run("dvc", "exp", "run", "-n", "jax-bf16", "-S", "train.epochs=1",
                      "-S", "train.mixed_precision=bfloat16").stdout
    assert "Running stage 'train'" in ran and "Running stage 'evaluate'" in ran, ran
    card = json.loads((project.path / "models" / "card.json").read_text())
    assert card["backend"] == "jax" and card["versions"]["jax"]
    assert card["train"]["mixed_precision"] == "bfloat16" and card["epochs"] == 1
    trained = json.loads((project.path / "metrics" / "train.json").read_text())
    assert np.isfinite(trained["loss"]) and trained["replicas"] == 1
    evaluation = json.loads((project.path / "metrics" / "evaluate.json").read_text())
    assert 0.0 <= evaluation["seg"] <= 1.0


TRAIN_ON_JAX = """
    import numpy as np, keras
    from unetseg.config import ModelParams, TrainParams
    from unetseg.train.fit import compiled_model
    assert keras.backend.backend() == "jax"
    rng = np.random.default_rng(0)
    x = rng.random((4, 44, 44, 1), dtype=np.float32)
    y = np.stack([rng.random((4, 4, 4)) > 0.5, np.ones((4, 4, 4))], -1).astype("float32")
    np.save("x.npy", x)
    for precision in ("none", "bfloat16"):
        keras.utils.set_random_seed(0)
        model = compiled_model(ModelParams(depth=2, base_filters=4, tile_size=44, dropout=0.0),
                               TrainParams(epochs=1, mixed_precision=precision))
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        model.save(f"{precision}.keras")
        np.save(f"jax-{precision}.npy", np.asarray(model.predict(x, verbose=0), dtype=np.float32))
"""

PREDICT_ON_TF = """
    import numpy as np, keras
    assert keras.backend.backend() == "tensorflow"
    for precision in ("none", "bfloat16"):
        model = keras.saving.load_model(f"{precision}.keras", compile=False)
        logits = model.predict(np.load("x.npy"), verbose=0)
        np.save(f"tf-{precision}.npy", np.asarray(logits, dtype=np.float32))
        print(model.get_layer("x0_0_conv1").dtype_policy.name, model.get_layer("logits").dtype)
"""


@pytest.mark.tensorflow
def test_jax_trained_model_predicts_the_same_on_tensorflow(tmp_path):
    _python(TRAIN_ON_JAX, "jax", tmp_path)
    out = _python(PREDICT_ON_TF, "tensorflow", tmp_path)
    assert out.stdout.split()[-4:] == ["float32", "float32", "mixed_bfloat16", "float32"]
    for precision, tol in (("none", 1e-5), ("bfloat16", 2e-2)):
        on_jax = np.load(tmp_path / f"jax-{precision}.npy")
        on_tf = np.load(tmp_path / f"tf-{precision}.npy")
        assert on_jax.shape == on_tf.shape == (4, 4, 4, 2)
        assert np.abs(on_jax).max() > 0.01, "a trained model, not zeros"
        np.testing.assert_allclose(on_tf, on_jax, atol=tol * max(1.0, np.abs(on_jax).max()),
                                   err_msg=precision)


def _tiny_store(path: Path, n: int = 12, in_size: int = 44, out_size: int = 4) -> None:
    """A tile store at ``path`` and, beside it, the ingest manifest the train stage reads."""
    manifest = {"source": "synthetic", "layout": "synthetic", "annotations": "gt",
                "protocol": "random", "pairs": [{"split": "train"}] * n}
    path.with_name("manifest.json").write_text(json.dumps(manifest))
    rng = np.random.default_rng(1)
    with TileWriter(path, n, in_size, out_size, {"prepare": asdict(PrepareParams())}) as writer:
        writer.append(rng.random((n, in_size, in_size), dtype=np.float32),
                      (rng.random((n, out_size, out_size)) > 0.5).astype(np.uint8),
                      np.ones((n, out_size, out_size), np.float32), 0, 0)


def _stage_code(folders: list[str]) -> str:
    """Run stages/train.py once per folder, in one process (each folder holds its params.yaml)."""
    return f"""
        import os, runpy, sys
        for folder in {folders!r}:
            os.chdir(folder)
            sys.argv = ["train.py", "--params", "params.yaml", "--data", "../tiles.h5",
                        "--manifest", "../manifest.json", "--model", "model.keras",
                        "--card", "card.json", "--metrics", "train.json", "--live", "live",
                        "--checkpoint", "ckpt"]
            try:
                runpy.run_path({str(ROOT / "stages" / "train.py")!r}, run_name="__main__")
            except SystemExit as stop:
                print("EXIT", stop.code)
            os.chdir("..")
    """


def _params(folder: Path, **train: object) -> str:
    folder.mkdir()
    params = {"model": {"depth": 2, "base_filters": 4, "tile_size": 44},
              "train": {"epochs": 1, "batch_size": 4, "val_fraction": 0.0, **train}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder.name


SHARDS = """
    import keras, numpy as np
    from unetseg.train.fit import distribution_scope
    with distribution_scope("auto", 4) as replicas:
        layout = keras.distribution.distribution().get_data_layout((4, 8))
        x = keras.distribution.distribute_tensor(np.zeros((4, 8), "float32"), layout)
        print("SHARDS", replicas, *sorted(s.data.shape[0] for s in x.addressable_shards))
    assert keras.distribution.distribution() is None
"""


def test_data_parallel_on_two_host_devices_splits_the_batch(tmp_path):
    _tiny_store(tmp_path / "tiles.h5")
    folders = [_params(tmp_path / "single", strategy="default"),
               _params(tmp_path / "double", strategy="auto")]
    code = textwrap.dedent(_stage_code(folders)) + textwrap.dedent(SHARDS)
    run = _python(code, "jax", tmp_path, devices=2)
    assert run.stdout.split("SHARDS")[-1].split() == ["2", "2", "2"], "a batch of 4 is 2 per device"
    assert "EXIT 0" in run.stdout and "EXIT 1" not in run.stdout, run.stderr[-3000:]
    losses = []
    for name, replicas in (("single", 1), ("double", 2)):
        metrics = json.loads((tmp_path / name / "train.json").read_text())
        card = json.loads((tmp_path / name / "card.json").read_text())
        assert metrics["replicas"] == card["replicas"] == replicas
        losses.append(metrics["loss"])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4), "same global batches, same loss"


def test_batch_that_does_not_split_over_the_devices_fails_cleanly(tmp_path):
    _tiny_store(tmp_path / "tiles.h5")
    run = _python(_stage_code([_params(tmp_path / "odd", batch_size=3)]), "jax", tmp_path,
                  devices=2)
    assert run.stdout.split()[-2:] == ["EXIT", "1"], run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: train.batch_size: 3 tiles do not split evenly over 2"), \
        run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "odd" / "model.keras").exists()
