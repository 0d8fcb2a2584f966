"""Entry points start quietly: no backend start-up lines, one line per error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unetseg.runtime import _LOAD_NOISE, _dropped_from_stderr

ROOT = Path(__file__).resolve().parents[1]
# Lines TensorFlow, XLA or absl print on their own: C++ log lines (I0101 12:00:00.0 ...),
# absl's pre-initialisation notice, Python loggers' "WARNING:absl:" and "tensorflow" lines.
BACKEND_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|absl::InitializeLog|^(INFO|WARNING):"
                          r"(absl|tensorflow)|oneDNN|cpu_feature_guard|tensorflow/", re.MULTILINE)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return {**env, "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": "", **extra}


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(**env), timeout=300)


def test_configure_backend_is_idempotent_keeps_user_values_and_imports_quietly():
    code = ("import os, sys; from unetseg.runtime import configure_backend; configure_backend(); "
            "configure_backend(); import keras; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['TF_CPP_MIN_LOG_LEVEL'], "
            "keras.backend.backend() != 'tensorflow' or 'tensorflow' in sys.modules)")
    quiet = _python(code, TF_ENABLE_ONEDNN_OPTS="0")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.split() == ["0", "2", "True"]
    assert quiet.stderr == "", quiet.stderr


def test_a_jax_run_that_seeds_keras_stays_quiet_too():
    code = ("from unetseg.runtime import configure_backend; configure_backend(); "
            "import keras; keras.utils.set_random_seed(0); print(keras.backend.backend())")
    run = _python(code, KERAS_BACKEND="jax")
    assert run.stdout.split() == ["jax"] and run.stderr == "", run.stderr


def test_only_known_start_up_lines_are_dropped_and_only_when_quiet(capfd):
    noise = (b"WARNING: All log messages before absl::InitializeLog() is called are written to "
             b"STDERR\nI0000 00:00:17.1 4 port.cc:153] oneDNN custom operations are on. You\n")
    for quiet in (True, False):
        with _dropped_from_stderr(_LOAD_NOISE if quiet else None):
            os.write(2, noise + b"a real problem\n")
        assert capfd.readouterr().err == ("a real problem\n" if quiet else
                                          (noise + b"a real problem\n").decode())


STAGE_ARGS = {
    "ingest": ["--out", "o", "--metrics", "m.json", "--cache", "c"],
    "prepare": ["--ingested", "i", "--train", "a.h5", "--test", "b.h5", "--metrics", "m.json"],
    "augment": ["--prepared", "p.h5", "--out", "o.h5", "--metrics", "m.json"],
    "train": ["--data", "d.h5", "--manifest", "manifest.json", "--model", "m.keras",
              "--card", "c.json", "--metrics", "m.json", "--live", "live", "--checkpoint", "ckpt"],
    "evaluate": ["--prepared", "p.h5", "--model", "m.keras", "--card", "c.json",
                 "--postprocess-out", "post.json", "--out", "o",
                 "--metrics", "m.json", "--plots", "plots"],
}


@pytest.mark.parametrize("stage", sorted(STAGE_ARGS))
def test_a_stage_with_bad_params_prints_exactly_one_error_line(stage, tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  lr: -1\n")
    result = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py"), "--params",
                             "bad.yaml", *STAGE_ARGS[stage]], cwd=tmp_path, capture_output=True,
                            text=True, env=_env(), timeout=300)
    assert result.returncode == 1
    assert result.stderr == "error: params: train.lr: must be in (0, 10]\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing written"


def test_train_on_a_missing_tile_store_prints_exactly_one_error_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "train.py"),
                             "--params", str(ROOT / "params.yaml"), *STAGE_ARGS["train"]],
                            cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=300)
    assert (result.returncode, result.stderr) == (1, "error: d.h5: no such file\n")
