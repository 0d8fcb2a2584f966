"""Shared fixtures: a copy of this project in a temporary git repository, driven by DVC."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unetseg.runtime import configure_backend

configure_backend()  # before any test imports keras

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["src", "stages", "params.yaml", "dvc.yaml", "pyproject.toml", ".gitignore",
                 ".dvc/config", ".dvc/.gitignore", ".dvcignore"]

# Tiny params: every stage runs for real, in seconds.
TINY = {
    "synthetic": {"n_images": 6, "height": 72, "width": 72, "n_cells": 5},
    "augment": {"copies": 1},
    "model": {"depth": 2, "base_filters": 4, "tile_size": 60},
    "train": {"epochs": 2, "batch_size": 2, "fixed_steps_per_epoch": 3},
    "evaluate": {"n_overlays": 1},
}


class Project:
    """A throwaway DVC project: ``run`` executes a command there with the venv first on PATH."""

    def __init__(self, path: Path) -> None:
        self.path = path
        bin_dir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": str(path / "src"), "DVC_NO_ANALYTICS": "1",
                    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
                    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost",
                    "CUDA_VISIBLE_DEVICES": ""}

    def run(self, *args: str, check: bool = True,
            timeout: float = 900) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.path, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                                 f"{result.stderr[-3000:]}")
        return result

    def set_params(self, overrides: dict) -> None:
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for section, values in overrides.items():
            params.setdefault(section, {}).update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def copy_project(dest: Path) -> Project:
    """This project's code and pipeline copied to ``dest``, in a fresh git repo (uncommitted)."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    proj = Project(dest)
    proj.run("git", "init", "-q", "-b", "main")
    return proj


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """This project's code and pipeline, tiny params, committed in a fresh git repo."""
    proj = copy_project(tmp_path / "proj")
    proj.set_params(TINY)
    proj.commit("tiny project")
    return proj
