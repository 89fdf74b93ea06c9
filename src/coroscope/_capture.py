"""The ``sys.monitoring`` tool: the only module that touches ``sys.monitoring``.

A task switch fires ``PY_YIELD`` (or ``PY_RESUME``) once per frame of the task's await
chain, but only the task's *root* coroutine matters: it is the last frame to yield and the
first to resume, and at its ``PY_YIELD`` the whole chain is suspended and can be walked
from it.  So coroscope listens to as few events as it can:

* ``PY_START`` (global) discovers task roots.  Non-coroutine code is switched off at once
  with ``DISABLE``; a coroutine awaited by another coroutine (its caller stands at a ``SEND``:
  the common case) is recognised from its caller's frame in a few operations, and switched off
  if its module is left out; any other start is checked against ``asyncio.current_task()``.  When a
  root is found, its code object gets *local* ``PY_YIELD``/``PY_RESUME`` events, and its
  frame is entered in a table.
* ``PY_YIELD``/``PY_RESUME`` (local, on root code only) look the frame up in that table
  (one dict lookup), take the time and, if the switch is to be logged, capture the chain and
  append one compact tuple to the buffer.
* ``PY_THROW`` (global: it cannot be local) turns an exception thrown into a task
  (cancellation, timeouts) into a ``resume`` record, whichever frame of the chain receives it.

Every decision that does not depend on the switch (mode, thresholds, sampling rate,
include/exclude) is made before monitoring starts, by choosing which closures to install.

Every callback catches every ``Exception``: one raised here would surface inside the
user's coroutine.  After ``max_errors`` internal errors the tool switches itself off and
says so once.
"""

from __future__ import annotations

import dis
import itertools
import random
import sys
import threading
import time
import weakref
from asyncio import events as _events
from asyncio import tasks as _tasks
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE
from types import CodeType, FrameType
from types import CoroutineType as _CoroutineType
from typing import Any

from ._chain import ChainCapture, describe_awaitable
from ._record import (
    EVENT,
    RESUME,
    SUSPEND,
    EventRecord,
    FrameRecord,
    Record,
    Skeleton,
    SwitchRecord,
)

__all__ = ["CaptureOptions", "Monitor", "TOOL_IDS", "TOOL_NAME"]

TOOL_NAME = "coroscope"
TOOL_IDS = (3, 4)  # unassigned by CPython (0 debugger, 1 coverage, 2 profiler, 5 optimizer)

_mon = sys.monitoring
_EVENTS = _mon.events
_DISABLE = _mon.DISABLE
_GLOBAL_EVENTS = _EVENTS.PY_START | _EVENTS.PY_THROW
_ROOT_EVENTS = _EVENTS.PY_YIELD | _EVENTS.PY_RESUME
_AWAITER_FLAGS = CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
_SEND = dis.opmap["SEND"]

_get_running_loop = _events._get_running_loop
_current_task = _tasks.current_task
_getframe = sys._getframe
_clock = time.perf_counter_ns
_get_ident = threading.get_ident

Emit = Callable[[Record], object]


@dataclass(frozen=True)
class CaptureOptions:
    """What the callbacks record; fixed for the life of an installation."""

    mode: str = "all"  # "all" or "slow"
    slow_step_ns: int = 100_000_000
    slow_await_ns: int = 1_000_000_000
    sample: float = 1.0


class _Root:
    """What the monitor keeps about one task, keyed by its root coroutine's frame."""

    __slots__ = (
        "coro_ref",
        "frame",
        "frames",
        "link",
        "resume_lasti",
        "resume_skeleton",
        "resumed_ns",
        "run_ns",
        "started_ns",
        "suspended_ns",
        "switches",
        "task_id",
        "task_ref",
        "thrown_at",
        "value",
        "wait_ns",
    )

    def __init__(
        self, frame: FrameType, coro: object, task: object, task_id: int, now: int
    ) -> None:
        # The frame is held (not the coroutine or the task, which asyncio itself holds only
        # weakly): while it is, its id cannot be reused, so a lookup by id needs no check.
        self.frame: FrameType | None = frame
        self.coro_ref = weakref.ref(coro)
        self.task_ref = weakref.ref(task)
        self.task_id = task_id
        self.resumed_ns = now  # the task's first step starts now
        self.suspended_ns = -1
        self.frames: tuple[FrameRecord, ...] = ()
        self.link: object = None  # the root's cr_await at its last suspend
        self.value: object = None  # what the task handed the loop at its last suspend
        self.resume_skeleton: Skeleton | None = None  # where the current step began
        self.resume_lasti = -1  # the same, as an offset (slow mode)
        self.started_ns = now
        self.switches = 0
        self.run_ns = 0
        self.wait_ns = 0
        self.thrown_at: tuple[FrameRecord, ...] = ()  # chain when an exception was thrown in


