"""Which implementation of the capture core runs: the native extension or pure Python.

The pure-Python implementation is the readable reference and the fallback.  It runs where
no other is available, and whenever ``COROSCOPE_NO_EXTENSIONS`` is set to an enabling
value (``1``, ``true``, ``on``, ``yes``), which is read when coroscope is installed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["NATIVE", "PYTHON", "available", "selected"]

PYTHON = "python"
NATIVE = "native"

_ENABLING = frozenset({"1", "true", "on", "yes"})


def available() -> tuple[str, ...]:
    """The implementations this installation can run, preferred first."""
    return (PYTHON,)


def forced_python(environ: Mapping[str, str]) -> bool:
    """Whether ``COROSCOPE_NO_EXTENSIONS`` asks for pure Python."""
    return environ.get("COROSCOPE_NO_EXTENSIONS", "").strip().lower() in _ENABLING


def selected(environ: Mapping[str, str] | None = None) -> str:
    """The implementation an installation made now would run."""
    env = os.environ if environ is None else environ
    if forced_python(env):
        return PYTHON
    return available()[0]
