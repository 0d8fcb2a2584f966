"""The two pinned environments: CPU (TensorFlow and JAX) and CUDA (JAX with its CUDA plugin)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", package).lower()] = version
    return pins


def test_cuda_lock_pins_jax_with_its_cuda_plugin_and_no_tensorflow():
    cuda = _pins("requirements-cuda.lock")
    jax = cuda["jax"]
    assert cuda["jaxlib"] == cuda["jax-cuda12-plugin"] == cuda["jax-cuda12-pjrt"] == jax
    assert any(p.startswith("nvidia-cudnn-cu12") for p in cuda) and "keras" in cuda
    assert not [p for p in cuda if p.startswith("tensorflow")]


def test_both_locks_agree_on_every_package_they_share():
    cpu, cuda = _pins("requirements.lock"), _pins("requirements-cuda.lock")
    assert {"jax", "jaxlib", "tensorflow-cpu"} <= cpu.keys()
    assert {p: (cpu[p], cuda[p]) for p in cpu.keys() & cuda.keys() if cpu[p] != cuda[p]} == {}


def test_both_environments_carry_the_test_oracle():
    for lock in ("requirements.lock", "requirements-cuda.lock"):
        assert "py-ctcmetrics" in _pins(lock), lock
