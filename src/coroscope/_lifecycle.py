"""Task life cycle records: ``task.done`` and ``coroutine.never_awaited``.

Both are decided once per task or coroutine, never per switch: a done callback is added
when coroscope sees a task start, and Python's own "coroutine ... was never awaited"
hook (``warnings._warn_unawaited_coroutine``, which CPython looks up each time) is
wrapped so the warning is also a structured record.  The program still gets the warning.
"""

from __future__ import annotations

import functools
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

from ._loops import LoopRegistry
from ._render import frame_dicts, note_thread_name

__all__ = ["TaskLifecycle", "UnawaitedHook"]

EmitEvent = Callable[[str, str, dict[str, Any]], None]


def _ms(ns: int) -> float:
    return round(max(ns, 0) / 1e6, 3)


class TaskLifecycle:
    """Runs when a task's root starts (on the loop's thread) and when the task ends."""

    def __init__(
        self,
        emit_event: EmitEvent,
        loops: LoopRegistry,
        forget: Callable[[Any], None],
        *,
        task_done: bool,
    ) -> None:
        self._emit_event = emit_event
        self._loops = loops
        self._forget = forget
        self._task_done = task_done
        self.errors = 0

    def task_started(self, loop: Any, task: Any, root: Any) -> None:
        """Register the task's loop and a callback for its end."""
        if not self._loops.is_last(loop):
            self._loops.register(loop)
            note_thread_name()
        task.add_done_callback(functools.partial(self._done, root))

    def _done(self, root: Any, task: Any) -> None:
        # A done callback: runs on the loop when the task has finished.  The monitor forgets
        # the task (and the frame it held) here.
        try:
            self._forget(root)
            if not self._task_done:
                return
            now = time.perf_counter_ns()
            fields: dict[str, Any] = {
                # get_name() can be None for a task that completed eagerly (3.13.0).
                "task": {"name": task.get_name() or "", "id": root.task_id},
                "age_ms": _ms(now - root.started_ns),
                "switches": root.switches,
                "run_ms": _ms(root.run_ns),
                "wait_ms": _ms(root.wait_ns),
            }
            level = "info"
            if task.cancelled():
                fields["outcome"] = "cancelled"
                fields["cancelled_at"] = frame_dicts(root.thrown_at)
            else:
                # `_exception`, not `exception()`: reading it must not mark the exception
                # as retrieved (asyncio would then not log "exception was never retrieved").
                exc = task._exception
                if exc is not None:
                    fields["outcome"] = "exception"
                    fields["exception"] = type(exc).__qualname__
                    level = "warning"
                else:
                    fields["outcome"] = "result"
                    fields["result_type"] = type(task._result).__qualname__
            self._emit_event("task.done", level, fields)
        except Exception:
            self.errors += 1


class UnawaitedHook:
    """Turns "coroutine ... was never awaited" into a ``coroutine.never_awaited`` record."""

    def __init__(self, emit_event: EmitEvent) -> None:
        self._emit_event = emit_event
        self._original: Callable[[Any], None] | None = None
        self._active = False
        # One bound method, installed and later recognised by identity.
        self._installed: Callable[[Any], None] = self._hook

    def install(self) -> None:
        """Wrap the interpreter's hook (once)."""
        if self._active:
            return
        self._original = warnings._warn_unawaited_coroutine  # type: ignore[attr-defined]
        warnings._warn_unawaited_coroutine = self._installed  # type: ignore[attr-defined]
        self._active = True

    def uninstall(self) -> None:
        """Restore the interpreter's hook if nobody wrapped it after us; else go inert."""
        self._active = False
        if warnings._warn_unawaited_coroutine is self._installed:  # type: ignore[attr-defined]
            warnings._warn_unawaited_coroutine = self._original  # type: ignore[attr-defined]

    def _hook(self, coro: Any) -> None:
        try:
            if self._active:
                self._emit_event("coroutine.never_awaited", "warning", _describe_coroutine(coro))
        except Exception:
            pass
        original = self._original
        if original is not None:
            original(coro)


def _describe_coroutine(coro: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if type(coro) is types.CoroutineType:
        code = coro.cr_code
        fields["coroutine"] = code.co_qualname
        fields["file"] = code.co_filename
        fields["line"] = code.co_firstlineno
        origin = coro.cr_origin
        if origin:
            fields["created_at"] = [
                {"file": file, "line": line, "function": function}
                for file, line, function in origin
            ]
    else:
        fields["coroutine"] = type(coro).__qualname__
    return fields
