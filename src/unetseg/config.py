"""params.yaml as frozen, typed dataclasses that refuse unknown keys and bad values.

``load_params(path)`` is the only place the project reads params.yaml; stages pass
the resulting sections (or plain values) to library functions.

Run ``python -m unetseg.config --overrides configs/u373.yaml`` to flatten a partial
params file into NUL-separated ``-S key=value`` arguments for ``xargs -0 dvc exp run``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from unetseg.errors import InputError
from unetseg.tiling import output_size


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        line = f"params: {key}: {message}"
        raise InputError(line.replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class IngestParams:
    source: str = "synthetic"
    sha256: str = ""
    test_source: str = ""
    test_sha256: str = ""
    test_fraction: float = 0.25
    seed: int = 0

    def validate(self) -> None:
        _check(bool(self.source.strip()), "ingest.source", "must not be empty")
        _check(0.0 <= self.test_fraction < 1.0, "ingest.test_fraction", "must be in [0, 1)")
        for key in ("sha256", "test_sha256"):
            value = getattr(self, key)
            _check(value == "" or (len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)),
                   f"ingest.{key}", "must be empty or 64 hexadecimal digits")


@dataclass(frozen=True)
class SyntheticParams:
    n_images: int = 32
    height: int = 256
    width: int = 256
    n_cells: int = 18
    seed: int = 0

    def validate(self) -> None:
        _check(self.n_images >= 2, "synthetic.n_images", "must be at least 2")
        _check(16 <= self.height <= 8192, "synthetic.height", "must be in 16..8192")
        _check(16 <= self.width <= 8192, "synthetic.width", "must be in 16..8192")
        _check(0 <= self.n_cells <= 5000, "synthetic.n_cells", "must be in 0..5000")


@dataclass(frozen=True)
class PrepareParams:
    w0: float = 10.0
    sigma: float = 5.0
    balance: bool = True
    separate_touching: bool = True
    scale: float = 1.0
    erode_px: int = 0
    ignore_beyond_px: float = 0.0

    def validate(self) -> None:
        _check(self.w0 >= 0, "prepare.w0", "must be >= 0")
        _check(0 <= self.ignore_beyond_px <= 10000, "prepare.ignore_beyond_px",
               "must be in [0, 10000] (0: every pixel is annotated)")
        _check(0 <= self.erode_px <= 16, "prepare.erode_px", "must be in 0..16")
        _check(self.sigma > 0, "prepare.sigma", "must be > 0")
        _check(0.1 <= self.scale <= 4, "prepare.scale", "must be in [0.1, 4]")


@dataclass(frozen=True)
class AugmentParams:
    copies: int = 4
    elastic_points: int = 3
    elastic_sigma: float = 10.0
    flip: bool = True
    rotate90: bool = True
    rotate_deg: float = 0.0
    shift_px: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.2
    seed: int = 0

    def validate(self) -> None:
        _check(0 <= self.copies <= 1000, "augment.copies", "must be in 0..1000")
        _check(2 <= self.elastic_points <= 64, "augment.elastic_points", "must be in 2..64")
        _check(self.elastic_sigma >= 0, "augment.elastic_sigma", "must be >= 0")
        _check(0 <= self.rotate_deg <= 180, "augment.rotate_deg", "must be in [0, 180]")
        for key in ("shift_px", "brightness", "contrast", "gamma"):
            _check(getattr(self, key) >= 0, f"augment.{key}", "must be >= 0")
        _check(self.contrast < 1, "augment.contrast", "must be < 1")


@dataclass(frozen=True)
class ModelParams:
    arch: Literal["unet", "resunet", "unetpp", "attention_unet"] = "unet"
    depth: int = 3
    base_filters: int = 16
    padding: Literal["valid", "same"] = "valid"
    dropout: float = 0.5
    tile_size: int = 188

    def validate(self) -> None:
        _check(1 <= self.depth <= 6, "model.depth", "must be in 1..6")
        _check(1 <= self.base_filters <= 512, "model.base_filters", "must be in 1..512")
        _check(0 <= self.dropout < 1, "model.dropout", "must be in [0, 1)")
        try:
            output_size(self.tile_size, self.depth, self.padding)
        except ValueError as err:
            raise InputError(f"params: model.tile_size: {err}") from None

    @property
    def out_size(self) -> int:
        """Output tile size for ``tile_size`` (572 → 388 for the paper's depth 4)."""
        return output_size(self.tile_size, self.depth, self.padding)


@dataclass(frozen=True)
class TrainParams:
    lr: float = 1e-3
    epochs: int = 12
    batch_size: int = 4
    seed: int = 0
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.99
    lr_schedule: Literal["constant", "cosine", "poly"] = "constant"
    val_fraction: float = 0.15
    steps_per_epoch: int = 0
    contact_oversample: int = 0
    distance_weight: float = 0.0
    distance_clip: float = 20.0
    mixed_precision: Literal["none", "float16", "bfloat16"] = "none"
    """Compute dtype of the layers (``false`` = ``none``); logits and loss stay float32."""
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    workers: int = 1
    """Processes that read and build the training batches (1: in the training process)."""

    def validate(self) -> None:
        _check(0 < self.lr <= 10, "train.lr", "must be in (0, 10]")
        _check(1 <= self.epochs <= 100000, "train.epochs", "must be >= 1")
        _check(1 <= self.batch_size <= 4096, "train.batch_size", "must be >= 1")
        _check(0 <= self.momentum < 1, "train.momentum", "must be in [0, 1)")
        _check(0 <= self.val_fraction < 1, "train.val_fraction", "must be in [0, 1)")
        _check(self.steps_per_epoch >= 0, "train.steps_per_epoch", "must be >= 0 (0 = all tiles)")
        _check(0 <= self.contact_oversample <= 100, "train.contact_oversample", "must be in 0..100")
        _check(0 <= self.distance_weight <= 100, "train.distance_weight", "must be in [0, 100]")
        _check(1 <= self.distance_clip <= 1000, "train.distance_clip", "must be in [1, 1000] pixels")
        _check(1 <= self.workers <= 256, "train.workers", "must be in 1..256")


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float = 0.5
    min_size: int = 20
    instances: Literal["components", "watershed", "distance"] = "components"
    border_px: int = 1
    neck_ratio: float = 0.5
    fill_holes: bool = True
    tta: bool = False
    batch_size: int = 4
    n_overlays: int = 4
    label_offset_y: float = 0.0
    label_offset_x: float = 0.0

    @property
    def label_offset(self) -> tuple[float, float]:
        """``(dy, dx)``: where the labels sit relative to what they annotate, in pixels."""
        return (self.label_offset_y, self.label_offset_x)

    def validate(self) -> None:
        _check(0 < self.threshold < 1, "evaluate.threshold", "must be in (0, 1)")
        for key in ("label_offset_y", "label_offset_x"):
            _check(abs(getattr(self, key)) <= 8, f"evaluate.{key}", "must be in [-8, 8] pixels")
        _check(self.min_size >= 0, "evaluate.min_size", "must be >= 0")
        _check(0 <= self.border_px <= 16, "evaluate.border_px", "must be in 0..16")
        _check(0 < self.neck_ratio <= 1, "evaluate.neck_ratio", "must be in (0, 1]")
        _check(self.batch_size >= 1, "evaluate.batch_size", "must be >= 1")
        _check(self.n_overlays >= 0, "evaluate.n_overlays", "must be >= 0")


@dataclass(frozen=True)
class Params:
    ingest: IngestParams = field(default_factory=IngestParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)

    def validate(self) -> None:
        _check(self.evaluate.instances != "distance" or self.train.distance_weight > 0,
               "evaluate.instances", "'distance' needs a model trained with train.distance_weight > 0")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value is False and "none" in choices:
            return "none"
        _check(value in choices, key, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if hint is bool:
        _check(isinstance(value, bool), key, f"must be true or false; got {value!r}")
        return value
    if hint is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key,
               f"must be an integer; got {value!r}")
        return value
    if hint is float:
        _check(isinstance(value, (int, float)) and not isinstance(value, bool), key,
               f"must be a number; got {value!r}")
        _check(abs(value) < 1e300 if isinstance(value, int) else math.isfinite(value), key,
               "must be finite")
        return float(value)
    if hint is str:
        _check(isinstance(value, str), key, f"must be a string; got {value!r}")
        return value
    raise TypeError(f"unsupported type for {key}: {hint}")


def _build_section(name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        raw = {}
    _check(isinstance(raw, dict), name, "must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        _check(key in known, f"{name}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    section = cls(**{k: _coerce(f"{name}.{k}", v, hints[k]) for k, v in raw.items()})
    section.validate()
    return section


def params_from_dict(raw: Any) -> Params:
    """Build and validate :class:`Params` from a nested mapping (missing keys take defaults)."""
    if raw is None:
        raw = {}
    _check(isinstance(raw, dict), "(top level)", "params must be a mapping of sections")
    fields = {f.name: f for f in dataclasses.fields(Params)}
    for key in raw:
        _check(key in fields, key, f"unknown section (known: {', '.join(fields)})")
    hints = typing.get_type_hints(Params)
    params = Params(**{name: _build_section(name, hints[name], raw.get(name)) for name in fields})
    params.validate()
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; any problem raises a one-line :class:`InputError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return params_from_dict(raw)


def flatten_overrides(raw: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"train": {"lr": 0.1}}`` → ``["train.lr=0.1"]`` with values in YAML/Hydra syntax."""
    items: list[str] = []
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(flatten_overrides(value, f"{name}."))
        else:
            items.append(f"{name}={json.dumps(value) if isinstance(value, str) else yaml.safe_dump(value).splitlines()[0]}")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unetseg.config", description=__doc__)
    parser.add_argument("--overrides", type=Path, required=True,
                        help="partial params file to turn into `-S key=value` arguments")
    args = parser.parse_args(argv)
    try:
        raw = yaml.safe_load(args.overrides.read_text()) or {}
        params_from_dict(raw)
    except (OSError, yaml.YAMLError, InputError) as err:
        print(f"error: {args.overrides}: {err}", file=sys.stderr)
        return 1
    sys.stdout.write("".join(f"-S\0{item}\0" for item in flatten_overrides(raw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
