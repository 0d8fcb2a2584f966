"""Where ``unetseg predict``'s tasks run: local threads, or an existing ``dask.distributed``
cluster.

Without ``--scheduler`` the tasks of a huge image run in this process on dask's threaded
scheduler; network calls take turns (one lock per loaded model, as the backend already spreads
each call over every core) while reading, labelling and writing overlap them. With
``--scheduler ADDRESS`` they run on that cluster's workers. Each worker loads the model once,
on its first task, and keeps it (:func:`worker_segmenter`, keyed by the model folder's path),
so tasks carry only paths and numbers. The workers must therefore see the model folder, the
inputs and the output folder at the same paths as the client (a shared file system), and run
the same unetseg.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask

from unetseg.errors import InputError

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from distributed import Client

    from unetseg.config import PostprocessParams
    from unetseg.infer.segmenter import Segmenter

_SEGMENTERS: dict[tuple[Any, ...], tuple[Segmenter, threading.Lock]] = {}
_LOADING = threading.Lock()


def worker_segmenter(model_dir: Path, postprocess: PostprocessParams,
                     batch_size: int) -> tuple[Segmenter, threading.Lock]:
    """This process's :class:`Segmenter` for ``model_dir`` (loaded on first use), and the lock
    its network calls take turns with.

    Raises
    ------
    InputError
        As :meth:`Segmenter.load`: a model folder this process cannot read.
    """
    key = (str(Path(model_dir).resolve()), postprocess, batch_size)
    with _LOADING:
        if key not in _SEGMENTERS:
            from unetseg.runtime import configure_backend

            configure_backend()
            from unetseg.infer.model_folder import read_model_folder
            from unetseg.infer.segmenter import Segmenter, load_weights
            from unetseg.train.card import WEIGHTS_FILE

            card, _ = read_model_folder(model_dir)
            model = load_weights(Path(model_dir) / WEIGHTS_FILE)
            _SEGMENTERS[key] = (Segmenter(model, card, postprocess, batch_size),
                                threading.Lock())
        return _SEGMENTERS[key]


def connect(address: str, timeout: float) -> Client:
    """A client of the dask scheduler at ``address`` (``tcp://host:port``).

    Raises
    ------
    InputError
        ``"<address>: no dask scheduler answered within N s"``, or a malformed address.
    """
    from distributed import Client
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as err:
        raise InputError(f"{address}: not a dask scheduler address ({err})") from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError):
        raise InputError(f"{address}: no dask scheduler answered within {timeout:g} s") from None


class Runner:
    """Runs lists of independent tasks on dask: local threads, or a distributed ``client``."""

    def __init__(self, client: Client | None = None, threads: int | None = None) -> None:
        self.client = client
        self.threads = threads or min(os.cpu_count() or 1, 4)

    @property
    def where(self) -> str:
        """Where the tasks run, for messages."""
        if self.client is None:
            return f"{self.threads} local threads"
        return f"dask scheduler {self.client.scheduler.address}"

    def tasks(self, name: str, function: Callable[..., Any], items: Sequence[Any], *args: Any,
              after: Sequence[Sequence[Delayed]] | None = None) -> list[Delayed]:
        """Lazy ``function(item, *args, *after[i])`` per item, as dask tasks named
        ``name-<run>-<i>``.

        ``after[i]``: tasks that item ``i`` waits for; ``function`` gets their results as
        trailing arguments (and may ignore them).
        """
        token = uuid.uuid4().hex[:8]
        call = dask.delayed(function, pure=False)
        waits = after if after is not None else [()] * len(items)
        return [call(item, *args, *wait, dask_key_name=f"{name}-{token}-{i}")
                for i, (item, wait) in enumerate(zip(items, waits, strict=True))]

    def compute(self, tasks: Sequence[Delayed]) -> list[Any]:
        """Run ``tasks`` (and what they wait for); their results, in order."""
        if self.client is None:
            return list(dask.compute(*tasks, scheduler="threads", num_workers=self.threads))
        return list(dask.compute(*tasks, scheduler=self.client))

    def map(self, name: str, function: Callable[..., Any], items: Sequence[Any],
            *args: Any) -> list[Any]:
        """``[function(item, *args) for item in items]``, as dask tasks (:meth:`tasks`)."""
        return self.compute(self.tasks(name, function, items, *args))
