"""Validate a model description with bioimageio.spec and write it as a package (a zip).

Offline: the description holds no URLs (citations are DOIs, the training data is described
inline), so validation opens only the package's own files; ``perform_io_checks`` stays on, so
that the test tensors, sample tensors, cover and weights are all read and checked.

bioimageio.spec 0.5.12.0 calls pydantic's serialisation handler as ``handler(value, info)``
(``package_file_descr_serializer`` and ``package_weights``); pydantic-core 2.50 (pydantic 2.14)
takes a second argument only as an ``index_key`` and refuses ``info`` with a TypeError, so no
model with weights validates: ``bioimageio test`` fails on every package with "'index_key' is
expected to be an integer or a string". :func:`spec_compatible` works around it for the calls
unetseg makes, and only where the installed pydantic behaves so (:func:`handler_refuses_info`):
it drops the extra argument on the way to the handler, and puts the functions back afterwards.
``python -m unetseg.export.spec test OUT.zip`` is ``bioimageio test OUT.zip`` with it. Remove it
once the locks hold a bioimageio.spec that calls ``handler(value)``, or a pydantic that accepts
the old call.
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from unetseg.errors import InputError


@functools.cache
def handler_refuses_info() -> bool:
    """True when pydantic refuses ``handler(value, info)`` in a wrap serializer (see above)."""
    import pydantic

    class Probe(pydantic.BaseModel):
        x: int = 0

        @pydantic.model_serializer(mode="wrap")
        def _dump(self, handler: Any, info: Any) -> Any:
            return handler(self, info)

    try:
        Probe().model_dump()
    except Exception as err:  # noqa: BLE001 - pydantic wraps the TypeError differently by version
        return "index_key" in str(err)
    return False


def _drop_index_key(value: Any, handler: Any, info: Any) -> Any:
    """The body that replaces a patched serializer: call it with a handler that takes one
    argument. ``_UNPATCHED`` is renamed per function (:func:`_patch`)."""
    return _UNPATCHED(value, lambda v, *_: handler(v), info)  # type: ignore[name-defined]  # noqa: F821


def _patch(fn: Callable[..., Any]) -> types.CodeType:
    """Make ``fn`` (a module-level function) call its old body through :func:`_drop_index_key`;
    return its old code. The function object itself must change (not the module attribute):
    pydantic's schemas hold it."""
    old = fn.__code__
    key = f"_unetseg_unpatched_{fn.__name__}"
    fn.__globals__[key] = types.FunctionType(old, fn.__globals__, fn.__name__, fn.__defaults__)
    code = _drop_index_key.__code__
    fn.__code__ = code.replace(co_name=fn.__name__, co_names=tuple(
        key if n == "_UNPATCHED" else n for n in code.co_names))
    return old


@contextlib.contextmanager
def spec_compatible() -> Iterator[None]:
    """Within this block bioimageio.spec validates and packages under the installed pydantic."""
    from bioimageio.spec._internal import io_packaging
    from bioimageio.spec.model import v0_4

    targets = [io_packaging.package_file_descr_serializer, v0_4.package_weights] \
        if handler_refuses_info() else []
    saved = [(fn, _patch(fn)) for fn in targets]
    try:
        yield
    finally:
        for fn, code in saved:
            fn.__code__ = code
            fn.__globals__.pop(f"_unetseg_unpatched_{fn.__name__}", None)


def first_problem(descr: Any) -> str:
    """``"<where>: <what>"`` of the first error of a bioimageio validation or test summary."""
    summary = descr.validation_summary
    for detail in summary.details:
        for error in detail.errors:
            where = ".".join(map(str, error.loc)) or detail.name
            return f"{where}: {' '.join(str(error.msg).split())}"[:300]
    return f"bioimageio validation {summary.status}"


def write_package(rdf: dict[str, Any], folder: Path, out: Path) -> None:
    """Validate ``rdf`` (its files lie in ``folder``) and zip it with its files to ``out``.

    Raises
    ------
    InputError
        ``"bioimage.io validation failed: <first problem>"``.
    """
    from loguru import logger

    logger.disable("bioimageio")  # its findings come back in the summary
    try:
        with spec_compatible():
            from bioimageio.spec import (
                ValidationContext,
                build_description,
                save_bioimageio_package,
            )
            from bioimageio.spec.model.v0_5 import ModelDescr

            with ValidationContext(root=folder, perform_io_checks=True, log_warnings=False,
                                   raise_errors=False):
                descr = build_description(rdf)
                if not isinstance(descr, ModelDescr) \
                        or descr.validation_summary.status == "failed":
                    raise InputError(f"bioimage.io validation failed: {first_problem(descr)}")
                save_bioimageio_package(descr, output_path=out)
    finally:
        logger.enable("bioimageio")


if __name__ == "__main__":
    from bioimageio.core.__main__ import main

    with spec_compatible():
        main()
