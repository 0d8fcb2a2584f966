"""Training: device strategy, optimiser, resumable fitting with per-epoch tracking."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from unetseg.config import ModelParams, TrainParams
from unetseg.errors import InputError
from unetseg.files import atomic_path, write_json
from unetseg.train.losses import WeightedCrossEntropy, pixel_accuracy
from unetseg.train.models import build_model


@contextlib.contextmanager
def distribution_scope(name: str, batch_size: int) -> Iterator[int]:
    """Enter the device strategy named by ``train.strategy``; yields the replica count.

    On TensorFlow, ``auto`` is ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set,
    ``MirroredStrategy`` over all GPUs when there are several, else the default single
    device; ``mirrored`` mirrors over all GPUs, or over all logical CPUs when there is
    no GPU. On JAX, ``auto`` and ``mirrored`` train data-parallel
    (``keras.distribution.DataParallel``) over all local devices when there are several.
    Either way each global batch of ``batch_size`` tiles is split evenly over the
    replicas, and the previous distribution is back in place on exit.

    Raises
    ------
    InputError
        If ``batch_size`` does not split evenly over the replicas, or ``multi_worker``
        is asked for on a backend other than TensorFlow.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if name == "multi_worker" or (name == "auto" and "TF_CONFIG" in os.environ):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        elif name == "mirrored" or (name == "auto" and len(gpus) > 1):
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            strategy = tf.distribute.MirroredStrategy(devices)
        else:
            strategy = tf.distribute.get_strategy()
        _check_split(batch_size, strategy.num_replicas_in_sync)
        with strategy.scope():
            yield strategy.num_replicas_in_sync
        return
    if name == "multi_worker":
        raise InputError("train.strategy: multi_worker needs the TensorFlow backend, "
                         f"not {backend}")
    devices = keras.distribution.list_devices() if backend == "jax" else []
    if name == "default" or len(devices) < 2:
        yield 1
        return
    _check_split(batch_size, len(devices))
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    try:
        yield len(devices)
    finally:
        keras.distribution.set_distribution(previous)


def _check_split(batch_size: int, replicas: int) -> None:
    if batch_size % replicas:
        raise InputError(f"train.batch_size: {batch_size} tiles do not split evenly over "
                         f"{replicas} replicas; use a multiple of {replicas} "
                         "(or train.strategy: default for one device)")


POLICIES = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


@contextlib.contextmanager
def precision_scope(name: str) -> Iterator[str]:
    """Build layers under the Keras dtype policy of ``train.mixed_precision``; yields its name.

    ``float16`` and ``bfloat16`` compute in that dtype with float32 variables
    (``mixed_float16`` gets dynamic loss scaling at ``compile``; bfloat16 has float32's
    range and needs none, the right choice on Ampere and Hopper GPUs). The final 1x1
    convolution (:func:`unetseg.train.models.build_model`) and the loss stay float32.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[name])
    try:
        yield POLICIES[name]
    finally:
        keras.config.set_dtype_policy(previous)


def learning_rate(p: TrainParams,
                  total_steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``train.lr``, held (``constant``, the paper) or decayed to zero over ``total_steps``.

    ``cosine`` follows half a cosine; ``poly`` is nnU-Net's ``lr (1 - step/total)^0.9``.

    Raises
    ------
    ValueError
        If a decaying schedule gets ``total_steps < 1`` (it would train at lr 0 after one step).
    """
    if p.lr_schedule == "constant":
        return p.lr
    if total_steps < 1:
        raise ValueError(f"train.lr_schedule={p.lr_schedule!r} needs the number of training "
                         f"steps, got {total_steps}")
    if p.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(p.lr, decay_steps=total_steps)
    return keras.optimizers.schedules.PolynomialDecay(p.lr, decay_steps=total_steps,
                                                      end_learning_rate=0.0, power=0.9)


def make_optimizer(p: TrainParams, total_steps: int = 0) -> keras.optimizers.Optimizer:
    """The paper's SGD with high momentum (0.99, §3) or Adam, at :func:`learning_rate`."""
    lr = learning_rate(p, total_steps)
    if p.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=p.momentum)
    return keras.optimizers.Adam(learning_rate=lr)


def compiled_model(m: ModelParams, p: TrainParams, steps_per_epoch: int = 0) -> keras.Model:
    """Build the ``model.arch`` network and compile it with the weighted loss (paper Eq. 1).

    ``steps_per_epoch`` sets the length of a decaying ``train.lr_schedule``. With
    ``train.distance_weight`` > 0 the network has a third output channel, the distance head.
    Layers compute in ``train.mixed_precision`` (:func:`precision_scope`).
    """
    with precision_scope(p.mixed_precision):
        model = build_model(m.arch, depth=m.depth, base_filters=m.base_filters,
                            padding=m.padding, dropout=m.dropout, input_size=m.tile_size,
                            n_classes=p.n_outputs)
    model.compile(optimizer=make_optimizer(p, steps_per_epoch * p.epochs),
                  loss=WeightedCrossEntropy(p.distance_weight), metrics=[pixel_accuracy])
    return model


