"""A stage killed at any moment leaves either its old output or its new one, never half of one.

The prepare stage is killed at each moment that matters (before it writes, half-way through a
write, between a write and its rename, between its two outputs): it stops itself there, so the
kill cannot come too early or too late. A ``dvc repro`` is killed while its stage runs.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import h5py
import pytest
import yaml

pytestmark = pytest.mark.slow

# Where the prepare stage is killed, in the order it gets there: the event at which it stops
# itself (see STOP_AT), what train.h5 holds after the kill, and how many of its temporaries
# (the writer's, cut short) lie beside it.
KILL_POINTS = {
    "reading its inputs": ("open", "ingested", 1, "old", 0),
    "half-way through writing train.h5": ("h5py.create_dataset", "train.h5", 2, "old", 1),
    "train.h5 written, not yet renamed": ("os.rename", ".train.h5.", 1, "old", 1),
    "train.h5 renamed, test.h5 not yet": ("os.rename", ".test.h5.", 1, "new", 1),
}

# Runs a stage script (argv[4:]) that sends itself SIGSTOP at the argv[3]-th audit event named
# argv[1] whose first argument contains argv[2]; "h5py.create_dataset" is raised here, after
# each dataset h5py creates, with the file's name, as h5py writes without Python's open().
STOP_AT = """
import os, runpy, signal, sys
import h5py
event, part, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = []
def stop_at(name, args):
    if name == event and args and part in str(args[0]):
        seen.append(name)
        if len(seen) == count:
            os.kill(os.getpid(), signal.SIGSTOP)
create_dataset = h5py.Group.create_dataset
def audited(self, *args, **kwargs):
    dataset = create_dataset(self, *args, **kwargs)
    sys.audit("h5py.create_dataset", self.file.filename)
    return dataset
h5py.Group.create_dataset = audited
sys.addaudithook(stop_at)
sys.argv = sys.argv[4:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _runs(group: int, script: str) -> bool:
    """Whether a process of process group ``group`` has ``script`` on its command line."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pgrp = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            if pgrp == group and script in (stat.parent / "cmdline").read_bytes().decode():
                return True
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue
    return False


def _kill_at(cmd: list[str], project, event: str, part: str, count: int) -> None:
    """Run the stage ``cmd`` until it stops itself at an event (see STOP_AT), then SIGKILL it.

    Fails unless the stage got there, stopped, still alive, and died of the SIGKILL.
    """
    python, *script = cmd
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([python, "-c", STOP_AT, event, part, str(count), *script],
                                cwd=project.path, env=project.env, stdout=log, stderr=log,
                                start_new_session=True)
        deadline = time.monotonic() + 300
        pid, status = 0, 0
        while not pid and time.monotonic() < deadline:
            time.sleep(0.02)
            pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid and not os.WIFSTOPPED(status):  # it ended without stopping: nothing was killed
            proc.returncode = os.waitstatus_to_exitcode(status)
            log.seek(0)
            pytest.fail(f"the stage ended ({proc.returncode}) before {event} {part} #{count}:"
                        f"\n{log.read().decode(errors='replace')[-2000:]}")
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    assert pid, f"the stage did not get to {event} {part} #{count} in 300 s"


def test_killed_stage_leaves_old_or_new_output(project):
    project.set_params({"synthetic": {"n_images": 16, "height": 160, "width": 160, "n_cells": 10}})
    project.run("dvc", "repro", "prepare")
    target = project.path / "data" / "prepared" / "train.h5"
    old = _digest(target)
    project.set_params({"prepare": {"w0": 5.0}})
    cmd = shlex.split(yaml.safe_load((project.path / "dvc.yaml").read_text())
                      ["stages"]["prepare"]["cmd"])
    seen, temporaries = {}, {}
    for point, (event, part, count, holds, _) in KILL_POINTS.items():
        _kill_at(cmd, project, event, part, count)
        seen[point] = _digest(target)
        assert holds != "old" or seen[point] == old, f"killed {point}: train.h5 changed"
        leftovers = [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]
        assert len(leftovers) <= 1, leftovers
        temporaries[point] = len(leftovers)
    project.run(*cmd)
    new = _digest(target)
    assert old != new
    assert set(seen.values()) <= {old, new}, "a kill left a half-written output"
    assert seen == {point: {"old": old, "new": new}[holds]
                    for point, (*_, holds, _) in KILL_POINTS.items()}
    assert temporaries == {point: temps for point, (*_, temps) in KILL_POINTS.items()}
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
    with h5py.File(target, "r") as f:
        assert len(f.keys()) > 0


def test_killed_repro_never_leaves_an_output_dvc_trusts(project):
    project.run("dvc", "repro", "prepare")
    target = project.path / "data" / "prepared" / "train.h5"
    old = _digest(target)
    project.set_params({"prepare": {"w0": 5.0}})
    proc = subprocess.Popen(["dvc", "repro", "prepare"], cwd=project.path, env=project.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline, ran = time.monotonic() + 300, False
    while not ran and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        ran = _runs(proc.pid, "stages/prepare.py")
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL and ran, "killed while the stage ran"
    # DVC removes a stage's outputs before running it: a killed run leaves none, or the new one.
    assert _digest(target) != old
    project.run("dvc", "repro", "prepare")
    assert "up to date" in project.run("dvc", "status", "prepare").stdout
