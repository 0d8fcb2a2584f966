"""Validate a model description with bioimageio.spec and write it as a package (a zip).

Offline: the description holds no URLs (citations are DOIs, the training data is described
inline), so validation opens only the package's own files; ``perform_io_checks`` stays on, so
that the test tensors, sample tensors, cover and weights are all read and checked.

bioimageio.spec 0.5.12.0 (pinned by bioimageio.core 0.11) calls pydantic's serialisation
handler as ``handler(value, info)``, which pydantic 2.14 refuses; the locks therefore hold
pydantic 2.13, where ``bioimageio test`` passes (tests/test_export_trained.py runs the CLI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unetseg.errors import InputError


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
        from bioimageio.spec import ValidationContext, build_description, save_bioimageio_package
        from bioimageio.spec.model.v0_5 import ModelDescr

        with ValidationContext(root=folder, perform_io_checks=True, log_warnings=False,
                               raise_errors=False):
            descr = build_description(rdf)
            if not isinstance(descr, ModelDescr) or descr.validation_summary.status == "failed":
                raise InputError(f"bioimage.io validation failed: {first_problem(descr)}")
            save_bioimageio_package(descr, output_path=out)
    finally:
        logger.enable("bioimageio")
