"""Start coroscope when ``COROSCOPE`` asks for it, as soon as asyncio is imported.

Run by the ``coroscope.pth`` line (and the PEP 829 ``coroscope.start`` entry point).  When
coroscope is not enabled this costs one environment lookup.  When it is, it costs one
object on ``sys.meta_path`` until the process first imports asyncio: a process that never
does (pip, a compiler's helper script) imports nothing of coroscope.  Right after
asyncio's own code has run, and before the import returns to whoever asked for it,
coroscope is installed; no task can exist before that, so the very first task of the
program is seen.  The finder then takes itself off ``sys.meta_path``.

This module imports nothing itself and never raises.
"""

import os
import sys

TYPE_CHECKING = False  # typing is not imported at start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

_OFF = ("", "0", "false", "off", "no")
_started = False
_deferred = False


def start() -> None:
    """Arrange for coroscope to start (once per process) if ``COROSCOPE`` enables it.

    Runs at most once per process: ``site`` may process the same ``.pth`` twice (a
    virtual environment's ``lib64`` link to ``lib`` makes its site-packages appear twice).
    """
    global _started
    if _started:
        return
    _started = True
    value = os.environ.get("COROSCOPE", "").strip().lower()
    if value in _OFF or sys.flags.ignore_environment:
        return
    if "asyncio" in sys.modules:
        _install()
    else:
        sys.meta_path.insert(0, _AsyncioWatch())


def _install(now: bool = False) -> None:
    global _deferred
    package = sys.modules.get("coroscope")
    if not now and package is not None and getattr(package.__spec__, "_initializing", False):
        # coroscope's own import is what imports asyncio: install once it is complete.
        _deferred = True
        return
    _deferred = False
    try:
        from coroscope._bootstrap import start_from_environment

        start_from_environment()
    except BaseException as exc:
        try:
            sys.stderr.write(f"coroscope: could not start ({type(exc).__name__}: {exc})\n")
        except BaseException:
            pass


def run_deferred() -> None:
    """Install now if asyncio was first imported by coroscope's own package import (called
    at the end of that import)."""
    if _deferred:
        _install(now=True)


class _AsyncioWatch:
    """A one-shot meta path finder: installs coroscope once asyncio has been executed."""

    def find_spec(
        self, name: str, path: "Sequence[str] | None", target: "ModuleType | None" = None
    ) -> "ModuleSpec | None":
        if name != "asyncio":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: "ModuleSpec | None" = find(name, path, target)
            if spec is not None:
                loader = getattr(spec, "loader", None)
                if loader is not None and hasattr(loader, "exec_module"):
                    spec.loader = _ThenInstall(loader)  # type: ignore[assignment]
                return spec
        return None

    def invalidate_caches(self) -> None:
        pass


class _ThenInstall:
    """Asyncio's own loader, then coroscope's installation; gives the loader back."""

    def __init__(self, loader: "Any") -> None:
        self.loader = loader

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        module: "ModuleType | None" = self.loader.create_module(spec)
        return module

    def exec_module(self, module: "ModuleType") -> None:
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self.loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self.loader
        self.loader.exec_module(module)
        _install()

    def __getattr__(self, name: str) -> "Any":
        return getattr(self.loader, name)
