"""Experiments are compared with DVC's own tools: exp show, metrics diff, plots diff, queue."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _experiments(project) -> dict[str, dict[str, Any]]:
    """name -> {"params": flat params.yaml, "metrics": {file: data}} from `dvc exp show --json`."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and node.get("name") and "metrics" in data:
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = {k: v.get("data", {}) for k, v in (data.get("metrics") or {}).items()}
                found[node["name"]] = {"params": params, "metrics": metrics,
                                       "status": data.get("status")}
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(project.run("dvc", "exp", "show", "--json").stdout))
    return found


def _experiment_refs(project) -> int:
    """How many finished experiments git holds: refs/exps/<baseline sha as 2/38>/<name>."""
    refs = project.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout.split()
    return sum(len(parts) == 5 and len(parts[2]) == 2 for parts in (r.split("/") for r in refs))


def _wait_for_queue(project, experiments: int, timeout: float = 900) -> str:
    """Wait until DVC's queue has nothing queued or running; return `dvc queue status`.

    Each `dvc queue status` is a Python start-up that takes a core from the training the
    queue runs, so it is asked only once git holds ``experiments`` experiment refs (a queued
    experiment's ref is made when it has finished) or, in case one failed, every 15 s.
    """
    deadline = time.monotonic() + timeout
    asked, status = time.monotonic(), ""
    while time.monotonic() < deadline:
        if _experiment_refs(project) >= experiments or time.monotonic() - asked > 15:
            status, asked = project.run("dvc", "queue", "status").stdout, time.monotonic()
            if "Queued" not in status and "Running" not in status:
                break
        time.sleep(0.5)
    return status


def test_experiments_are_listed_and_compared(trained_project):
    project = trained_project
    project.run("dvc", "exp", "run", "-n", "lr-half", "-S", "train.lr=0.0005")
    project.run("dvc", "exp", "run", "-n", "one-epoch", "-S", "train.epochs=1")
    exps = _experiments(project)
    assert {"lr-half", "one-epoch"} <= exps.keys(), exps.keys()
    a, b = exps["lr-half"], exps["one-epoch"]
    assert a["params"]["train"]["lr"] == 0.0005 and b["params"]["train"]["epochs"] == 1
    for exp in (a, b):
        assert set(exp["metrics"]["metrics/evaluate.json"]) >= {"iou", "seg", "dice", "pixel_error",
                                                                "rand_error"}
    assert a["metrics"]["metrics/train.json"]["loss"] != b["metrics"]["metrics/train.json"]["loss"]

    diff = json.loads(project.run("dvc", "metrics", "diff", "lr-half", "one-epoch",
                                  "--json").stdout)
    assert "metrics/train.json" in diff and "loss" in diff["metrics/train.json"]
    plots = project.run("dvc", "plots", "diff", "lr-half", "one-epoch", "--json")
    assert "loss" in plots.stdout

    finished = _experiment_refs(project)
    project.run("dvc", "exp", "run", "--queue", "-S", "train.lr=0.002,0.003")
    project.run("dvc", "queue", "start", "-j", "1")
    status = _wait_for_queue(project, experiments=finished + 2)
    project.run("dvc", "queue", "stop", check=False)
    grid = [e for e in _experiments(project).values()
            if e["params"].get("train", {}).get("lr") in (0.002, 0.003)]
    assert len(grid) == 2, status
    assert all("metrics/evaluate.json" in e["metrics"] for e in grid)


def test_branches_are_compared(trained_project):
    project = trained_project
    project.run("git", "checkout", "-q", "-b", "fewer-epochs")
    project.set_params({"train": {"epochs": 1}})
    project.run("dvc", "repro")
    project.commit("one epoch")
    diff = json.loads(project.run("dvc", "metrics", "diff", "main", "--json").stdout)
    assert diff["metrics/train.json"]["epochs"]["diff"] == -1
    params = json.loads(project.run("dvc", "params", "diff", "main", "--json").stdout)
    epochs = params["params.yaml"]["train.epochs"]
    assert (epochs["old"], epochs["new"]) == (2, 1)


def test_every_architecture_runs_as_an_experiment(trained_project):
    project = trained_project
    archs = ("resunet", "unetpp", "attention_unet")
    for arch in archs:
        project.run("dvc", "exp", "run", "-n", arch, "-S", f"model.arch={arch}",
                    "-S", "train.epochs=1")
    exps = _experiments(project)
    for arch in archs:
        assert exps[arch]["params"]["model"]["arch"] == arch
        assert exps[arch]["metrics"]["metrics/train.json"]["epochs"] == 1
        assert "seg" in exps[arch]["metrics"]["metrics/evaluate.json"]