class _Roots:
    """Task roots by ``id()`` of their frame.

    Each entry holds its frame, so the id stays unique while the entry exists.  Entries are
    removed when their task ends (a done callback) and, for tasks that vanish without
    ending, swept whenever the table has doubled since the last sweep, so memory follows
    the number of live tasks.
    """

    __slots__ = ("_sweep_at", "by_frame", "ids")

    def __init__(self) -> None:
        self.by_frame: dict[int, _Root] = {}
        self.ids = itertools.count(1)
        self._sweep_at = 1024

    def add(self, frame: FrameType, coro: object, task: object, now: int) -> _Root:
        root = _Root(frame, coro, task, next(self.ids), now)
        table = self.by_frame
        table[id(frame)] = root
        if len(table) >= self._sweep_at:
            for key, old in list(table.items()):
                coro_alive: Any = old.coro_ref()
                if coro_alive is None or coro_alive.cr_frame is None:
                    table.pop(key, None)
                    old.frame = None
            self._sweep_at = max(1024, 2 * len(table))
        return root

    def remove(self, root: _Root) -> None:
        """Forget a task (it has ended)."""
        frame = root.frame
        if frame is not None and self.by_frame.get(id(frame)) is root:
            del self.by_frame[id(frame)]
        root.frame = None

    def __len__(self) -> int:
        return len(self.by_frame)


