"""The ``sys.monitoring`` callbacks, as methods over plain per-task state.

A task switch fires ``PY_YIELD`` (or ``PY_RESUME``) once per frame of the task's await
chain, but only the task's *root* coroutine matters: it is the last frame to yield and the
first to resume, and at its ``PY_YIELD`` the whole chain is suspended and can be walked
from it.  So coroscope listens to as few events as it can (see :mod:`._tool`):

* ``PY_START`` (global) discovers task roots.  Non-coroutine code is switched off at once
  with ``DISABLE``; a coroutine awaited by another coroutine (its caller stands at a
  ``SEND``: the common case) is recognised from its caller's frame in a few operations, and
  switched off if its module is left out; any other start is checked against
  ``asyncio.current_task()``.  When a root is found, its code object gets the local root
  events and the task gets a :class:`~._state.TaskState`.
* ``PY_YIELD``/``PY_RESUME`` (local, on root code only) look the frame up in the task
  table (one dict lookup), take the time and, if the switch is to be logged, capture the
  chain and hand one compact record to ``emit``.
* ``PY_THROW`` (global: it cannot be local) turns an exception thrown into a task
  (cancellation, timeouts) into a ``resume`` record, whichever frame of the chain receives it.
* ``PY_RETURN`` (local) and ``PY_UNWIND`` (global) close a task's final step when its root
  returns or raises, so that a slow final step is seen like any other.

Every decision that does not depend on the switch (mode, thresholds, sampling rate,
include/exclude) is made before monitoring starts, in :class:`CaptureOptions`.

Every callback catches every ``Exception`` (one raised here would surface in the user's
coroutine); after ``max_errors`` internal errors the tool switches itself off and says so
once.  This is the readable reference; the native core (:mod:`._native`) runs the common
paths in C and calls these methods for the rest.
"""

from __future__ import annotations

import dis
import itertools
import sys
import threading
import time
import warnings
from _random import Random
from asyncio import CancelledError
from collections.abc import Callable, Iterable
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE
from types import CodeType, FrameType, ModuleType
from typing import Any

from .. import _schema as S
from .._record import END, EVENT, RESUME, SEQ, SUSPEND, EventRecord, FrameRecord, Place, Record
from .._schema import INFO, WARNING
from ._awaitables import describe_awaitable
from ._chain import ChainCapture, local_value
from ._context import ContextReader
from ._endings import done_fields
from ._native import native_callbacks, native_switches
from ._options import CaptureOptions
from ._state import TaskState, TaskTable, running_task, state_class, task_rooted_at
from ._tool import EVENTS, MonitoringTool
from ._waits import overran

__all__ = ["Capture", "Emit"]

_DISABLE = sys.monitoring.DISABLE
_AWAITER_FLAGS = CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
_SEND = dis.opmap["SEND"]

_getframe = sys._getframe
_clock = time.perf_counter_ns
_get_ident = threading.get_ident

Emit = Callable[[Record], object]


def _discard(record: Record) -> None:
    """The emit of a capture nothing listens to yet."""


