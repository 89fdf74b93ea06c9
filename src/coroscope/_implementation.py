"""Which implementation of the capture core runs: the native extension or pure Python.

The native core (``coroscope.capture._core``, built from ``_core.c`` when a compiler is
there at install time) runs the per-switch callbacks in C and hands everything else to the
pure-Python methods, so both build the same records.  The pure-Python implementation is
the readable reference and the fallback.  It runs where the extension was not built or
fails to import (said once on stderr), on interpreters other than CPython, and whenever
``COROSCOPE_NO_EXTENSIONS`` is set to an enabling value (``1``, ``true``, ``on``, ``yes``),
which is read when coroscope is installed.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from types import ModuleType

__all__ = [
    "NATIVE",
    "PYTHON",
    "available",
    "core",
    "fallback_message",
    "import_problem",
    "selected",
]

PYTHON = "python"
NATIVE = "native"

_ENABLING = frozenset({"1", "true", "on", "yes"})
_UNTRIED: object = object()
_core: ModuleType | object | None = _UNTRIED
_problem: str | None = None
_broken = False
_told = False
_MODULE = "coroscope.capture._core"


def _load() -> ModuleType | None:
    """The extension module, imported once; ``None`` if it is missing or broken."""
    global _core, _problem, _broken
    if _core is _UNTRIED:
        if sys.implementation.name != "cpython":
            _core, _problem = None, f"not built for {sys.implementation.name}"
        else:
            try:
                module = importlib.import_module(_MODULE)
            except ModuleNotFoundError as exc:
                _core, _problem = None, f"not built ({exc})"
                if exc.name != _MODULE:  # built, but something it needs is missing
                    _broken = True
            except Exception as exc:  # built, but broken: say so once, run pure Python
                _core, _problem, _broken = None, f"{type(exc).__name__}: {exc}", True
            else:
                _core = module
    return _core if isinstance(_core, ModuleType) else None


def import_problem() -> str | None:
    """Why the native core cannot run here, or ``None`` if it can."""
    _load()
    return _problem


def fallback_message() -> str | None:
    """Once per process: why a native core that was built does not run (``None`` if it
    runs, was never built, or this was said already)."""
    global _told
    _load()
    if not _broken or _told:
        return None
    _told = True
    return f"coroscope: the native capture core failed to import ({_problem}); using pure Python"


def available() -> tuple[str, ...]:
    """The implementations this installation can run, preferred first."""
    return (NATIVE, PYTHON) if _load() is not None else (PYTHON,)


def forced_python(environ: Mapping[str, str]) -> bool:
    """Whether ``COROSCOPE_NO_EXTENSIONS`` asks for pure Python."""
    return environ.get("COROSCOPE_NO_EXTENSIONS", "").strip().lower() in _ENABLING


def selected(environ: Mapping[str, str] | None = None) -> str:
    """The implementation an installation made now would run."""
    env = os.environ if environ is None else environ
    if forced_python(env):
        return PYTHON
    return available()[0]


def core(environ: Mapping[str, str] | None = None) -> ModuleType | None:
    """The native core module if an installation made now runs it, else ``None``."""
    return _load() if selected(environ) == NATIVE else None
