"""The one exception type for expected, user-facing failures."""

from __future__ import annotations


class InputError(Exception):
    """Bad input the user can fix: a corrupt file, a wrong checksum, a bad param.

    The message is a single line that names the offending file or key and the
    problem. Stage CLIs print it as ``error: <message>`` and exit with status 1,
    without a traceback.
    """
