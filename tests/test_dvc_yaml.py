"""dvc.yaml tracks what each stage really reads: its params keys and its library modules."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from unetseg.config import Params

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "unetseg"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _module_file(dotted: str) -> Path | None:
    """``src/unetseg/...`` file of a dotted ``unetseg`` module or package, if it exists."""
    base = PACKAGE.joinpath(*dotted.split(".")[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[Path]:
    """Files of the ``unetseg`` modules a file imports anywhere (also inside functions), with
    the ``__init__.py`` of every package on the way.

    Library code and stages import names from the module that defines them, never through a
    subpackage's lazy public face (which a static reading cannot follow): such an import fails.
    """
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            for alias in node.names:
                if _module_file(f"{node.module}.{alias.name}"):
                    names.append(f"{node.module}.{alias.name}")
                elif node.module.startswith("unetseg.") and \
                        (PACKAGE.joinpath(*node.module.split(".")[1:]) / "__init__.py").is_file():
                    raise AssertionError(f"{path}: imports {alias.name} through the lazy face of "
                                         f"{node.module}; import it from its own module")
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; use absolute unetseg imports")
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "unetseg":
                continue
            for k in range(1, len(parts) + 1):
                file = _module_file(".".join(parts[:k]))
                if file is not None:
                    found.add(file)
    return found


def import_closure(script: Path) -> set[str]:
    """``src/unetseg/**.py`` paths ``script`` imports, directly or through other modules."""
    seen: set[Path] = set()
    todo = _imported_modules(script)
    while todo:
        file = todo.pop()
        if file not in seen:
            seen.add(file)
            todo |= _imported_modules(file)
    return {f.relative_to(ROOT).as_posix() for f in seen}


def _covers(dep: str, module: str) -> bool:
    return module == dep or module.startswith(dep.rstrip("/") + "/")


def test_import_closure_follows_every_import_form(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("from unetseg import cli\n"
                      "def f():\n    from unetseg.prepare.store import TileReader\n")
    closure = import_closure(script)
    assert {"src/unetseg/__init__.py", "src/unetseg/cli.py", "src/unetseg/prepare/__init__.py",
            "src/unetseg/prepare/store.py", "src/unetseg/errors.py",
            "src/unetseg/config.py"} <= closure
    assert "src/unetseg/train/models.py" not in closure
    script.write_text("from unetseg.data import load_split\n")
    with pytest.raises(AssertionError, match="lazy face of unetseg.data"):
        import_closure(script)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_exactly_the_modules_it_imports(name):
    """Every module a stage runs is covered by a dep (its file or its subpackage's folder), and
    every ``src/`` dep covers at least one of them."""
    stage = STAGES[name]
    script = next(d for d in stage["deps"] if d.startswith("stages/"))
    listed = {d for d in stage["deps"] if d.startswith("src/")}
    gone = {d for d in listed if not (ROOT / d).exists()}
    assert not gone, f"{name}: dvc.yaml lists modules that do not exist: {sorted(gone)}"
    needed = import_closure(ROOT / script)
    uncovered = {m for m in needed if not any(_covers(d, m) for d in listed)}
    assert not uncovered, f"{name}: imported but not in deps: {sorted(uncovered)}"
    unused = {d for d in listed if not any(_covers(d, m) for m in needed)}
    assert not unused, f"{name}: in deps but never imported: {sorted(unused)}"


def test_every_param_is_a_dependency_of_some_stage():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    keys = {f"{section}.{key}" for section, values in raw.items() for key in values}
    sections = typing.get_type_hints(Params)
    fields = {f"{name}.{g.name}" for name, cls in sections.items() for g in dataclasses.fields(cls)}
    tracked = {p if isinstance(p, str) else next(iter(p))
               for s in STAGES.values() for p in s.get("params", [])}
    assert keys == fields, "params.yaml lists every field of the params dataclasses"
    untracked = keys - tracked
    assert not untracked, f"not tracked by dvc.yaml, so changing them re-runs nothing: {untracked}"


def test_the_model_folder_is_a_model_artifact():
    """DVC reads the artifact from dvc.yaml as its registry tools do (``dvc artifacts get`` and
    ``gto show`` run in test_export_trained.py; GTO's logging does not survive pytest's capture
    in-process); the files it names are the model folder's."""
    from dvc.annotations import Artifact
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    from unetseg.infer.model_folder import POSTPROCESS_FILE
    from unetseg.train.card import CARD_FILE, WEIGHTS_FILE

    with Repo(str(ROOT)) as repo:
        artifacts = load_file(repo, "dvc.yaml").artifacts
    artifact = Artifact(**artifacts["unetseg-model"])
    assert artifact.path == "models" and artifact.type == "model"
    assert {"unet", "segmentation"} <= set(artifact.labels)
    for name in (WEIGHTS_FILE, CARD_FILE, POSTPROCESS_FILE, "SEG", "training data"):
        assert name in artifact.desc, name
    outs = {o if isinstance(o, str) else next(iter(o)) for s in STAGES.values()
            for o in s.get("outs", [])}
    assert {f"models/{f}" for f in (WEIGHTS_FILE, CARD_FILE, POSTPROCESS_FILE)} <= outs
