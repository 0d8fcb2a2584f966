"""docs/params.md is generated from the params dataclasses' field docstrings and kept current."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from unetseg import paramdocs
from unetseg.config import Params

ROOT = Path(__file__).resolve().parents[1]


def test_every_params_field_has_a_docstring():
    docs = paramdocs.field_docstrings()
    for section, cls in typing.get_type_hints(Params).items():
        _, fields = docs[cls.__name__]
        assert list(fields) == [f.name for f in dataclasses.fields(cls)], section
        missing = [name for name, doc in fields.items() if not doc]
        assert not missing, f"{section}: give these fields a docstring line: {missing}"


def test_docs_params_md_is_up_to_date():
    expected = paramdocs.params_markdown()
    assert (ROOT / "docs" / "params.md").read_text() == expected, \
        "regenerate: python -m unetseg.paramdocs > docs/params.md"
    out = subprocess.run([sys.executable, "-m", "unetseg.paramdocs"], capture_output=True,
                         text=True, check=True).stdout
    assert out == expected


def test_docstrings_are_the_literal_after_each_field():
    source = ('class XParams:\n    """Intro\n    text."""\n\n    a: int = 1\n    """About\n'
              '    a."""\n    b: str = ""\n    c: float = 0.0\n    """About c."""\n'
              '    def validate(self) -> None:\n        """Not a field."""\n')
    intro, fields = paramdocs.field_docstrings(source)["XParams"]
    assert intro == "Intro text."
    assert fields == {"a": "About a.", "b": None, "c": "About c."}


def test_a_field_without_docstring_stops_the_generator(monkeypatch):
    docs = paramdocs.field_docstrings()
    intro, fields = docs["TrainParams"]
    docs["TrainParams"] = (intro, {**fields, "lr": None})
    monkeypatch.setattr(paramdocs, "field_docstrings", lambda: docs)
    with pytest.raises(ValueError, match="TrainParams: no docstring for lr"):
        paramdocs.params_markdown()


def test_every_key_appears_with_its_default():
    text = (ROOT / "docs" / "params.md").read_text()
    for section, cls in typing.get_type_hints(Params).items():
        for f in dataclasses.fields(cls):
            assert f"| `{section}.{f.name}` |" in text
    assert ('| `model.arch` | `unet` \\| `resunet` \\| `unetpp` \\| `attention_unet` '
            '| `"unet"` |') in text
