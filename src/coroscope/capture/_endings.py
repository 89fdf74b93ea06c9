"""How a task ended, as its ``task.done`` record says it."""

from __future__ import annotations

from asyncio import CancelledError
from typing import Any

from .. import _schema as S
from .._record import Frames
from ._context import ContextReader
from ._state import TaskState

__all__ = ["done_fields", "task_done"]


def task_done(
    state: TaskState, now: int, result: object, exc: BaseException | None
) -> tuple[str, dict[str, Any]]:
    """The level and fields of a ``task.done`` record, from how the task's root ended.

    Read from the ending itself (the return value or the exception), never from the task:
    coroscope adds nothing to tasks (no done callback) and marks no exception retrieved.
    A root that returned while a cancellation was pending (``cancel()`` after the root's
    last ``await``) ends a cancelled task, as asyncio decides.
    """
    task = state.task()
    fields: dict[str, Any] = {
        # get_name() can be None for a task that completed eagerly (3.13.0).
        S.TASK: {S.NAME: (task.get_name() or "") if task is not None else "", S.ID: state.task_id},
        S.AGE_MS: _ms(now - state.started_ns),
        S.SWITCHES: state.switches,
        S.RUN_MS: _ms(state.run_ns),
        S.WAIT_MS: _ms(state.wait_ns),
    }
    level = S.INFO
    if (exc is not None and issubclass(type(exc), CancelledError)) or (
        exc is None and task is not None and getattr(task, "_must_cancel", False) is True
    ):
        fields[S.OUTCOME] = S.CANCELLED
        fields[S.CANCELLED_AT] = Frames(state.thrown_at)
    elif exc is not None:
        fields[S.OUTCOME] = S.EXCEPTION
        fields[S.EXCEPTION] = type(exc).__qualname__
        level = S.WARNING
    else:
        fields[S.OUTCOME] = S.RESULT
        fields[S.RESULT_TYPE] = type(result).__qualname__
    return level, fields


def done_fields(
    state: TaskState, now: int, result: object, exc: BaseException | None, context: ContextReader
) -> tuple[str, dict[str, Any]]:
    """:func:`task_done`, with the task's context fields added."""
    level, fields = task_done(state, now, result, exc)
    task = state.task()
    bound = context.fields(task) if task is not None else None
    if bound is not None:
        fields.update(bound)
    return level, fields


def _ms(ns: int) -> float:
    return round(max(ns, 0) / 1e6, 3)
