"""The ``sys.monitoring`` tool: the only module that touches ``sys.monitoring``.

One task switch fires one ``PY_YIELD`` (or ``PY_RESUME``/``PY_THROW``) per frame of the
task's await chain.  Only the task's root coroutine matters: it is the last frame to yield
and the first to resume, and at its ``PY_YIELD`` the whole chain is suspended and can be
walked from it.  So each callback:

1. returns ``DISABLE`` at once for code that can never be a task's root coroutine
   (generators, async generators, ``types.coroutine`` helpers such as the one behind
   ``asyncio.sleep(0)``): after the first event, that location costs nothing;
2. for coroutine code, asks whether the frame is the current task's root coroutine
   and returns if not;
3. at the root, takes the time, captures the chain on suspend (or reuses the chain captured
   at the matching suspend, on resume: a suspended frame cannot change) and appends one
   compact tuple to the buffer.

Every callback catches every ``Exception``: one raised here would surface inside the
user's coroutine.  After ``max_errors`` internal errors the tool switches itself off and
says so once on stderr.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import weakref
from asyncio import events as _events
from asyncio import tasks as _tasks
from collections.abc import Callable
from inspect import CO_COROUTINE
from types import CodeType
from types import CoroutineType as _CoroutineType
from typing import Any

from ._chain import ChainCapture, describe_awaitable
from ._record import RESUME, SUSPEND, FrameRecord, SwitchRecord

__all__ = ["Monitor", "TOOL_IDS", "TOOL_NAME"]

TOOL_NAME = "coroscope"
TOOL_IDS = (3, 4)  # unassigned by CPython (0 debugger, 1 coverage, 2 profiler, 5 optimizer)

_mon = sys.monitoring
_EVENTS = _mon.events
_DISABLE = _mon.DISABLE
_EVENT_SET = _EVENTS.PY_YIELD | _EVENTS.PY_RESUME | _EVENTS.PY_THROW

_get_running_loop = _events._get_running_loop
_current_task = _tasks.current_task
_getframe = sys._getframe
_clock = time.perf_counter_ns
_get_ident = threading.get_ident

Emit = Callable[[SwitchRecord], object]


class _TaskState:
    """What the monitor remembers about one live task between its switches."""

    __slots__ = ("frames", "ref", "resumed_ns", "suspended_ns", "task_id")

    def __init__(self, task: object, task_id: int) -> None:
        self.ref = weakref.ref(task)
        self.task_id = task_id
        self.resumed_ns = -1
        self.suspended_ns = -1
        self.frames: tuple[FrameRecord, ...] = ()


class _TaskStates:
    """Per-task state keyed by ``id(task)``, holding only a weak reference to the task.

    A plain dict lookup is much cheaper than a ``WeakKeyDictionary``'s; an entry whose
    task died (or whose id was reused) is detected by its weak reference and replaced,
    and dead entries are swept whenever the table has doubled since the last sweep, so
    memory follows the number of live tasks.
    """

    __slots__ = ("_ids", "_states", "_sweep_at")

    def __init__(self) -> None:
        self._states: dict[int, _TaskState] = {}
        self._ids = itertools.count(1)
        self._sweep_at = 1024

    def get(self, task: object) -> _TaskState:
        state = self._states.get(id(task))
        if state is None or state.ref() is not task:
            state = self._new(task)
        return state

    def _new(self, task: object) -> _TaskState:
        state = _TaskState(task, next(self._ids))
        states = self._states
        states[id(task)] = state
        if len(states) >= self._sweep_at:
            for key, old in list(states.items()):
                if old.ref() is None:
                    del states[key]
            self._sweep_at = max(1024, 2 * len(states))
        return state

    def __len__(self) -> int:
        return len(self._states)


class Monitor:
    """Owns one ``sys.monitoring`` tool id and the three switch callbacks."""

    def __init__(
        self,
        emit: Emit,
        chain: ChainCapture,
        *,
        max_errors: int = 10,
        on_disabled: Callable[[str], None] | None = None,
    ) -> None:
        self._emit = emit
        self._chain = chain
        self._max_errors = max_errors
        self._on_disabled = on_disabled
        self._lock = threading.Lock()
        self.tool_id: int | None = None
        self.errors = 0
        self.first_error: BaseException | None = None
        self.tasks = _TaskStates()
        self._seq = itertools.count()
        self._set_emit: Callable[[Emit], None] | None = None

    # -- life cycle ---------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the callbacks are registered and events are on."""
        return self.tool_id is not None

    def set_emit(self, emit: Emit) -> None:
        """Send records to ``emit`` from now on (the callbacks hold it in a closure cell)."""
        self._emit = emit
        if self._set_emit is not None:
            self._set_emit(emit)

    def next_seq(self) -> int:
        """Take the next record number (shared by capture and the writer's own records)."""
        return next(self._seq)

    def start(self) -> bool:
        """Take a free tool id and turn the events on; ``False`` if every id is taken."""
        with self._lock:
            if self.tool_id is not None:
                return True
            for tool_id in TOOL_IDS:
                try:
                    _mon.use_tool_id(tool_id, TOOL_NAME)
                except ValueError:
                    continue
                self.tool_id = tool_id
                break
            else:
                return False
            on_yield, on_resume, on_throw = self._callbacks()
            _mon.register_callback(tool_id, _EVENTS.PY_YIELD, on_yield)
            _mon.register_callback(tool_id, _EVENTS.PY_RESUME, on_resume)
            _mon.register_callback(tool_id, _EVENTS.PY_THROW, on_throw)
            _mon.set_events(tool_id, _EVENT_SET)
            return True

    def stop(self) -> None:
        """Turn every event off and free the tool id; safe to call twice."""
        with self._lock:
            tool_id = self.tool_id
            if tool_id is None:
                return
            self.tool_id = None
            _release(tool_id)

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock, record numbers and task table."""
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.tasks = _TaskStates()

    # -- errors -------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = exc
        if self.errors >= self._max_errors and self.tool_id is not None:
            self.stop()
            first = self.first_error
            message = (
                f"coroscope: switched off after {self.errors} internal errors "
                f"(first: {type(first).__name__}: {first}); the program continues unmonitored"
            )
            if self._on_disabled is not None:
                self._on_disabled(message)

    # -- the hot path -------------------------------------------------------------------

    def _callbacks(
        self,
    ) -> tuple[
        Callable[[CodeType, int, object], object],
        Callable[[CodeType, int], object],
        Callable[[CodeType, int, BaseException], object],
    ]:
        """Build the three callbacks as closures over everything they use."""
        emit = self._emit
        capture = self._chain.capture
        get_state = self.tasks.get
        next_seq = self._seq.__next__
        error = self._error

        def root_task(frame_depth: int = 2) -> Any:
            # The running task, if the frame being switched is its root coroutine.
            loop = _get_running_loop()
            if loop is None:
                return None
            task = _current_task(loop)
            if task is None:
                return None
            coro = task.get_coro()
            if type(coro) is not _CoroutineType or coro.cr_frame is not _getframe(frame_depth):
                return None
            return task

        def on_yield(code: CodeType, offset: int, value: object) -> object:
            if not code.co_flags & CO_COROUTINE:
                return _DISABLE
            try:
                task = root_task()
                if task is None:
                    return None
                now = _clock()
                state = get_state(task)
                frames = capture(task.get_coro(), value)
                state.frames = frames
                step = now - state.resumed_ns if state.resumed_ns >= 0 else -1
                state.suspended_ns = now
                emit(
                    (
                        SUSPEND,
                        next_seq(),
                        now,
                        _get_ident(),
                        state.task_id,
                        task.get_name(),
                        frames,
                        (type(value).__qualname__, describe_awaitable(value)),
                        step,
                        None,
                    )
                )
            except Exception as exc:
                error(exc)
            return None

        def resumed(exception: str | None) -> None:
            task = root_task(3)
            if task is None:
                return
            now = _clock()
            state = get_state(task)
            waited = now - state.suspended_ns if state.suspended_ns >= 0 else -1
            state.resumed_ns = now
            frames = state.frames
            state.frames = ()
            emit(
                (
                    RESUME,
                    next_seq(),
                    now,
                    _get_ident(),
                    state.task_id,
                    task.get_name(),
                    frames,
                    None,
                    waited,
                    exception,
                )
            )

        def on_resume(code: CodeType, offset: int) -> object:
            if not code.co_flags & CO_COROUTINE:
                return _DISABLE
            try:
                resumed(None)
            except Exception as exc:
                error(exc)
            return None

        def on_throw(code: CodeType, offset: int, exc: BaseException) -> object:
            # PY_THROW cannot be disabled per location; non-coroutines just return.
            if not code.co_flags & CO_COROUTINE:
                return None
            try:
                resumed(type(exc).__qualname__)
            except Exception as err:
                error(err)
            return None

        def set_emit(new: Emit) -> None:
            nonlocal emit
            emit = new

        self._set_emit = set_emit
        return on_yield, on_resume, on_throw


def _release(tool_id: int) -> None:
    """Leave nothing behind: events off, callbacks unregistered, id freed.

    On 3.12/3.13 ``free_tool_id`` alone does not clear events (CPython gh-111963).
    """
    _mon.set_events(tool_id, 0)
    for event in (_EVENTS.PY_YIELD, _EVENTS.PY_RESUME, _EVENTS.PY_THROW):
        _mon.register_callback(tool_id, event, None)
    _mon.free_tool_id(tool_id)
