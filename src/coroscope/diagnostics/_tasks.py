"""Task life cycle: each task's loop registered when it starts, ``task.done`` when it ends.

Decided once per task, never per switch: a done callback is added when coroscope sees a
task start.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from .. import _schema as S
from .._record import Frames
from ..capture import TaskState
from ._loops import LoopRegistry

__all__ = ["TaskLifecycle"]

EmitEvent = Callable[[str, str, dict[str, Any]], None]


def _ms(ns: int) -> float:
    return round(max(ns, 0) / 1e6, 3)


class TaskLifecycle:
    """Runs when a task's root starts (on the loop's thread) and when the task ends."""

    def __init__(
        self,
        emit_event: EmitEvent,
        loops: LoopRegistry,
        forget: Callable[[TaskState], None],
        *,
        task_done: bool,
    ) -> None:
        self._emit_event = emit_event
        self._loops = loops
        self._forget = forget
        self._task_done = task_done
        self.errors = 0

    def task_started(self, loop: Any, task: Any, state: TaskState) -> None:
        """Register the task's loop and a callback for its end."""
        if not self._loops.is_last(loop):
            self._loops.register(loop)
        task.add_done_callback(functools.partial(self._done, state))

    def _done(self, state: TaskState, task: Any) -> None:
        # A done callback: runs on the loop when the task has finished.  The monitor forgets
        # the task (and the frame it held) here.
        try:
            self._forget(state)
            if not self._task_done:
                return
            now = time.perf_counter_ns()
            fields: dict[str, Any] = {
                # get_name() can be None for a task that completed eagerly (3.13.0).
                S.TASK: {S.NAME: task.get_name() or "", S.ID: state.task_id},
                S.AGE_MS: _ms(now - state.started_ns),
                S.SWITCHES: state.switches,
                S.RUN_MS: _ms(state.run_ns),
                S.WAIT_MS: _ms(state.wait_ns),
            }
            level = S.INFO
            if task.cancelled():
                fields[S.OUTCOME] = S.CANCELLED
                fields[S.CANCELLED_AT] = Frames(state.thrown_at)
            else:
                # `_exception`, not `exception()`: reading it must not mark the exception
                # as retrieved (asyncio would then not log "exception was never retrieved").
                exc = task._exception
                if exc is not None:
                    fields[S.OUTCOME] = S.EXCEPTION
                    fields[S.EXCEPTION] = type(exc).__qualname__
                    level = S.WARNING
                else:
                    fields[S.OUTCOME] = S.RESULT
                    fields[S.RESULT_TYPE] = type(task._result).__qualname__
            self._emit_event(S.TASK_DONE, level, fields)
        except Exception:
            self.errors += 1
