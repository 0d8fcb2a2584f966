"""The model folder that evaluate and ``unetseg predict`` read, without loading Keras.

``models/`` holds ``model.keras`` and ``card.json`` (both written by ``train``, see
:mod:`unetseg.train.card`) and ``postprocess.json``, written by ``evaluate``: the
``postprocess:`` params it turned probabilities into cells with, and what that scored on the
test split. Retuning post-processing rewrites only this file; the network stays.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from unetseg.config import PostprocessParams, section_from_dict
from unetseg.errors import InputError
from unetseg.files import write_json
from unetseg.train.card import CARD_FILE, WEIGHTS_FILE, ModelCard, read_card

POSTPROCESS_FILE = "postprocess.json"
POSTPROCESS_VERSION = 1
"""Format of ``postprocess.json``; a reader refuses a file with a higher one."""


def write_postprocess(path: str | Path, postprocess: PostprocessParams,
                      scores: dict[str, float]) -> None:
    """Write the post-processing and the test-split ``scores`` it got (``seg``, ``iou``, ...)."""
    write_json(path, {"format_version": POSTPROCESS_VERSION,
                      "postprocess": dataclasses.asdict(postprocess), "scores": dict(scores)})


def read_postprocess(path: str | Path) -> tuple[PostprocessParams, dict[str, float]]:
    """Read a file written by :func:`write_postprocess`.

    Raises
    ------
    InputError
        ``"<path>: <problem>"`` for a missing or unreadable file, invalid JSON, a newer format,
        unknown or missing keys, or a bad value.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no post-processing file (the evaluate stage writes it)") \
            from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    try:
        return _from_dict(raw)
    except InputError as err:
        raise InputError(f"{path}: {str(err).removeprefix('params: ')}") from None


def _from_dict(raw: Any) -> tuple[PostprocessParams, dict[str, float]]:
    if not isinstance(raw, dict):
        raise InputError("must be a JSON object")
    if set(raw) != {"format_version", "postprocess", "scores"}:
        raise InputError("expected exactly the keys format_version, postprocess, scores; got "
                         f"{', '.join(sorted(raw))}")
    version = raw["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"format_version: must be a positive integer, got {version!r}")
    if version > POSTPROCESS_VERSION:
        raise InputError(f"format {version} is newer than this unetseg reads "
                         f"({POSTPROCESS_VERSION}); upgrade unetseg")
    postprocess = section_from_dict("postprocess", PostprocessParams, raw["postprocess"],
                                    complete=True)
    scores = raw["scores"]
    if not isinstance(scores, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in scores.values()):
        raise InputError("scores: must map names to numbers")
    return postprocess, {str(k): float(v) for k, v in scores.items()}


def with_overrides(postprocess: PostprocessParams, **overrides: Any) -> PostprocessParams:
    """``postprocess`` with some fields replaced (``threshold=0.6``, ...), validated.

    Raises
    ------
    InputError
        ``"params: postprocess.<key>: ..."`` for a bad value or an unknown key.
    """
    known = {f.name for f in dataclasses.fields(PostprocessParams)}
    for key in overrides:
        if key not in known:
            raise InputError(f"params: postprocess.{key}: unknown key")
    replaced = dataclasses.replace(postprocess, **overrides)
    replaced.validate()
    return replaced


def read_model_folder(model_dir: str | Path) -> tuple[ModelCard, PostprocessParams]:
    """The card and post-processing of a model folder, checked to be complete.

    Raises
    ------
    InputError
        A missing folder, card, weights or post-processing file, or one that cannot be read.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(f"{model_dir}: no such model folder")
    card = read_card(model_dir / CARD_FILE)
    postprocess, _ = read_postprocess(model_dir / POSTPROCESS_FILE)
    if not (model_dir / WEIGHTS_FILE).is_file():
        raise InputError(f"{model_dir}: no {WEIGHTS_FILE} beside {CARD_FILE}")
    if postprocess.instances == "distance" and not card.has_distance:
        raise InputError(f"{model_dir / POSTPROCESS_FILE}: instances 'distance' needs a model "
                         "with a distance head; this one has none")
    return card, postprocess