class Capture:
    """The callbacks and what they use: options, the task table, the chain capture."""

    def __init__(
        self,
        chain: ChainCapture,
        options: CaptureOptions,
        *,
        max_errors: int = 10,
        on_disabled: Callable[[str], None] | None = None,
        core: ModuleType | None = None,
        tasks: TaskTable | None = None,
    ) -> None:
        self.chain = chain
        self.places = chain.places
        renderer = chain.renderer
        self.context = ContextReader(renderer.render_locals if renderer is not None else None)
        self.tool = MonitoringTool()
        if tasks is None:
            tasks = TaskTable(state_class(core.SwitchState) if core is not None else TaskState)
        self.tasks = tasks
        self.by_frame = self.tasks.by_frame
        self.emit: Emit = _discard
        self.next_seq: Callable[[], int] = itertools.count().__next__
        self.log_all = options.log_all
        self.slow_step_ns = options.slow_step_ns
        self.slow_await_ns = options.slow_await_ns
        self.sample = options.sample
        self.task_done = options.task_done
        self._random = Random().random
        self.max_errors = max_errors
        self.on_disabled = on_disabled
        self.errors = 0
        self.first_error: BaseException | None = None
        self.switched_off = False  # by too many internal errors
        #: Called with a slow wait's ``resume`` record after it is emitted (recorder mode).
        self.on_slow_wait: Callable[[Record], object] | None = None
        #: Called with the loop, on its thread, when a task's root starts (not per switch).
        self.on_loop: Callable[[Any], None] | None = None
        # Python's "never awaited" hook: its code object, and who hears of each coroutine.
        self._unawaited_code: CodeType | None = None
        self._on_unawaited: Callable[[object], None] | None = None
        #: The native core's callbacks (``None``: these methods are the callbacks).
        self.native: Any = native_switches(core, self) if core is not None else None

    # -- life cycle -----------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the callbacks are registered and events are on."""
        return self.tool.active

    def callbacks(self) -> dict[int, Callable[..., object]]:
        """The callback of each event."""
        if self.native is not None:  # the same decisions, the common paths in C
            return native_callbacks(self.native, self)
        return {
            EVENTS.PY_START: self.on_start,
            EVENTS.PY_YIELD: self.on_yield,
            EVENTS.PY_RESUME: self.on_resume,
            EVENTS.PY_THROW: self.on_throw,
            EVENTS.PY_RETURN: self.on_return,
            EVENTS.PY_UNWIND: self.on_unwind,
        }

    def start(self) -> bool:
        """Take a tool id and turn the events on; ``False`` if every id is taken.

        Started again after a stop, it turns the root events back on for the tasks it
        knows.
        """
        if not self.tool.start(self.callbacks()):
            return False
        self.switched_off = False
        for state in list(self.by_frame.values()):
            frame = state.frame
            if frame is not None:
                self.tool.watch(frame.f_code)
        return True

    def stop(self) -> None:
        """Turn every event off and free the tool id; safe to call twice."""
        self.tool.stop()

    def set_emit(self, emit: Emit) -> None:
        """Send records to ``emit`` from now on."""
        self.emit = emit

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock and record numbers; tasks keep their state."""
        self.tool.reset_after_fork()
        self.next_seq = itertools.count().__next__

    def emit_event(
        self, event: str, level: str, fields: dict[str, Any], thread_id: int | None = None
    ) -> None:
        """Send a record other than a switch (its ``fields`` must be JSON-ready)."""
        self.emit(self.event_record(event, level, fields, thread_id))

    def event_record(
        self, event: str, level: str, fields: dict[str, Any], thread_id: int | None = None
    ) -> EventRecord:
        """A record other than a switch, numbered in this capture's sequence."""
        return (
            EVENT,
            self.next_seq(),
            _clock(),
            _get_ident() if thread_id is None else thread_id,
            event,
            level,
            fields,
        )

    def adopt(self, tasks: Iterable[object]) -> int:
        """Treat already-running tasks as if coroscope had seen them start.

        Tasks suspended before coroscope was installed never fire ``PY_START`` again; call
        this (from their loop's thread) to capture them from their next switch on.
        """
        return self.tasks.adopt(tasks, self._watch_root, self.on_loop)

    def watch_unawaited(self, on_unawaited: Callable[[object], None]) -> None:
        """Call ``on_unawaited(coro)`` for each coroutine Python warns was never awaited.

        The interpreter's hook (``warnings._warn_unawaited_coroutine``) is left as it is:
        the ``PY_START`` of its code object (never disabled) reads the coroutine from its
        frame, so the warning is exactly what it would be without coroscope.
        """
        hook = getattr(warnings, "_warn_unawaited_coroutine", None)
        code = getattr(hook, "__code__", None)
        if type(code) is CodeType:
            self._unawaited_code = code
            self._on_unawaited = on_unawaited
            if self.native is not None:
                self.native.set_unawaited_code(code)

    def _unawaited(self, frame: FrameType) -> None:
        on_unawaited = self._on_unawaited
        if on_unawaited is not None:
            on_unawaited(local_value(frame, "coro"))

    def _watch_root(self, code: CodeType, frame: FrameType) -> bool:
        """Make ``code`` a root code (local events on); ``False`` if its module is left out."""
        if self.tool.watches(code):
            return True
        return self.places.allows(code, frame) and self.tool.watch(code)

    def _error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = exc
        if self.errors >= self.max_errors and self.tool.active:
            self.stop()
            self.switched_off = True
            first = self.first_error
            if self.on_disabled is not None:
                self.on_disabled(
                    f"coroscope: switched off after {self.errors} internal errors "
                    f"(first: {type(first).__name__}: {first}); the program continues unmonitored"
                )

    # -- records --------------------------------------------------------------------------

    def _switch(
        self,
        kind: int,
        state: TaskState,
        now: int,
        frames: tuple[FrameRecord, ...],
        awaiting: tuple[str, str] | None,
        duration: int,
        exception: str | None = None,
        level: str = INFO,
        resumed_at: Place | None = None,
        suspend_seq: int = -1,
    ) -> Record:
        task = state.task()
        return (
            kind,
            self.next_seq(),
            now,
            _get_ident(),
            state.task_id,
            task.get_name() if task is not None else "",
            frames,
            awaiting,
            duration,
            exception,
            level,
            resumed_at,
            suspend_seq,
            self.context.fields(task) if task is not None else None,
        )

    def _root_only(self, frame: FrameType) -> tuple[FrameRecord, ...]:
        record = self.chain.frame(frame)
        return (record,) if record is not None else ()

    # -- the callbacks --------------------------------------------------------------------

    def on_start(self, code: CodeType, offset: int) -> object:
        """``PY_START``: is this the first step of a task (or Python's "never awaited")?"""
        if not code.co_flags & CO_COROUTINE:
            if code is self._unawaited_code:
                try:
                    self._unawaited(_getframe(1))
                except Exception as exc:
                    self._error(exc)
                return None  # (not disabled: the next coroutine never awaited comes here)
            return _DISABLE
        try:
            frame = _getframe(1)
            back = frame.f_back
            if back is not None and back.f_code.co_flags & _AWAITER_FLAGS:
                # Started by another coroutine.  If that one is at a SEND (it awaits us),
                # this is not a task's first step; otherwise it is creating an eager task
                # (asyncio.Task(..., eager_start=True)), checked below.  (The caller's
                # f_lasti is the SEND on 3.13, its cache entry on 3.12.)
                ops = back.f_code.co_code
                lasti = back.f_lasti
                if ops[lasti] == _SEND or ops[lasti - 2] == _SEND:
                    # Code of a left-out module is never a captured root: stop asking.
                    return None if self.places.allows(code, frame) else _DISABLE
            found = task_rooted_at(frame)
            if found is None:
                return None
            loop, task, coro = found
            if self.sample < 1.0 and self._random() >= self.sample:
                return None
            if self._watch_root(code, frame):
                self.tasks.add(frame, coro, task, _clock())
                if self.on_loop is not None:
                    self.on_loop(loop)
        except Exception as exc:
            self._error(exc)
        return None

    def on_yield(self, code: CodeType, offset: int, value: object) -> object:
        """``PY_YIELD`` of a root: the task suspends, its step ends."""
        try:
            frame = _getframe(1)
            state = self.by_frame.get(frame)
            if state is None:
                return None
            now = _clock()
            step = state.end_step(now)
            state.value = value
            if step >= self.slow_step_ns or self.log_all:
                self._yielded(code, frame, state, value, now, step)
            else:
                # Not logged now: keep what a slow wait would need at the resume.
                state.suspend_seq = -1
                state.link = state.coro().cr_await
        except Exception as exc:
            self._error(exc)
        return None

    def _yielded(
        self, code: CodeType, frame: FrameType, state: TaskState, value: object, now: int, step: int
    ) -> None:
        """A suspend to be logged: its step was slow, or every switch is logged.  (Shared
        by both implementations: the native core calls it too.)"""
        coro = state.coro()
        frames = state.frames = self.chain.suspended(coro, value)
        awaiting = (type(value).__qualname__, describe_awaitable(value))
        if step >= self.slow_step_ns:
            resumed_at = self.places.at(code, frame, state.resumed_lasti)
            record = self._switch(
                SUSPEND, state, now, frames, awaiting, step, None, WARNING, resumed_at
            )
            state.notable = True
        else:
            record = self._switch(SUSPEND, state, now, frames, awaiting, step)
        state.suspend_seq = record[SEQ]
        state.link = coro.cr_await  # for the timer rule at the resume
        self.emit(record)

    def on_resume(self, code: CodeType, offset: int) -> object:
        """``PY_RESUME`` of a root: the task resumes, its wait ends."""
        try:
            frame = _getframe(1)
            state = self.by_frame.get(frame)
            if state is None:
                return None
            now = _clock()
            waited = state.end_wait(now)
            state.resumed_lasti = frame.f_lasti
            if state.suspend_seq >= 0 or self.log_all or waited >= self.slow_await_ns:
                self._resumed(frame, state, now, waited)
            else:  # (its suspend was not written, so it kept no frames)
                state.link = state.value = None
        except Exception as exc:
            self._error(exc)
        return None

    def _resumed(self, frame: FrameType, state: TaskState, now: int, waited: int) -> None:
        """A resume that may be logged: its suspend was written, every switch is logged, or
        its wait crossed the slow threshold.  (Shared by both implementations.)"""
        if state.suspend_seq >= 0:  # its suspend was written: it names the chain
            slow = overran(waited, state.link, self.slow_await_ns)
            if self.log_all or slow:
                record = self._switch(
                    RESUME, state, now, (), None, waited, suspend_seq=state.suspend_seq
                )
                self.emit(record)
                if slow and self.on_slow_wait is not None:
                    self.on_slow_wait(record)
        elif self.log_all:  # a task adopted while suspended: its root frame only
            self.emit(self._switch(RESUME, state, now, self._root_only(frame), None, waited))
        elif overran(waited, state.link, self.slow_await_ns):
            value = state.value
            frames = self.chain.resumed(frame, state.link, value)
            awaiting = (type(value).__qualname__, describe_awaitable(value))
            self.emit(self._switch(RESUME, state, now, frames, awaiting, waited))
        state.frames = ()
        state.suspend_seq = -1
        state.link = state.value = None

    def on_throw(self, code: CodeType, offset: int, exc: BaseException) -> object:
        """``PY_THROW``: an exception is thrown into a frame, maybe into a suspended task.

        It fires on the frame that receives the exception, innermost first: the root if
        the exception reaches it, but only an inner frame when that one handles it
        (``asyncio.timeout`` in a nested coroutine), and the root is then not resumed at
        all.  So the task is looked up from any frame, and the first event resumes it.
        """
        if not code.co_flags & _AWAITER_FLAGS:
            return None
        try:
            frame = _getframe(1)
            state = self.by_frame.get(frame)
            if state is None:
                running = running_task()
                state = self.tasks.of_task(running[1]) if running is not None else None
                if state is None:
                    return None
            root_frame = state.frame
            if state.running or root_frame is None:
                return None  # this step's resume is already recorded
            now = _clock()
            waited = state.end_wait(now)
            state.resumed_lasti = root_frame.f_lasti
            value = state.value
            exception = type(exc).__qualname__
            # In slow mode a thrown-in exception (a cancellation, a timeout) is ordinary
            # control flow: logged only when its wait was slow.
            slow = self.log_all or overran(waited, state.link, self.slow_await_ns)
            if slow and not self.log_all:
                state.notable = True
            if state.suspend_seq >= 0:  # its suspend was written: it names the chain
                state.thrown_at = state.frames
                if slow:
                    self.emit(
                        self._switch(
                            RESUME,
                            state,
                            now,
                            (),
                            None,
                            waited,
                            exception,
                            suspend_seq=state.suspend_seq,
                        )
                    )
            elif slow:
                frames = state.thrown_at = self.chain.thrown(frame, root_frame, value)
                awaiting = (type(value).__qualname__, describe_awaitable(value))
                self.emit(self._switch(RESUME, state, now, frames, awaiting, waited, exception))
            elif state.notable:  # its task.done will be written: keep where it was
                state.thrown_at = self.chain.thrown(frame, root_frame, value)
            state.frames = ()
            state.suspend_seq = -1
            state.link = state.value = None
        except Exception as err:
            self._error(err)
        return None

    def on_return(self, code: CodeType, offset: int, retval: object) -> object:
        """``PY_RETURN`` of a root code: a task ends normally (or the code returned inline)."""
        try:
            frame = _getframe(1)
            state = self.by_frame.get(frame)
            if state is not None:
                self._end(state, code, frame, retval, None)
        except Exception as exc:
            self._error(exc)
        return None

    def on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> object:
        """``PY_UNWIND``: a frame exits by an exception; a task ends if it is a root."""
        if not code.co_flags & CO_COROUTINE:
            return None  # (PY_UNWIND cannot be disabled)
        try:
            frame = _getframe(1)
            state = self.by_frame.get(frame)
            if state is not None:
                self._end(state, code, frame, None, exc)
        except Exception as err:
            self._error(err)
        return None

    def _end(
        self,
        state: TaskState,
        code: CodeType,
        frame: FrameType,
        result: object,
        exc: BaseException | None,
    ) -> None:
        """A task's root returned (``result``) or raised (``exc``): close its final step
        like a suspend closes the others, write its ``task.done`` and forget it."""
        self.tasks.remove(state)
        now = _clock()
        exception = type(exc).__qualname__ if exc is not None else None
        if state.running:
            step = state.end(now)
            if step >= self.slow_step_ns:
                state.notable = True
                resumed_at = self.places.at(code, frame, state.resumed_lasti)
                frames = self._root_only(frame)
                self.emit(
                    self._switch(
                        END, state, now, frames, None, step, exception, WARNING, resumed_at
                    )
                )
        if not self.task_done or (exc is not None and issubclass(type(exc), GeneratorExit)):
            return
        # In slow mode only a task worth a look (decided before its record is built): it
        # failed, ran a slow step, or was cancelled at a slow wait.
        failed = exc is not None and not issubclass(type(exc), CancelledError)
        if self.log_all or state.notable or failed:
            self.emit_event(S.TASK_DONE, *done_fields(state, now, result, exc, self.context))
