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

Arch = Literal["unet", "resunet", "unetpp", "attention_unet"]
"""The U-Net family :func:`unetseg.train.models.build_model` builds: the one list of them."""


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        line = f"params: {key}: {message}"
        raise InputError(line.replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class IngestParams:
    """`ingest`: where the image/mask pairs come from and how they split into train and test."""

    source: str = "synthetic"
    """Where the pairs come from: `synthetic` (generated, see `synthetic.*`), a dataset folder or
    `.zip` (Cell Tracking Challenge 2D or ISBI 2012 EM layout), or an https URL of a `.zip`
    (downloaded once into `.downloads/`).
    """
    sha256: str = ""
    """Expected SHA-256 of the `source` zip or download, 64 hex digits; `""` does not check."""
    test_source: str = ""
    """A separate labelled test set, in the same forms as `source`; `""` splits `source` by
    `test_fraction` instead.
    """
    test_sha256: str = ""
    """Expected SHA-256 of the `test_source` zip or download; `""` does not check."""
    test_fraction: float = 0.25
    """Fraction of the pairs held out for testing by a seeded split, in [0, 1) (at least one pair
    when > 0); unused with a `test_source` or `test_sequences`.
    """
    seed: int = 0
    """Seed of that split."""
    annotations: Literal["gt", "st", "gt+st"] = "gt"
    """CTC training masks: gt, st (silver truth), or gt+st (GT where a frame has one, completed by
    the ST cells it left out, else ST).
    """
    split_gap: int = 3
    """Training frames within this many frames of a test frame of their sequence are left out."""
    test_sequences: tuple[str, ...] = ()
    """Cell Tracking Challenge sequences of `source` held out whole, e.g. `["02"]` (names quoted:
    `"02"` is not `2`): their GT frames are the test set and every frame of the other sequences
    (per `annotations`) trains, so `test_fraction` and `split_gap` do not apply; `[]` leaves the
    split to `test_source` or `test_fraction`. Not with `test_source` or a synthetic or EM source.
    """

    def validate(self) -> None:
        _check(bool(self.source.strip()), "ingest.source", "must not be empty")
        names = self.test_sequences
        _check(all(n.isdigit() and n.isascii() for n in names), "ingest.test_sequences",
               f"sequence names are digits such as \"02\"; got {list(names)}")
        _check(len(set(names)) == len(names), "ingest.test_sequences",
               f"names a sequence twice: {list(names)}")
        _check(not names or self.source != "synthetic", "ingest.test_sequences",
               "needs a Cell Tracking Challenge source with sequences NN/; synthetic has none")
        _check(not names or not self.test_source, "ingest.test_sequences",
               "holds sequences of source out as the test set; leave it [] with a test_source")
        _check(0 <= self.split_gap <= 10000, "ingest.split_gap", "must be in 0..10000 frames")
        _check(self.annotations == "gt" or self.source != "synthetic", "ingest.annotations",
               f"{self.annotations!r} needs a Cell Tracking Challenge source with NN_ST/SEG masks; "
               "synthetic data has ground truth only (use gt)")
        _check(0.0 <= self.test_fraction < 1.0, "ingest.test_fraction", "must be in [0, 1)")
        for key in ("sha256", "test_sha256"):
            value = getattr(self, key)
            _check(value == "" or (len(value) == 64
                                   and all(c in "0123456789abcdefABCDEF" for c in value)),
                   f"ingest.{key}", "must be empty or 64 hexadecimal digits")


@dataclass(frozen=True)
class SyntheticParams:
    """`synthetic`: the embedded, offline default dataset of touching HeLa-like cells in DIC-like
    images.
    """

    n_images: int = 32
    """Image/mask pairs generated, at least 2."""
    height: int = 256
    """Image height in pixels, 16..8192."""
    width: int = 256
    """Image width in pixels, 16..8192."""
    n_cells: int = 18
    """Cells placed per image, 0..5000."""
    seed: int = 0
    """Seed of the generator: the same seed gives byte-identical images."""

    def validate(self) -> None:
        _check(self.n_images >= 2, "synthetic.n_images", "must be at least 2")
        _check(16 <= self.height <= 8192, "synthetic.height", "must be in 16..8192")
        _check(16 <= self.width <= 8192, "synthetic.width", "must be in 16..8192")
        _check(0 <= self.n_cells <= 5000, "synthetic.n_cells", "must be in 0..5000")


@dataclass(frozen=True)
class PrepareParams:
    """`prepare`: training targets (paper Fig. 3c, Eq. 2) and the resolution the network works at.
    """

    w0: float = 10.0
    """Border weight of paper Eq. 2 (paper: 10), >= 0: added on background pixels between two nearly
    touching cells; 0 leaves only the class weight.
    """
    sigma: float = 5.0
    """Width in pixels of Eq. 2's border term (paper: 5), > 0."""
    balance: bool = True
    """Class balance w_c of Eq. 2: each class weighs `n_pixels / (2 n_class)`, so the rarer one
    weighs more; false = w_c 1 everywhere.
    """
    separate_touching: bool = True
    """Part touching cells by a background gap in the target (paper Fig. 3c), which Eq. 2 weighs
    heavily; `postprocess.grow_into_gaps_px` grows the predicted cells back over it. False where
    membranes already separate the cells (EM).
    """
    resample_factor: float = 1.0
    """Resample images by this factor to train and predict at, in [0.1, 4] (as nnU-Net's target
    spacing: 0.5 halves large cells so they fit the receptive field and quarters the cost). `w0`,
    `sigma` and tile sizes are then in resampled pixels; predictions, `postprocess.min_size` and all
    metrics stay at the original resolution.
    """

    def validate(self) -> None:
        _check(self.w0 >= 0, "prepare.w0", "must be >= 0")
        _check(self.sigma > 0, "prepare.sigma", "must be > 0")
        _check(0.1 <= self.resample_factor <= 4, "prepare.resample_factor",
               "must be in [0.1, 4]")


@dataclass(frozen=True)
class AugmentParams:
    """`augment`: random copies of each training image (paper §3.1); the weight map of a copy is
    rebuilt from its deformed mask.
    """

    copies: int = 4
    """Augmented copies per training image, besides the original, 0..1000."""
    elastic_points: int = 3
    """Control points per side of the elastic deformation's grid, 2..64 (paper §3.1: 3, a 3 x 3
    grid).
    """
    elastic_sigma: float = 10.0
    """Standard deviation in pixels of the grid points' random displacements (paper: 10), >= 0;
    interpolated bicubically; 0 = no deformation.
    """
    flip: bool = True
    """Random vertical and horizontal flips."""
    rotate90: bool = True
    """Random rotation by a multiple of 90 degrees (0 or 180 for non-square images)."""
    rotate_deg: float = 0.0
    """Random rotation by U(±this) degrees, in [0, 180], merged into the elastic resampling; 0 =
    none.
    """
    brightness: float = 0.1
    """Random brightness offset U(±this) on the normalised image, >= 0."""
    contrast: float = 0.2
    """Random contrast factor U(1 ± this) around the image mean, in [0, 1)."""
    gamma: float = 0.2
    """Random gamma exp(U(±this)) on the min-max rescaled image, >= 0."""
    seed: int = 0
    """Seed of the augmentation: copy c of image i draws from (seed, i, c), whatever the number of
    workers.
    """

    def validate(self) -> None:
        _check(0 <= self.copies <= 1000, "augment.copies", "must be in 0..1000")
        _check(2 <= self.elastic_points <= 64, "augment.elastic_points", "must be in 2..64")
        _check(self.elastic_sigma >= 0, "augment.elastic_sigma", "must be >= 0")
        _check(0 <= self.rotate_deg <= 180, "augment.rotate_deg", "must be in [0, 180]")
        for key in ("brightness", "contrast", "gamma"):
            _check(getattr(self, key) >= 0, f"augment.{key}", "must be >= 0")
        _check(self.contrast < 1, "augment.contrast", "must be < 1")


@dataclass(frozen=True)
class ModelParams:
    """`model`: the network and its tile geometry (prepare lays out the tiles with it too)."""

    arch: Arch = "unet"
    """Architecture: `unet` (the paper's), `resunet` (residual blocks with batch norm), `unetpp`
    (UNet++, nested skip paths), `attention_unet` (attention-gated skips).
    """
    depth: int = 3
    """2 x 2 max-pool steps of the contracting path, 1..6 (paper: 4)."""
    base_filters: int = 16
    """Filters of the first level, doubled at every level down, 1..512 (paper: 64)."""
    padding: Literal["valid", "same"] = "valid"
    """`valid` convolutions as in the paper (the output tile is smaller than the input; stitched
    tiles are exact) or `same` (output = input; overlapping tiles are blended).
    """
    dropout: float = 0.5
    """Dropout rate at the end of the contracting path (paper §3.1), in [0, 1)."""
    tile_size: int = 188
    """Input tile side in pixels. With `valid` padding it must fit `depth` (depth 4: 572 -> 388
    output, paper Fig. 1; a size that does not fit is refused with the nearest ones that do);
    with `same`, a multiple of `2**depth`.
    """

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
    """`train`: optimisation of the weighted cross-entropy (paper Eq. 1), checkpointed every epoch.
    """

    lr: float = 1e-3
    """Learning rate, in (0, 10]."""
    epochs: int = 3
    """Epochs, >= 1."""
    batch_size: int = 1
    """Tiles per batch, 1..4096."""
    seed: int = 0
    """Seed of the weights, the shuffling, dropout and the validation split."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """`adam`, or `sgd` with `momentum` (the paper's)."""
    momentum: float = 0.99
    """SGD momentum (paper: 0.99), in [0, 1); used with `optimizer: sgd` only."""
    lr_schedule: Literal["constant", "cosine", "poly"] = "constant"
    """`constant` (the paper's), or `cosine` / `poly` (power 0.9, nnU-Net's) decay to 0 over all
    epochs, resumed exactly from a checkpoint.
    """
    val_fraction: float = 0.15
    """Fraction of the training images held out for Keras' validation loss, in [0, 1): their
    original tiles are validated on, their augmented copies not trained on.
    """
    fixed_steps_per_epoch: int = 0
    """Train exactly this many batches per epoch, >= 0; 0 = not fixed: one pass over the training
    tiles. More batches than a pass repeat tiles, reshuffled.
    """
    distance_weight: float = 0.0
    """Weight of a distance head's binary cross-entropy beside Eq. 1, in [0, 100]. > 0 adds a third
    output channel that regresses each cell's distance to background (needed by
    `postprocess.instances: distance`); 0 = no head.
    """
    distance_clip: float = 20.0
    """Distance in pixels at which the distance head's target saturates, in [1, 1000]."""
    mixed_precision: Literal["none", "float16", "bfloat16"] = "none"
    """Compute dtype of the layers: `none` (float32), `bfloat16` (Ampere/Hopper GPUs, no loss
    scaling) or `float16` (with loss scaling); `false` means `none`. Logits and loss stay float32.
    """
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    """Devices: `auto` (MultiWorkerMirroredStrategy when `TF_CONFIG` is set, MirroredStrategy over
    several GPUs, else one device; on JAX, data parallel over all devices), `default` (one
    device), `mirrored` (all GPUs, or all logical CPUs), `multi_worker` (TensorFlow only).
    `train.batch_size` is the global batch and must divide by the number of devices.
    """
    workers: int = 1
    """Processes that read and build the training batches (1: in the training process)."""

    @property
    def distance_head(self) -> bool:
        """Whether the network has a distance-to-background head: the one place this is decided."""
        return self.distance_weight > 0

    @property
    def n_outputs(self) -> int:
        """Output channels of the network: two class logits, plus the distance head's."""
        return 3 if self.distance_head else 2

    def validate(self) -> None:
        _check(0 < self.lr <= 10, "train.lr", "must be in (0, 10]")
        _check(1 <= self.epochs <= 100000, "train.epochs", "must be >= 1")
        _check(1 <= self.batch_size <= 4096, "train.batch_size", "must be >= 1")
        _check(0 <= self.momentum < 1, "train.momentum", "must be in [0, 1)")
        _check(0 <= self.val_fraction < 1, "train.val_fraction", "must be in [0, 1)")
        _check(self.fixed_steps_per_epoch >= 0, "train.fixed_steps_per_epoch",
               "must be >= 0 (0 = one pass over the tiles)")
        _check(0 <= self.distance_weight <= 100, "train.distance_weight", "must be in [0, 100]")
        _check(1 <= self.distance_clip <= 1000, "train.distance_clip",
               "must be in [1, 1000] pixels")
        _check(1 <= self.workers <= 256, "train.workers", "must be in 1..256")


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate`: overlap-tile inference on the test images; what it draws for people."""

    batch_size: int = 4
    """Tiles per inference batch, >= 1."""
    n_overlays: int = 4
    """Test images drawn as outline overlays in `plots/evaluate/overlays/`, >= 0."""

    def validate(self) -> None:
        _check(self.batch_size >= 1, "evaluate.batch_size", "must be >= 1")
        _check(self.n_overlays >= 0, "evaluate.n_overlays", "must be >= 0")


@dataclass(frozen=True)
class PostprocessParams:
    """`postprocess`: how the network's probabilities become cells. Saved in the model folder
    (`postprocess.json`), read by evaluate and `unetseg predict`; changing it re-runs evaluate
    only.
    """

    threshold: float = 0.4
    """Foreground probability cut-off, in (0, 1)."""
    min_size: int = 20
    """Objects smaller than this many pixels (at the images' own resolution, before growth) are
    dropped, >= 0.
    """
    instances: Literal["components", "watershed", "distance"] = "watershed"
    """How the foreground becomes cells: `components` (4-connected components), `watershed` (also
    cut touching cells at narrow necks of the distance transform, see `neck_ratio`), `distance`
    (that watershed on the distance the head predicted; needs `train.distance_weight` > 0).
    """
    grow_into_gaps_px: int = 2
    """Pixels by which cells grow into the gaps between them, undoing `prepare.separate_touching`'s
    gap, 0..16; 0 keeps them as thresholded (thin membranes, EM).
    """
    neck_ratio: float = 0.4
    """`watershed` and `distance`: cut two regions only where their neck is at most this fraction of
    the thinner part's width, in (0, 1]; 1 keeps every marker's region.
    """
    fill_holes: bool = True
    """Close background holes that lie inside one cell, as Cellpose does."""
    tta: bool = False
    """Average the prediction over the 8 flips and 90-degree rotations, as the paper did for EM."""
    label_offset_y: float = 0.0
    """Pixels the labels sit below (+) or above (-) what they annotate, in [-8, 8]: the predicted
    probability is moved by this before thresholding (ISBI 2012 EM: -0.6).
    `metrics/evaluate.json` reports the shift left over as `offset_y`.
    """
    label_offset_x: float = 0.0
    """As `label_offset_y`, to the right (+) or left (-) (ISBI 2012 EM: -0.2); reported as
    `offset_x`.
    """

    @property
    def label_offset(self) -> tuple[float, float]:
        """``(dy, dx)``: where the labels sit relative to what they annotate, in pixels."""
        return (self.label_offset_y, self.label_offset_x)

    def validate(self) -> None:
        _check(0 < self.threshold < 1, "postprocess.threshold", "must be in (0, 1)")
        for key in ("label_offset_y", "label_offset_x"):
            _check(abs(getattr(self, key)) <= 8, f"postprocess.{key}", "must be in [-8, 8] pixels")
        _check(self.min_size >= 0, "postprocess.min_size", "must be >= 0")
        _check(0 <= self.grow_into_gaps_px <= 16, "postprocess.grow_into_gaps_px",
               "must be in 0..16")
        _check(0 < self.neck_ratio <= 1, "postprocess.neck_ratio", "must be in (0, 1]")


@dataclass(frozen=True)
class Params:
    ingest: IngestParams = field(default_factory=IngestParams)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    postprocess: PostprocessParams = field(default_factory=PostprocessParams)

    def validate(self) -> None:
        _check(self.postprocess.instances != "distance" or self.train.distance_head,
               "postprocess.instances",
               "'distance' needs a model trained with train.distance_weight > 0")


def _coerce(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value is False and "none" in choices:
            return "none"
        _check(value in choices, key,
               f"must be one of {', '.join(map(str, choices))}; got {value!r}")
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
    if origin is tuple and typing.get_args(hint) == (str, ...):
        _check(isinstance(value, list), key, f'must be a list of strings such as ["02"]; '
               f"got {value!r}")
        _check(all(isinstance(v, str) for v in value), key,
               f"must be a list of strings; got {value!r} (quote names such as \"02\", "
               "which YAML would read as the number 2)")
        return tuple(value)
    raise TypeError(f"unsupported type for {key}: {hint}")


def _build_section(name: str, cls: type, raw: Any, complete: bool = False) -> Any:
    if raw is None:
        raw = {}
    _check(isinstance(raw, dict), name, "must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        _check(key in known, f"{name}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    missing = sorted(known - set(raw)) if complete else []
    _check(not missing, name, f"missing key(s) {', '.join(missing)}")
    section = cls(**{k: _coerce(f"{name}.{k}", v, hints[k]) for k, v in raw.items()})
    section.validate()
    return section


def section_from_dict(name: str, cls: type, raw: Any, *, complete: bool = False) -> Any:
    """Build and validate one params section (e.g. :class:`ModelParams`) from a mapping.

    With ``complete`` every field must be present (as in a saved model card); otherwise
    missing keys take their defaults. Unknown keys and bad values raise :class:`InputError`.
    """
    return _build_section(name, cls, raw, complete)


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
            text = (json.dumps(value) if isinstance(value, (str, list))
                    else yaml.safe_dump(value).splitlines()[0])
            items.append(f"{name}={text}")
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
