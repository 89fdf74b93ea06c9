"""``coroutine.never_awaited``: Python's "coroutine ... was never awaited" as a record.

CPython looks up ``warnings._warn_unawaited_coroutine`` each time a coroutine is
collected without having been awaited; coroscope puts its own hook there, which writes
the record and then warns exactly as the interpreter's hook would: same text, category
and source, and the same file and line (the code that dropped the coroutine), so the
warnings filters (``-W error::RuntimeWarning:__main__``) and the once-per-line registry
behave as without coroscope.

The interpreter's hook warns with ``stacklevel=2``: it expects to be called from the
dropping code directly.  Called from coroscope's hook it runs one frame deeper, so
coroscope calls a copy of it whose ``warn`` adds the frames in between to the stack level.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

from .. import _schema as S

__all__ = ["UnawaitedHook"]

EmitEvent = Callable[[str, str, dict[str, Any]], None]
# Frames between the interpreter's hook (or its copy) and the dropping code, beyond the
# one it expects: coroscope's hook, and the `warn` shim below.
_EXTRA_FRAMES = 2


def _warn_one_level_up(
    message: Any, category: Any = None, stacklevel: int = 1, source: Any = None
) -> None:
    warnings.warn(message, category, stacklevel + _EXTRA_FRAMES, source)


def _relocated(hook: Callable[[Any], None]) -> Callable[[Any], None] | None:
    """A copy of CPython's hook calling :func:`_warn_one_level_up` instead of ``warn``.

    ``None`` if ``hook`` is not the standard library's (another tool wrapped it first):
    then it is called as it is.
    """
    if type(hook) is not types.FunctionType or hook.__module__ != "warnings":
        return None
    if "warn" not in hook.__code__.co_names:
        return None
    namespace = dict(hook.__globals__)
    namespace["warn"] = _warn_one_level_up
    copy = types.FunctionType(
        hook.__code__, namespace, hook.__name__, hook.__defaults__, hook.__closure__
    )
    copy.__kwdefaults__ = hook.__kwdefaults__
    return copy


class UnawaitedHook:
    """Turns "coroutine ... was never awaited" into a ``coroutine.never_awaited`` record."""

    def __init__(self, emit_event: EmitEvent) -> None:
        self._emit_event = emit_event
        self._original: Callable[[Any], None] | None = None
        self._warn: Callable[[Any], None] | None = None
        self._active = False
        # One bound method, installed and later recognised by identity.
        self._installed: Callable[[Any], None] = self._hook

    def install(self) -> None:
        """Put coroscope's hook in place of the interpreter's (once)."""
        if self._active:
            return
        original = warnings._warn_unawaited_coroutine  # type: ignore[attr-defined]
        self._original = original
        self._warn = _relocated(original) or original
        warnings._warn_unawaited_coroutine = self._installed  # type: ignore[attr-defined]
        self._active = True

    def uninstall(self) -> None:
        """Restore the interpreter's hook if nobody replaced ours since; else go inert."""
        self._active = False
        if warnings._warn_unawaited_coroutine is self._installed:  # type: ignore[attr-defined]
            warnings._warn_unawaited_coroutine = self._original  # type: ignore[attr-defined]

    def _hook(self, coro: Any) -> None:
        try:
            if self._active:
                self._emit_event(S.NEVER_AWAITED, S.WARNING, _describe_coroutine(coro))
        except Exception:
            pass
        if self._warn is not None:
            self._warn(coro)


def _describe_coroutine(coro: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if type(coro) is types.CoroutineType:
        code = coro.cr_code
        fields[S.COROUTINE] = code.co_qualname
        fields[S.FILE] = code.co_filename
        fields[S.LINE] = code.co_firstlineno
        origin = coro.cr_origin
        if origin:
            fields[S.CREATED_AT] = [
                {S.FILE: file, S.LINE: line, S.FUNCTION: function}
                for file, line, function in origin
            ]
    else:
        fields[S.COROUTINE] = type(coro).__qualname__
    return fields
