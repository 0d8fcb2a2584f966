import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from unetseg.config import ModelParams, TrainParams
from unetseg.train.fit import RunState, fingerprint, load_state, samples_per_second

ROOT = Path(__file__).resolve().parents[1]


def test_fingerprint_changes_with_params_and_data(tmp_path):
    data = tmp_path / "d.bin"
    data.write_bytes(b"abc")
    a = fingerprint({"lr": 1}, files=(data,))
    assert a == fingerprint({"lr": 1}, files=(data,))
    assert a != fingerprint({"lr": 2}, files=(data,))
    data.write_bytes(b"abd")
    assert a != fingerprint({"lr": 1}, files=(data,))


def test_stale_checkpoint_is_discarded(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "last.keras").write_bytes(b"x")
    (ckpt / "state.json").write_text(json.dumps({"fingerprint": "old", "epoch": 3, "history": {},
                                                 "seconds": [], "samples": []}))
    assert load_state(ckpt, "old").epoch == 3
    fresh = load_state(ckpt, "new")
    assert fresh.epoch == 0 and not ckpt.exists()


def test_samples_per_second_skips_the_tracing_epoch():
    state = RunState("f", 3, {}, [10.0, 1.0, 1.0], [10, 10, 10])
    assert samples_per_second(state) == pytest.approx(10.0)
    assert samples_per_second(RunState("f", 1, {}, [2.0], [10])) == pytest.approx(5.0)


MIRRORED = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from unetseg.config import ModelParams, TrainParams
    from unetseg.train.fit import compiled_model, distribution_scope
    m = ModelParams(depth=2, base_filters=4, tile_size=44)
    p = TrainParams(strategy="mirrored", batch_size=4)
    with distribution_scope(p.strategy, p.batch_size) as replicas:
        model = compiled_model(m, p)
    x = np.random.default_rng(0).random((8, 44, 44, 1)).astype("float32")
    y = np.zeros((8, 4, 4, 2), "float32"); y[..., 1] = 1.0
    hist = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    print("REPLICAS", replicas, "LOSS", hist.history["loss"][0], hist.history["loss"][-1])
""")


@pytest.mark.tensorflow
def test_mirrored_strategy_on_two_logical_cpus():
    out = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                         timeout=300,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
                              "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")})
    assert out.returncode == 0, out.stderr[-2000:]
    words = out.stdout.split()
    assert words[words.index("REPLICAS") + 1] == "2"
    first, last = float(words[-2]), float(words[-1])
    assert np.isfinite(first) and last < first


@pytest.mark.parametrize("schedule, half",
                         [("constant", 1.0), ("cosine", 0.5), ("poly", 0.5 ** 0.9)])
def test_learning_rate_schedules_decay_to_zero_over_all_steps(schedule, half):
    from unetseg.train.fit import learning_rate

    lr = learning_rate(TrainParams(lr=0.01, lr_schedule=schedule), total_steps=100)
    value = (lambda step: float(lr(step))) if callable(lr) else (lambda step: lr)
    assert value(0) == pytest.approx(0.01)
    assert value(50) == pytest.approx(0.01 * half, rel=1e-4)
    assert value(100) == pytest.approx(0.0 if schedule != "constant" else 0.01, abs=1e-9)
    if schedule != "constant":
        with pytest.raises(ValueError, match="needs the number of training steps"):
            learning_rate(TrainParams(lr_schedule=schedule), total_steps=0)


def test_resumed_schedule_continues_where_the_checkpoint_stopped(tmp_path):
    from unetseg.train.fit import compiled_model, restore

    m, p = ModelParams(depth=2, base_filters=4, tile_size=44), TrainParams(lr=0.01, epochs=4,
                                                                           lr_schedule="cosine")
    x = np.random.default_rng(0).random((8, 44, 44, 1)).astype("float32")
    y = np.zeros((8, 4, 4, 2), "float32")
    y[..., 1] = 1.0
    model = compiled_model(m, p, steps_per_epoch=2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "last.keras")
    resumed = compiled_model(m, p, steps_per_epoch=2)
    restore(resumed, tmp_path / "last.keras")
    iterations = int(resumed.optimizer.iterations.numpy())
    assert iterations == 2
    expected = 0.01 * 0.5 * (1 + np.cos(np.pi / 4))
    assert float(resumed.optimizer.learning_rate) == pytest.approx(expected, rel=1e-5)


_TF_SEES = textwrap.dedent("""
    import importlib.abc, os, runpy, sys
    seen = []
    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow" and not seen:
                seen.append(os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"))
    sys.meta_path.insert(0, Spy())
    sys.argv = [sys.argv[1], "--help"]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit:
        pass
    print(seen[0] if seen else "not imported")
""")


@pytest.mark.tensorflow
@pytest.mark.parametrize("stage, user, expected", [
    ("train", None, "1"), ("evaluate", None, "1"), ("train", "0", "0"),
])
def test_stages_ask_tensorflow_for_onednn_before_it_loads(stage, user, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["KERAS_BACKEND"] = "tensorflow"
    if user is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user
    out = subprocess.run([sys.executable, "-c", _TF_SEES, str(ROOT / "stages" / f"{stage}.py")],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == expected


def test_importing_the_package_sets_no_environment_variable():
    code = ("import os; before = dict(os.environ); import unetseg, unetseg.config; "
            "print(sorted(set(os.environ.items()) ^ set(before.items())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("precision, policy", [("none", "float32"), ("float16", "mixed_float16"),
                                               ("bfloat16", "mixed_bfloat16")])
def test_mixed_precision_keeps_logits_and_loss_in_float32(precision, policy):
    import keras

    from unetseg.train.fit import compiled_model

    before = keras.config.dtype_policy().name
    model = compiled_model(ModelParams(depth=2, base_filters=4, tile_size=44),
                           TrainParams(mixed_precision=precision))
    assert keras.config.dtype_policy().name == before, "the global policy is put back"
    assert model.get_layer("x0_0_conv1").dtype_policy.name == policy
    assert model.get_layer("logits").compute_dtype == "float32" and model.output.dtype == "float32"
    x = np.random.default_rng(0).random((2, 44, 44, 1)).astype("float32")
    y = np.zeros((2, 4, 4, 2), "float32")
    y[..., 1] = 1.0
    loss = model.compute_loss(x, y, model(x))
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    scaled = type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert scaled == (precision == "float16"), "loss scaling for float16 only"


def test_multi_worker_is_refused_off_tensorflow(monkeypatch):
    import keras

    from unetseg.errors import InputError
    from unetseg.train.fit import distribution_scope

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(InputError, match="train.strategy: multi_worker needs the TensorFlow"), \
            distribution_scope("multi_worker", 4):
        pass
