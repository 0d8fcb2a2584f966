"""docs/params.md, generated from the field docstrings of the params dataclasses.

Each field of a section class in ``unetseg/config.py`` is documented by a string literal on the
line after it; this module reads them with :mod:`ast` (the dataclasses keep no such strings at
run time) and writes one table per section. Regenerate with
``python -m unetseg.paramdocs > docs/params.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import sys
import typing
from pathlib import Path

from unetseg import config

HEADER = ("# Params reference\n\n"
          "Every key of `params.yaml`, its type, default and meaning. Generated from the field\n"
          "docstrings in `src/unetseg/config.py` by "
          "`python -m unetseg.paramdocs > docs/params.md`;\n"
          "edit those, not this file.\n")


def field_docstrings(source: str | None = None) -> dict[str, tuple[str, dict[str, str | None]]]:
    """Class docstring and per-field docstrings of every ``*Params`` section class.

    Parameters
    ----------
    source : the text of ``config.py``; by default the module's own file.

    Returns
    -------
    dict
        ``{class name: (class docstring, {field: docstring or None})}`` in source order.
    """
    tree = ast.parse(source if source is not None else Path(config.__file__).read_text())
    found: dict[str, tuple[str, dict[str, str | None]]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name.endswith("Params")):
            continue
        fields: dict[str, str | None] = {}
        for stmt, after in zip(node.body, node.body[1:] + [None], strict=True):
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                doc = (after.value.value if isinstance(after, ast.Expr)
                       and isinstance(after.value, ast.Constant)
                       and isinstance(after.value.value, str) else None)
                fields[stmt.target.id] = " ".join(doc.split()) if doc else None
        found[node.name] = (" ".join((ast.get_docstring(node) or "").split()), fields)
    return found


def _default(value: object) -> str:
    if isinstance(value, tuple):  # a list in params.yaml, kept as a tuple in the frozen params
        value = list(value)
    return json.dumps(value) if isinstance(value, (str, bool, list)) else repr(value)


def _type(hint: object) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return " \\| ".join(f"`{choice}`" for choice in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"list of {typing.get_args(hint)[0].__name__}"
    return getattr(hint, "__name__", str(hint))


def params_markdown() -> str:
    """The text of docs/params.md.

    Raises
    ------
    ValueError
        If a field of a params section has no docstring.
    """
    docs = field_docstrings()
    parts = [HEADER]
    for section, cls in typing.get_type_hints(config.Params).items():
        intro, fields = docs[cls.__name__]
        intro = intro.removeprefix(f"`{section}`: ")
        missing = [name for name, doc in fields.items() if not doc]
        if missing:
            raise ValueError(f"{cls.__name__}: no docstring for {', '.join(missing)}")
        hints = typing.get_type_hints(cls)
        parts.append(f"\n## `{section}`\n\n{intro[:1].upper()}{intro[1:]}\n\n"
                     "| key | type | default | meaning |\n|---|---|---|---|\n")
        for f in dataclasses.fields(cls):
            meaning = fields[f.name].replace("|", "\\|")
            parts.append(f"| `{section}.{f.name}` | {_type(hints[f.name])} | "
                         f"`{_default(f.default)}` | {meaning} |\n")
    return "".join(parts)


if __name__ == "__main__":
    sys.stdout.write(params_markdown())
