"""Shared fixtures: a copy of this project in a temporary git repository, driven by DVC.

``project`` is the untrained tiny project, for tests that must start from nothing. Training is
what makes an end-to-end test slow, so the tiny project is trained once per session
(``trained_base``) and each test that starts from a trained project gets its own copy of that
one (``trained_project``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from unetseg.runtime import configure_backend

configure_backend()  # before any test imports keras

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["src", "stages", "params.yaml", "dvc.yaml", "pyproject.toml", ".gitignore",
                 ".dvc/config", ".dvc/.gitignore", ".dvcignore"]

# For processes on the JAX backend: XLA's CPU backend without LLVM's optimisation passes. JAX
# compiles each weight initializer (one per kernel shape) and each step function of the tiny
# test models, which then run a few steps: at -O0 that takes a third of the CPU time.
XLA_FAST_COMPILE = "--xla_backend_optimization_level=0"

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
        return _checked(result) if check else result

    def start(self, *args: str, logs: Path, env: dict[str, str] | None = None) -> Background:
        """Start a command here and return at once (its process is ``.proc``)."""
        return Background(list(args), self.path, self.env if env is None else env, logs)

    def set_params(self, overrides: dict) -> None:
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for section, values in overrides.items():
            params.setdefault(section, {}).update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message)


def _checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise AssertionError(f"{tuple(result.args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class Background:
    """A command started by ``Project.start``, in its own process group; its output goes to
    ``logs`` with the suffixes .stdout and .stderr."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], logs: Path) -> None:
        with logs.with_suffix(".stdout").open("w") as out, \
                logs.with_suffix(".stderr").open("w") as err:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=err,
                                         text=True, start_new_session=True)

    def stop(self) -> None:
        """Kill it and whatever it started, if it still runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


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


def tiny_project(dest: Path) -> Project:
    """This project's code and pipeline at ``dest``, tiny params, committed in a fresh git repo."""
    proj = copy_project(dest)
    proj.set_params(TINY)
    proj.commit("tiny project")
    return proj


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """This project's code and pipeline, tiny params, committed in a fresh git repo: untrained,
    for tests that start from nothing (``trained_project`` is the same, trained)."""
    return tiny_project(tmp_path / "proj")


# The DVC cache's content-addressed files: hard-linked into each copy (see clone_project).
CACHE_FILES = Path(".dvc") / "cache" / "files"


def clone_project(base: Project, dest: Path) -> Project:
    """A private copy of ``base`` at ``dest``: git repo, workspace and DVC cache.

    Everything is copied except the files of DVC's cache (``.dvc/cache/files``), which are
    hard-linked: a cache file is named by the md5 of its content and DVC never writes into
    one. It writes a new object to a temporary name and moves it into place, checks objects
    out to the workspace as copies (``cache.type`` is DVC's default, reflink or copy, so no
    workspace file is a link to the cache) and removes objects by unlinking them, which
    leaves the other copies' links alone. The run cache (``.dvc/cache/runs``) is copied, and
    ``.dvc/tmp`` (locks, DVC's state of the base's paths, the experiments queue) is left for
    DVC to make anew. ``test_pipeline.py`` checks that a copy cannot change ``base``.
    """
    leave = {base.path / ".dvc" / "tmp", base.path / CACHE_FILES}
    shutil.copytree(base.path, dest, symlinks=True,
                    ignore=lambda folder, names: {n for n in names if Path(folder, n) in leave})
    if (base.path / CACHE_FILES).exists():
        shutil.copytree(base.path / CACHE_FILES, dest / CACHE_FILES, copy_function=os.link)
    return Project(dest)


# Run in the background by one test process: the first ``dvc repro`` of the tiny project, then
# its results committed; "$1.code" appears (atomically) once both are done, with the exit code.
_TRAIN_AND_COMMIT = (
    'dvc repro >"$1.stdout" 2>"$1.stderr"; code=$?; '
    'if [ $code -eq 0 ]; then git add -A && git commit -q -m results || code=$?; fi; '
    'echo $code >"$1.code.tmp" && mv "$1.code.tmp" "$1.code"')

_TRAINING = pytest.StashKey[Background]()


def _trained_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's trained project lives: shared by all pytest-xdist workers of a run
    (their base temporary folders are siblings), else in this session's own."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "trained"


def _start_training_once(config: pytest.Config, folder: Path) -> None:
    """Start the training in ``folder`` unless a process of this run already has: the one whose
    ``mkdir`` succeeds trains, the others wait for its result (see trained_base)."""
    try:
        folder.mkdir()
    except FileExistsError:
        return
    proj = tiny_project(folder / "proj")
    env = {k: v for k, v in proj.env.items() if not k.startswith("TF_")}
    config.stash[_TRAINING] = proj.start("sh", "-c", _TRAIN_AND_COMMIT, "sh",
                                         str(folder / "repro"), logs=folder / "train", env=env)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests last: the fast ones report first, and meanwhile trained_base trains."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is not None)


@pytest.fixture(scope="session", autouse=True)
def _training_starts_with_the_session(request: pytest.FixtureRequest,
                                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start trained_base's ``dvc repro`` in the background as the session starts, when a
    selected test needs it: it trains while the fast tests run, instead of holding up the first
    test that needs it. With pytest-xdist one worker trains it for all. At the session's end it
    is waited for (another worker may still need it; it ends within minutes), then killed if it
    still runs."""
    if any("trained_base" in item.fixturenames for item in request.session.items):
        _start_training_once(request.config, _trained_folder(tmp_path_factory))
    yield
    training = request.config.stash.get(_TRAINING, None)
    if training is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            training.proc.wait(900 if "PYTEST_XDIST_WORKER" in os.environ else 0)
        training.stop()


@dataclasses.dataclass(frozen=True)
class Trained:
    """The session's trained tiny project and what its one ``dvc repro`` printed."""

    project: Project
    repro: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def trained_base(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The tiny project trained once per test run: every stage run by ``dvc repro``, committed.

    Two commits: the tiny params, then the results (``dvc.lock``, metrics, plots). Nothing may
    run in ``trained_base.project`` afterwards: it is the template of every
    ``trained_project``, in every xdist worker. ``repro`` is that first ``dvc repro``, in which
    every stage ran; it ran without this conftest's ``TF_*`` variables, so its console is what
    a user sees. It was started with the session (see ``_training_starts_with_the_session``).
    """
    folder = _trained_folder(tmp_path_factory)
    _start_training_once(request.config, folder)
    code = folder / "repro.code"
    deadline = time.monotonic() + 1800
    while not code.exists():
        training = request.config.stash.get(_TRAINING, None)
        if (training is not None and training.proc.poll() is not None and not code.exists()) \
                or time.monotonic() > deadline:
            raise AssertionError(f"the shared training in {folder} ended without a result:\n"
                                 + (folder / "train.stderr").read_text()[-3000:])
        time.sleep(0.5)
    repro = _checked(subprocess.CompletedProcess(
        ["dvc", "repro"], int(code.read_text()), (folder / "repro.stdout").read_text(),
        (folder / "repro.stderr").read_text()))
    return Trained(Project(folder / "proj"), repro)


@pytest.fixture
def trained_project(trained_base: Trained, tmp_path: Path) -> Project:
    """A private copy of ``trained_base``: tiny params and results committed, DVC cache filled.

    ``dvc status`` finds it up to date, and ``dvc repro`` or ``dvc exp run -S ...`` re-runs
    only the stages whose params or deps the test changes. Like any trained workspace it holds
    the training's checkpoint (``.checkpoints/train``). The test may do anything to it.
    """
    return clone_project(trained_base.project, tmp_path / "proj")
