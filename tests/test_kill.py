"""A stage killed at any moment leaves either its old output or its new one, never half of one."""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest
import yaml

pytestmark = pytest.mark.slow

DELAYS = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _kill_after(cmd: list[str], project, delay: float) -> None:
    proc = subprocess.Popen(cmd, cwd=project.path, env=project.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_killed_stage_leaves_old_or_new_output(project):
    project.set_params({"synthetic": {"n_images": 16, "height": 160, "width": 160, "n_cells": 10}})
    project.run("dvc", "repro", "prepare")
    target = project.path / "data" / "prepared" / "train.h5"
    old = _digest(target)
    project.set_params({"prepare": {"w0": 5.0}})
    cmd = shlex.split(yaml.safe_load((project.path / "dvc.yaml").read_text())
                      ["stages"]["prepare"]["cmd"])
    seen = []
    for delay in DELAYS:
        _kill_after(cmd, project, delay)
        seen.append(_digest(target))
        leftovers = [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]
        assert len(leftovers) <= 1, leftovers
    project.run(*cmd)
    new = _digest(target)
    assert old != new
    assert set(seen) <= {old, new}, "a kill left a half-written output"
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
    with h5py.File(target, "r") as f:
        assert len(f.keys()) > 0


def test_killed_repro_never_leaves_an_output_dvc_trusts(project):
    project.run("dvc", "repro", "prepare")
    target = project.path / "data" / "prepared" / "train.h5"
    old = _digest(target)
    project.set_params({"prepare": {"w0": 5.0}})
    _kill_after(["dvc", "repro", "prepare"], project, 1.5)
    # DVC removes a stage's outputs before running it: a killed run leaves none, or the new one.
    assert _digest(target) != old
    project.run("dvc", "repro", "prepare")
    assert "up to date" in project.run("dvc", "status", "prepare").stdout
