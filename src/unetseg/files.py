"""Atomic file and folder replacement, so a killed stage never leaves half an output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling path that replaces ``target`` only on success.

    The caller writes a file *or* a folder at the yielded path. When the block
    exits normally, the temporary path is renamed over ``target`` (an existing
    folder at ``target`` is removed first); on any exception it is deleted and
    ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    tmp.rmdir()
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def scratch_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new hidden folder beside ``target`` for work files; it is removed on exit.

    Work files of a killed earlier run for the same ``target`` are removed first, and folders
    made for it are removed again if they stay empty (``target`` was not written). Beside the
    output rather than in ``/tmp``, so that it has the output's room and, on a cluster, is
    seen by every worker that sees the output.
    """
    target = Path(target)
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target, ".scratch")
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".scratch",
                                   dir=target.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for parent in made:  # the folders made for it, if nothing else went there
            with contextlib.suppress(OSError):
                parent.rmdir()


def _remove_stale(target: Path, suffix: str = ".tmp") -> None:
    """Delete temporaries that a killed earlier run left beside ``target``."""
    for stale in target.parent.glob(f".{target.name}.*{suffix}"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as sorted, indented JSON, atomically: the project's one JSON writer."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
