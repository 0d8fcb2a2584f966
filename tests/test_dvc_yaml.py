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


def _imported_modules(path: Path) -> set[str]:
    """Names of the ``unetseg`` modules a file imports anywhere (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [f"unetseg.{node.module}" if node.module else "unetseg"]
            names += [f"{names[0]}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "unetseg":
                found.add("__init__")
                if len(parts) > 1 and (PACKAGE / f"{parts[1]}.py").exists():
                    found.add(parts[1])
    return found


def import_closure(script: Path) -> set[str]:
    """``src/unetseg/*.py`` paths ``script`` imports, directly or through other modules."""
    seen: set[str] = set()
    todo = _imported_modules(script)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= _imported_modules(PACKAGE / f"{name}.py")
    return {f"src/unetseg/{name}.py" for name in seen}


def test_import_closure_follows_every_import_form(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("from unetseg import cli\n"
                      "def f():\n    from unetseg.store import TileReader\n")
    closure = import_closure(script)
    assert {"src/unetseg/__init__.py", "src/unetseg/cli.py", "src/unetseg/store.py",
            "src/unetseg/errors.py", "src/unetseg/files.py"} <= closure
    assert "src/unetseg/models.py" not in closure


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_depends_on_exactly_the_modules_it_imports(name):
    stage = STAGES[name]
    script = next(d for d in stage["deps"] if d.startswith("stages/"))
    listed = {d for d in stage["deps"] if d.startswith("src/")}
    gone = {d for d in listed if not (ROOT / d).exists()}
    assert not gone, f"{name}: dvc.yaml lists modules that do not exist: {sorted(gone)}"
    needed = import_closure(ROOT / script)
    assert not needed - listed, f"{name}: imported but not in deps: {sorted(needed - listed)}"
    assert not listed - needed, f"{name}: in deps but never imported: {sorted(listed - needed)}"


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
