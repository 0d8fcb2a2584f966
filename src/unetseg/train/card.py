"""The model card: what a trained network needs to segment an image, saved beside its weights.

Like StarDist's ``config.json`` + ``thresholds.json``, a model folder describes itself:

- ``model.keras``: the weights and graph (loaded with ``safe_mode=True``);
- ``card.json``: written by ``train``: architecture and tile geometry, the input
  normalisation, what ``prepare`` did that inference must undo (its resampling scale),
  the output channels, the training params and data, Keras backend and package versions;
- ``postprocess.json``: written by ``evaluate`` (:mod:`unetseg.infer.model_folder`): how
  probabilities become cells, and what that scored on the test split.

The card is one :class:`ModelCard` as JSON. Its reader refuses unknown or missing keys
and cards of another format, each in one line that names the file.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from unetseg import __version__
from unetseg.config import ModelParams, PrepareParams, TrainParams, section_from_dict
from unetseg.errors import InputError
from unetseg.files import write_json
from unetseg.images import NORMALIZE_PERCENTILES
from unetseg.tiling import tile_step

CARD_VERSION = 3
"""Format of the card's JSON (2: post-processing moved to its own file; 3: ``training_data``);
a reader refuses others."""
WEIGHTS_FILE = "model.keras"
CARD_FILE = "card.json"

_SECTIONS = {"model": ModelParams, "prepare": PrepareParams, "train": TrainParams}
_LAYOUTS = ("synthetic", "ctc", "em")


@dataclass(frozen=True)
class TrainingData:
    """What a network was trained on, as the ``ingest`` stage's manifest records it.

    Attributes
    ----------
    source : ``ingest.source`` as given: ``synthetic``, a dataset folder, a ``.zip`` or an
        https URL.
    layout : ``synthetic``, ``ctc`` (Cell Tracking Challenge 2D) or ``em`` (ISBI 2012 EM).
    annotations : training masks: ``gt``, ``st`` (CTC silver truth) or ``gt+st``.
    n_images : training images, before augmentation.
    test_split : how the test split the model was scored on was held out.
    """

    source: str
    layout: str
    annotations: str
    n_images: int
    test_split: str


def read_training_data(manifest: str | Path) -> TrainingData:
    """The :class:`TrainingData` of the ``ingest`` manifest ``data/ingested/manifest.json``.

    Raises
    ------
    InputError
        ``"<path>: <problem>"`` for a missing or unreadable manifest or one without the keys
        ``source``, ``layout``, ``annotations``, ``protocol`` and ``pairs``.
    """
    manifest = Path(manifest)
    try:
        raw = json.loads(manifest.read_text())
        pairs = raw["pairs"]
        data = TrainingData(source=raw["source"], layout=raw["layout"],
                            annotations=raw["annotations"],
                            n_images=sum(p["split"] == "train" for p in pairs),
                            test_split=raw["protocol"])
        _check_training_data(data)
    except FileNotFoundError:
        raise InputError(f"{manifest}: no ingest manifest") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{manifest}: cannot read the ingest manifest: {err}") from None
    except (KeyError, TypeError) as err:
        raise InputError(f"{manifest}: not an ingest manifest of this unetseg (no {err}); "
                         "re-run the ingest stage") from None
    except InputError as err:
        raise InputError(f"{manifest}: {err}") from None
    return data


def _check_training_data(data: TrainingData) -> None:
    for key in ("source", "layout", "annotations", "test_split"):
        if not isinstance(getattr(data, key), str):
            raise InputError(f"training_data.{key}: must be a string")
    if data.layout not in _LAYOUTS:
        raise InputError(f"training_data.layout: must be one of {', '.join(_LAYOUTS)}, "
                         f"got {data.layout!r}")
    if not isinstance(data.n_images, int) or isinstance(data.n_images, bool) \
            or data.n_images < 0:
        raise InputError(f"training_data.n_images: must be an integer >= 0, got "
                         f"{data.n_images!r}")


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to segment an image with a trained network, without the pipeline.

    Attributes
    ----------
    format_version : :data:`CARD_VERSION` of the writer.
    model : the architecture and input tile (``model.tile_size`` px in → ``out_size`` out).
    prepare : how training targets were made; ``prepare.resample_factor`` resamples every image
        before the network sees it, and predictions are brought back to the image grid.
    train : the training params.
    training_data : what it was trained on (None for a network trained outside the pipeline).
    out_size : output tile size in px.
    step : stride between output tiles at inference (a multiple of ``2**depth`` for
        ``valid`` padding, which makes stitched tiles equal an untiled pass).
    normalize_percentiles : ``(low, high)``: inputs are mapped linearly so that these
        percentiles of the image become 0 and 1 (float32, ``(Y, X)`` grayscale).
    channels : the meaning of each network output channel, in order.
    backend : Keras backend that trained it (``tensorflow`` or ``jax``).
    versions : package versions at training time.
    replicas : devices training ran on.
    epochs : epochs trained.
    """

    format_version: int
    model: ModelParams
    prepare: PrepareParams
    train: TrainParams
    training_data: TrainingData | None
    out_size: int
    step: int
    normalize_percentiles: tuple[float, float]
    channels: tuple[str, ...]
    backend: str
    versions: dict[str, str]
    replicas: int
    epochs: int

    @property
    def has_distance(self) -> bool:
        """True when the network has a distance-to-background head (channel 2)."""
        return self.train.distance_head

    @property
    def distance_px(self) -> float:
        """Pixels (on the network's grid) that the distance head's output 1 stands for."""
        return self.train.distance_clip if self.has_distance else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (sections as nested mappings, tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def output_channels(train: TrainParams) -> tuple[str, ...]:
    """Names of the network's output channels (logits) for a card's ``channels``."""
    channels = ("background logit (softmax with channel 1)", "cell logit (softmax with channel 0)")
    if train.distance_head:
        channels += (f"distance to background: sigmoid x {train.distance_clip:g} px (clipped)",)
    return channels


def package_versions(backend: str) -> dict[str, str]:
    """Versions of the packages that shape a trained model, for a card's ``versions``."""
    versions = {"unetseg": __version__, "python": platform.python_version()}
    candidates = {"keras": ("keras",), "numpy": ("numpy",), backend: (backend, f"{backend}-cpu")}
    for name, distributions in candidates.items():
        for dist in distributions:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def write_card(path: str | Path, card: ModelCard) -> None:
    """Write ``card`` as sorted, indented JSON, atomically."""
    write_json(path, card.to_dict())


def read_card(path: str | Path) -> ModelCard:
    """Read and validate a card written by :func:`write_card`.

    Raises
    ------
    InputError
        ``"<path>: <problem>"`` for a missing or unreadable file, invalid JSON, a card of
        a newer format, unknown or missing keys, or a bad value.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no model card") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read model card: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: model card is not valid JSON ({err.msg}, line {err.lineno})") \
            from None
    try:
        return _card_from_dict(raw)
    except InputError as err:
        raise InputError(f"{path}: {str(err).removeprefix('params: ')}") from None


def _card_from_dict(raw: Any) -> ModelCard:
    if not isinstance(raw, dict):
        raise InputError("a model card must be a JSON object")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InputError(f"format_version: must be a positive integer, got {version!r}")
    if version > CARD_VERSION:
        raise InputError(f"card format {version} is newer than this unetseg reads "
                         f"({CARD_VERSION}); upgrade unetseg")
    if version < CARD_VERSION:
        raise InputError(f"card format {version} is older than this unetseg reads "
                         f"({CARD_VERSION}); re-run the train stage")
    fields = {f.name: f for f in dataclasses.fields(ModelCard)}
    unknown = sorted(set(raw) - set(fields))
    missing = sorted(k for k, f in fields.items()
                     if k not in raw and f.default is dataclasses.MISSING)
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)}")
    if missing:
        raise InputError(f"missing key(s) {', '.join(missing)}")
    values = dict(raw)
    for name, cls in _SECTIONS.items():
        if values.get(name) is not None:
            values[name] = section_from_dict(name, cls, values[name], complete=True)
    values["training_data"] = _training_data(values["training_data"])
    for key in ("out_size", "step", "replicas", "epochs"):
        _expect(values, key, int)
    _expect(values, "backend", str)
    _expect(values, "versions", dict)
    values["normalize_percentiles"] = _floats(values, "normalize_percentiles", 2)
    channels = values["channels"]
    if not (isinstance(channels, list) and channels and all(isinstance(c, str) for c in channels)):
        raise InputError("channels: must be a non-empty list of strings")
    values["channels"] = tuple(channels)
    card = ModelCard(**values)
    if card.out_size != card.model.out_size:
        raise InputError(f"out_size: {card.out_size} does not match model.tile_size "
                         f"{card.model.tile_size} (which gives {card.model.out_size})")
    if not 1 <= card.step <= card.out_size:
        raise InputError(f"step: must be in 1..out_size ({card.out_size}), got {card.step}")
    if len(card.channels) != card.train.n_outputs:
        raise InputError(f"channels: {len(card.channels)} given, but train.distance_weight "
                         f"{card.train.distance_weight:g} means {card.train.n_outputs}")
    return card


def _training_data(raw: Any) -> TrainingData | None:
    if raw is None:
        return None
    fields = [f.name for f in dataclasses.fields(TrainingData)]
    if not isinstance(raw, dict) or sorted(raw) != sorted(fields):
        got = ", ".join(sorted(raw)) if isinstance(raw, dict) else repr(raw)
        raise InputError(f"training_data: expected null or the keys {', '.join(fields)}; "
                         f"got {got}")
    data = TrainingData(**raw)
    _check_training_data(data)
    return data


def _expect(values: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> None:
    value = values[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{key}: unexpected value {value!r}")


def _floats(values: dict[str, Any], key: str, n: int) -> tuple[float, ...]:
    value = values[key]
    if not (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise InputError(f"{key}: must be a list of {n} numbers, got {value!r}")
    return tuple(float(v) for v in value)


def network_card(model: ModelParams, train: TrainParams, prepare: PrepareParams, *,
                 backend: str, replicas: int, epochs: int,
                 training_data: TrainingData | None = None) -> ModelCard:
    """The card of a freshly trained network (``training_data``: see :func:`read_training_data`;
    None for a network trained outside the pipeline)."""
    return ModelCard(
        format_version=CARD_VERSION, model=model, prepare=prepare, train=train,
        training_data=training_data, out_size=model.out_size,
        step=tile_step(model.out_size, model.depth, model.padding),
        normalize_percentiles=NORMALIZE_PERCENTILES, channels=output_channels(train),
        backend=backend, versions=package_versions(backend), replicas=int(replicas),
        epochs=int(epochs))
