"""A training run killed mid-way resumes from its last checkpoint on the next `dvc repro`."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _state(path: Path) -> dict | None:
    """The checkpoint's state.json, or None while there is none."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def test_killed_training_resumes_on_next_repro(trained_project):
    project = trained_project
    project.set_params({"train": {"epochs": 4, "fixed_steps_per_epoch": 25, "batch_size": 2}})
    project.commit("longer training")
    state_file = project.path / ".checkpoints" / "train" / "state.json"
    # The trained project's own checkpoint (other params): to be discarded, never resumed.
    stale = (_state(state_file) or {}).get("fingerprint")
    proc = subprocess.Popen(["dvc", "repro", "train"], cwd=project.path, env=project.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    killed_after = None
    while time.monotonic() < deadline and proc.poll() is None:
        state = _state(state_file)
        if state is not None and state["fingerprint"] != stale and state["epoch"] >= 1:
            os.killpg(proc.pid, signal.SIGKILL)
            killed_after = state["epoch"]
            break
        time.sleep(0.2)
    proc.wait(timeout=60)
    assert killed_after is not None and killed_after < 4, "training was not caught mid-run"
    assert not (project.path / "models" / "model.keras").exists()
    resumed = project.run("dvc", "repro", "train")
    assert "resuming from the checkpoint after epoch" in resumed.stderr + resumed.stdout
    metrics = json.loads((project.path / "metrics" / "train.json").read_text())
    assert metrics["epochs"] == 4
    loss = project.path / "plots" / "train" / "plots" / "metrics" / "loss.tsv"
    steps = loss.read_text().splitlines()
    assert len(steps) == 1 + 4, steps
    assert "Running stage" not in project.run("dvc", "repro", "train").stdout