class Monitor:
    """Owns one ``sys.monitoring`` tool id and the switch callbacks."""

    def __init__(
        self,
        emit: Emit,
        chain: ChainCapture,
        options: CaptureOptions | None = None,
        *,
        max_errors: int = 10,
        on_disabled: Callable[[str], None] | None = None,
    ) -> None:
        self._emit = emit
        self._chain = chain
        self.options = options or CaptureOptions()
        self._max_errors = max_errors
        self._on_disabled = on_disabled
        self._lock = threading.Lock()
        self.tool_id: int | None = None
        self.errors = 0
        self.first_error: BaseException | None = None
        self.roots = _Roots()
        self._root_codes: dict[int, CodeType] = {}
        self._seq = itertools.count()
        self._set_emit: Callable[[Emit], None] | None = None
        self._set_seq: Callable[[Callable[[], int]], None] | None = None
        # Called on the loop's thread when a task's root starts (not per switch).
        self.on_task_start: Callable[[Any, Any, _Root], None] | None = None

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

    def emit_event(
        self, event: str, level: str, fields: dict[str, Any], thread_id: int | None = None
    ) -> None:
        """Send a record other than a switch (its ``fields`` must be JSON-ready)."""
        record: EventRecord = (
            EVENT,
            next(self._seq),
            _clock(),
            _get_ident() if thread_id is None else thread_id,
            event,
            level,
            fields,
        )
        self._emit(record)

    def root_of_task(self, task: Any) -> _Root | None:
        """The monitor's state for a live task, if it was seen starting."""
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        if frame is None:
            return None
        root = self.roots.by_frame.get(id(frame))
        if root is None or root.frame is not frame:
            return None
        return root

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
            callbacks = self._callbacks(tool_id)
            for event, callback in callbacks.items():
                _mon.register_callback(tool_id, event, callback)
            _mon.set_events(tool_id, _GLOBAL_EVENTS)
            return True

    def stop(self) -> None:
        """Turn every event off and free the tool id; safe to call twice."""
        with self._lock:
            tool_id = self.tool_id
            if tool_id is None:
                return
            self.tool_id = None
            codes = list(self._root_codes.values())
            self._root_codes.clear()
            _release(tool_id, codes)

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock and record numbers; tasks keep their state."""
        self._lock = threading.Lock()
        self._seq = itertools.count()
        if self._set_seq is not None:
            self._set_seq(self._seq.__next__)

    def adopt(self, tasks: Iterable[object]) -> int:
        """Treat already-running tasks as if coroscope had seen them start.

        Tasks suspended before coroscope was installed never fire ``PY_START`` again; call
        this (from their loop's thread) to capture them from their next switch on.
        """
        adopted = 0
        now = _clock()
        for task in tasks:
            coro: Any = task.get_coro()  # type: ignore[attr-defined]
            frame = getattr(coro, "cr_frame", None)
            if type(coro) is not _CoroutineType or frame is None:
                continue
            known = self.roots.by_frame.get(id(frame))
            if known is not None and known.frame is frame:
                continue  # seen starting after all
            if self._root_code(frame.f_code, frame):
                root = self.roots.add(frame, coro, task, now)
                root.resumed_ns = -1
                adopted += 1
                if self.on_task_start is not None:
                    self.on_task_start(task.get_loop(), task, root)  # type: ignore[attr-defined]
        return adopted

    def _root_code(self, code: CodeType, frame: FrameType) -> bool:
        """Make ``code`` a root code (local switch events on); ``False`` if left out."""
        key = id(code)
        if key in self._root_codes:
            return True
        if not self._chain.allows(code, frame):
            return False
        tool_id = self.tool_id
        if tool_id is None:
            return False
        self._root_codes[key] = code
        _mon.set_local_events(tool_id, code, _ROOT_EVENTS)
        return True

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

    def _callbacks(self, tool_id: int) -> dict[int, Callable[..., object]]:
        """Build the callbacks as closures over everything they use."""
        emit = self._emit
        chain = self._chain
        capture = chain.capture
        capture_resumed = chain.capture_resumed
        skeleton_at = chain.skeleton_at
        frame_record = chain.frame_record
        roots = self.roots
        table = roots.by_frame
        add_root = roots.add
        root_code = self._root_code
        next_seq = self._seq.__next__
        error = self._error
        options = self.options
        log_all = options.mode == "all"
        slow_step = options.slow_step_ns
        slow_await = options.slow_await_ns
        sample = options.sample
        rand = random.random
        on_task_start = self.on_task_start
        allows = chain.allows

        def on_start(code: CodeType, offset: int) -> object:
            if not code.co_flags & CO_COROUTINE:
                return _DISABLE
            try:
                frame = _getframe(1)
                back = frame.f_back
                if back is not None and back.f_code.co_flags & _AWAITER_FLAGS:
                    # Started by another coroutine.  If that one is at a SEND (it awaits
                    # us), this is not a task's first step; otherwise it is creating an
                    # eager task (asyncio.Task(..., eager_start=True)), checked below.
                    # (The caller's f_lasti is the SEND on 3.13, its cache entry on 3.12.)
                    ops = back.f_code.co_code
                    lasti = back.f_lasti
                    if ops[lasti] == _SEND or ops[lasti - 2] == _SEND:
                        # Code of a left-out module can never be a captured root: stop
                        # asking for it.
                        return None if allows(code, frame) else _DISABLE
                loop = _get_running_loop()
                if loop is None:
                    return None
                task = _current_task(loop)
                if task is None:
                    return None
                coro = task.get_coro()
                if type(coro) is not _CoroutineType or coro.cr_frame is not frame:
                    return None
                if sample < 1.0 and rand() >= sample:
                    return None
                if root_code(code, frame):
                    root = add_root(frame, coro, task, _clock())
                    if on_task_start is not None:
                        on_task_start(loop, task, root)
            except Exception as exc:
                error(exc)
            return None

        def switch_record(
            kind: int,
            root: _Root,
            now: int,
            frames: tuple[FrameRecord, ...],
            awaiting: tuple[str, str] | None,
            duration: int,
            exception: str | None = None,
            level: str = "info",
            resumed_at: Skeleton | None = None,
        ) -> SwitchRecord:
            task: Any = root.task_ref()
            return (
                kind,
                next_seq(),
                now,
                _get_ident(),
                root.task_id,
                task.get_name() if task is not None else "",
                frames,
                awaiting,
                duration,
                exception,
                level,
                resumed_at,
            )

        def on_yield(code: CodeType, offset: int, value: object) -> object:
            try:
                root = table.get(id(_getframe(1)))
                if root is None:
                    return None
                now = _clock()
                step = now - root.resumed_ns if root.resumed_ns >= 0 else -1
                root.suspended_ns = now
                root.switches += 1
                root.run_ns += step
                if step >= slow_step:
                    frames = capture(root.coro_ref(), value)
                    root.frames = frames
                    if log_all:
                        resumed_at = root.resume_skeleton
                    else:
                        resumed_at = skeleton_at(code, _getframe(1), root.resume_lasti)
                    awaiting = (type(value).__qualname__, describe_awaitable(value))
                    emit(
                        switch_record(
                            SUSPEND, root, now, frames, awaiting, step, None, "warning", resumed_at
                        )
                    )
                elif log_all:
                    frames = capture(root.coro_ref(), value)
                    root.frames = frames
                    awaiting = (type(value).__qualname__, describe_awaitable(value))
                    emit(switch_record(SUSPEND, root, now, frames, awaiting, step))
                else:
                    # Not logged now; keep what a slow wait would need at the resume.
                    coro: Any = root.coro_ref()
                    root.link = coro.cr_await
                    root.value = value
            except Exception as exc:
                error(exc)
            return None

        def logged_resume(
            root: _Root, frame: FrameType, now: int, waited: int, exception: str | None
        ) -> None:
            if log_all:
                frames = root.frames
                root.frames = ()
                if exception is not None:
                    root.thrown_at = frames
                if frames:
                    root.resume_skeleton = frames[0][0]
                else:  # a task adopted while suspended: only its root frame is known
                    record = frame_record(frame, None, None)
                    frames = (record,) if record is not None else ()
                    root.resume_skeleton = record[0] if record is not None else None
                emit(switch_record(RESUME, root, now, frames, None, waited, exception))
                return
            root.resume_lasti = frame.f_lasti
            if waited >= slow_await or exception is not None:
                link, value = root.link, root.value
                root.link = root.value = None
                frames = capture_resumed(frame, link, value)
                if exception is not None:
                    root.thrown_at = frames
                awaiting = (type(value).__qualname__, describe_awaitable(value))
                emit(switch_record(RESUME, root, now, frames, awaiting, waited, exception))
            else:
                root.link = root.value = None

        def on_resume(code: CodeType, offset: int) -> object:
            # The most frequent callback: the lookup and the quiet path of slow mode are
            # written out here rather than in a helper function.
            try:
                frame = _getframe(1)
                root = table.get(id(frame))
                if root is None:
                    return None
                now = _clock()
                # A resume while the task is running means its suspend was not seen (after
                # an exception handled below the root): the wait is unknown.
                suspended = root.suspended_ns
                waited = now - suspended if suspended > root.resumed_ns else -1
                root.resumed_ns = now
                if waited > 0:
                    root.wait_ns += waited
                if log_all or waited >= slow_await:
                    logged_resume(root, frame, now, waited, None)
                else:
                    root.resume_lasti = frame.f_lasti
                    root.link = root.value = None
            except Exception as exc:
                error(exc)
            return None

        def on_throw(code: CodeType, offset: int, exc: BaseException) -> object:
            # PY_THROW cannot be disabled per location, and it fires on the frame that
            # receives the exception: the root if the exception reaches it, but only an
            # inner frame when that one handles it (asyncio.timeout in a nested coroutine):
            # the root is then not resumed at all.  So look the task up from any frame.
            if not code.co_flags & _AWAITER_FLAGS:
                return None
            try:
                root = table.get(id(_getframe(1)))
                if root is None:
                    loop = _get_running_loop()
                    if loop is None:
                        return None
                    task = _current_task(loop)
                    if task is None:
                        return None
                    root = table.get(id(getattr(task.get_coro(), "cr_frame", None)))
                    if root is None:
                        return None
                if root.suspended_ns < root.resumed_ns:
                    return None  # this step's resume is already recorded
                frame = root.frame
                if frame is None:
                    return None
                now = _clock()
                waited = now - root.suspended_ns if root.suspended_ns >= 0 else -1
                root.resumed_ns = now
                root.wait_ns += waited
                logged_resume(root, frame, now, waited, type(exc).__qualname__)
            except Exception as err:
                error(err)
            return None

        def set_emit(new: Emit) -> None:
            nonlocal emit
            emit = new

        def set_seq(new: Callable[[], int]) -> None:
            nonlocal next_seq
            next_seq = new

        self._set_emit = set_emit
        self._set_seq = set_seq
        return {
            _EVENTS.PY_START: on_start,
            _EVENTS.PY_YIELD: on_yield,
            _EVENTS.PY_RESUME: on_resume,
            _EVENTS.PY_THROW: on_throw,
        }


_ALL_EVENTS = (_EVENTS.PY_START, _EVENTS.PY_YIELD, _EVENTS.PY_RESUME, _EVENTS.PY_THROW)


def _release(tool_id: int, codes: Iterable[CodeType]) -> None:
    """Leave nothing behind: events off (global and local), callbacks unregistered,
    disabled locations re-enabled, id freed.

    On 3.12/3.13 ``free_tool_id`` alone does not clear events (CPython gh-111963).
    """
    _mon.set_events(tool_id, 0)
    for code in codes:
        _mon.set_local_events(tool_id, code, 0)
    for event in _ALL_EVENTS:
        _mon.register_callback(tool_id, event, None)
    # Locations switched off with DISABLE stay off for this tool id after it is freed: the
    # next tool on the id (or coroscope installed again, deciding differently) would miss
    # their events.  Re-enable them; other tools' disabled locations come back too, once,
    # and are switched off again at their next event.
    _mon.restart_events()
    _mon.free_tool_id(tool_id)