def fingerprint(*parts: Any, files: tuple[Path, ...] = ()) -> str:
    """sha256 over JSON ``parts`` and the bytes of ``files``: what a checkpoint belongs to."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class RunState:
    """Progress of one training run, saved beside its checkpoint after every epoch."""

    fingerprint: str
    epoch: int = 0
    history: dict[str, list[float]] | None = None
    seconds: list[float] | None = None
    samples: list[int] | None = None


class Tracker(keras.callbacks.Callback):
    """After each epoch: checkpoint model + optimiser atomically, then log to dvclive.

    A run killed at any moment resumes from the last finished epoch; the checkpoint
    is written to a temporary file and renamed, so it is never half-written.

    Keras' ``BackupAndRestore`` does not keep that guarantee, so it is not used: it writes
    the weights and the epoch counter as two files in place (a kill between them resumes
    epoch-k+1 weights as epoch k, and trains that epoch twice), it does not tell a
    checkpoint of other params or data from this run's, and it restores neither the
    batches' shuffling order nor the dvclive history, which the same final weights and
    one plot row per epoch need (tests/test_resume.py).
    """

    def __init__(self, checkpoint_dir: Path, state: RunState, live: Any, steps: int,
                 batch_size: int) -> None:
        super().__init__()
        self.dir = checkpoint_dir
        self.state = state
        self.live = live
        self.samples_per_epoch = steps * batch_size
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        s = self.state
        s.epoch = epoch + 1
        logs = {k: float(v) for k, v in (logs or {}).items()}
        for key, value in logs.items():
            s.history.setdefault(key, []).append(value)
        s.seconds.append(time.perf_counter() - self._start)
        s.samples.append(self.samples_per_epoch)
        with atomic_path(self.dir / "last.keras") as tmp:
            self.model.save(tmp.with_suffix(".keras"))
            tmp.with_suffix(".keras").rename(tmp)
        write_json(self.dir / "state.json", asdict(s))
        log_epoch(self.live, logs)


def log_epoch(live: Any, logs: dict[str, float]) -> None:
    """One dvclive step: every metric of one epoch."""
    for key, value in logs.items():
        live.log_metric(key, value)
    live.next_step()


def load_state(checkpoint_dir: Path, expected: str) -> RunState:
    """The saved state if it belongs to this run (same fingerprint), else a fresh one.

    A checkpoint from other params or data is discarded so it is never resumed.
    """
    path = checkpoint_dir / "state.json"
    if path.exists() and (checkpoint_dir / "last.keras").exists():
        try:
            saved = RunState(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            saved = None
        if saved is not None and saved.fingerprint == expected:
            return saved
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return RunState(expected, 0, {}, [], [])


def restore(model: keras.Model, checkpoint: Path) -> None:
    """Copy weights and optimiser state from a saved checkpoint into ``model``."""
    saved = keras.saving.load_model(checkpoint, compile=True)
    model.set_weights(saved.get_weights())
    model.optimizer.build(model.trainable_variables)
    for mine, theirs in zip(model.optimizer.variables, saved.optimizer.variables,
                                strict=True):
        mine.assign(theirs)


def samples_per_second(state: RunState) -> float:
    """Training throughput, leaving out the first epoch (graph tracing) when there are more."""
    seconds, samples = state.seconds or [], state.samples or []
    if len(seconds) > 1:
        seconds, samples = seconds[1:], samples[1:]
    return float(np.sum(samples) / max(np.sum(seconds), 1e-9))


def run_metrics(state: RunState, n_train: int, n_val: int) -> dict[str, Any]:
    """``metrics/train.json``: the last epoch's losses and accuracy, throughput, tile counts."""
    history = state.history or {}
    last = {k: round(history[k][-1], 6) if k in history else None
            for k in ("loss", "val_loss", "pixel_accuracy")}
    return {**last, "samples_per_s": round(samples_per_second(state), 3), "epochs": state.epoch,
            "train_tiles": n_train, "val_tiles": n_val}


def fit(model: keras.Model, train: keras.utils.PyDataset, val: keras.utils.PyDataset | None,
        p: TrainParams, checkpoint_dir: Path, state: RunState,
        make_live: Callable[[], Any]) -> RunState:
    """Train ``model`` for ``p.epochs`` epochs, resuming from ``state.epoch``.

    ``make_live()`` creates a fresh dvclive ``Live`` logger. On resume its history is
    replayed from the checkpoint's state, so the plots hold exactly one row per
    finished epoch even when a run was killed between checkpoint and log.
    """
    live = make_live()
    if state.epoch > 0:
        print(f"resuming from the checkpoint after epoch {state.epoch}", file=sys.stderr)
        restore(model, checkpoint_dir / "last.keras")
        train.set_epoch(state.epoch)
        history = state.history or {}
        for epoch in range(state.epoch):
            log_epoch(live, {k: v[epoch] for k, v in history.items() if len(v) > epoch})
    tracker = Tracker(checkpoint_dir, state, live, len(train), p.batch_size)
    if state.epoch < p.epochs:
        model.fit(train, validation_data=val, epochs=p.epochs, initial_epoch=state.epoch,
                  callbacks=[tracker], verbose=1 if sys.stdout.isatty() else 2)
    live.end()
    return state
