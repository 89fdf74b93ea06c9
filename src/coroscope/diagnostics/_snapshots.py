"""Looking at every task of a loop at once: stuck-task reports and snapshots.

These run *on the loop's own thread*, scheduled between tasks, so every task but the one
calling (if any) is suspended and its await chain can be read safely.  They are triggered
by the watchdog's timer (stuck tasks), by ``coroscope.snapshot()``, or by a signal.

They follow the capture path's rules: awaited objects are recognised by their exact type
(no ``isinstance`` or ``getattr`` that a user class could answer with its own code), and
locals are read as the capture reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import re
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

from .. import _schema as S
from .._record import Frames
from .._signals import SignalHook
from ..capture import Capture, describe_awaitable, is_task, local_value
from ..capture._awaitables import is_asyncio_future_type
from ..capture._waits import suspended_coroutines, wait_kind
from ._locks import LockGraph, describe_lock, held_locks, lock_waited_for
from ._loops import LoopRegistry

__all__ = ["Inspector"]

EmitEvent = Callable[..., None]
MAX_LINKS = 64

_TASK_GROUP_AEXIT = asyncio.TaskGroup.__aexit__.__code__
_WAIT_CODE = asyncio.tasks._wait.__code__  # type: ignore[attr-defined]


_NEVER = 2**62
SCAN_SLICE = 500  # tasks looked at per callback of a stuck-task scan


class _Wait:
    """One wait of a task, as the stuck-task scans know it."""

    __slots__ = ("held", "key", "next_report_ns", "since_ns")

    def __init__(self, key: int, since_ns: int, held: object) -> None:
        self.key = key  # the suspend's time (a followed task), or the awaited future's id
        self.held = held  # that future, held so that its id is not reused meanwhile
        self.since_ns = since_ns
        self.next_report_ns = 0


def _matcher(globs: tuple[str, ...]) -> Callable[[str], object] | None:
    if not globs:
        return None
    return re.compile("|".join(fnmatch.translate(g) for g in globs)).match


class Inspector:
    """Builds ``task.stuck`` and ``snapshot`` records for a loop's tasks."""

    def __init__(
        self,
        capture: Capture,
        loops: LoopRegistry,
        emit_event: EmitEvent,
        *,
        stuck_s: float,
        stuck_ignore: tuple[str, ...] = (),
    ) -> None:
        self._capture = capture
        self._chain = capture.chain
        self._loops = loops
        self._emit_event = emit_event
        self._stuck_ns = int(stuck_s * 1e9)
        self._waits: weakref.WeakKeyDictionary[Any, _Wait] = weakref.WeakKeyDictionary()
        self._deadlocks: set[frozenset[int]] = set()  # cycles reported and still standing
        self._ignore = _matcher(stuck_ignore)
        self._other_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._snapshots = itertools.count(1)
        self._signal = SignalHook(self._on_signal)
        self.errors = 0

    # -- task identity ------------------------------------------------------------------

    def task_id(self, task: Any) -> int:
        """coroscope's id for a task, also for tasks it did not capture (excluded, sampled out)."""
        state = None if task.done() else self._capture.tasks.of_task(task)
        if state is not None:
            return int(state.task_id)
        known = self._other_ids.get(task)
        if known is None:
            known = next(self._capture.tasks.ids)
            self._other_ids[task] = known
        return known

    def task_of(self, task: Any) -> dict[str, Any]:
        """A task as ``{"name", "id"}``."""
        return {S.NAME: task.get_name(), S.ID: self.task_id(task)}

    # -- stuck tasks --------------------------------------------------------------------

    def report_stuck(self, loop: asyncio.AbstractEventLoop) -> None:
        """Log every task of ``loop`` waiting for at least ``COROSCOPE_STUCK_S``: once when
        it reaches the threshold, again each time its wait has doubled.

        Timer waits and idle waits (see :mod:`coroscope.capture._waits`) are never stuck, nor
        await sites matching ``COROSCOPE_STUCK_IGNORE``.  A task the capture follows is timed
        from its suspend; any other (``watch`` mode, a left-out or sampled-out task) from
        the first scan that found it waiting on the future it still waits on, so it is
        reported at most one scan late (scans run four times per threshold).

        A loop with many tasks is scanned in slices of ``SCAN_SLICE`` tasks, each a callback
        of its own, so that no scan holds the loop for long.
        """
        try:
            self._scan_slice(loop, list(asyncio.all_tasks(loop)), 0, [])
        except Exception:
            self.errors += 1

    def _scan_slice(
        self, loop: asyncio.AbstractEventLoop, tasks: list[Any], start: int, lock_waiters: list[Any]
    ) -> None:
        """Scan ``tasks[start:start + SCAN_SLICE]``, then schedule the next slice, or look
        for deadlocks among the tasks found blocked acquiring a lock."""
        try:
            now = time.perf_counter_ns()
            current = asyncio.current_task(loop)
            waits = self._waits
            end = min(start + SCAN_SLICE, len(tasks))
            for task in tasks[start:end]:
                if task is current or task.done():
                    continue
                waiter = getattr(task, "_fut_waiter", None)
                wait = self._wait_of(task, waiter, now) if waiter is not None else None
                if wait is None:
                    waits.pop(task, None)  # runnable, or running
                    continue
                coro = task.get_coro()
                if lock_waited_for(coro, waiter) is not None:
                    lock_waiters.append(task)
                suspended_ns = now - wait.since_ns
                if suspended_ns < self._stuck_ns or suspended_ns < wait.next_report_ns:
                    continue
                if wait_kind(coro, waiter) is not None or self._ignored(coro):
                    wait.next_report_ns = _NEVER
                    continue
                wait.next_report_ns = 2 * suspended_ns
                fields = self._task_fields(task)
                fields[S.SUSPENDED_S] = round(suspended_ns / 1e9, 3)
                self._emit_event(S.TASK_STUCK, S.WARNING, fields)
            if end < len(tasks):
                loop.call_soon(self._scan_slice, loop, tasks, end, lock_waiters)
                return
            self._report_deadlocks(lock_waiters, time.perf_counter_ns(), None)
        except Exception:
            self.errors += 1

    # -- deadlocks ----------------------------------------------------------------------

    def _report_deadlocks(self, waiting: list[Any], now: int, snapshot_id: int | None) -> None:
        """One ``deadlock`` record per cycle among ``waiting`` (tasks blocked acquiring an
        asyncio lock, each waiting for a lock the next one holds); the stuck-task scans report
        a cycle once, a snapshot every cycle it finds.  Only tasks that wait can be on a
        cycle, so only their holdings are read."""
        waiting = [t for t in waiting if not t.done()]
        if not waiting:
            self._deadlocks.clear()
            return
        graph = LockGraph()
        for task in waiting:
            graph.add(task, task.get_coro(), getattr(task, "_fut_waiter", None))
        standing: set[frozenset[int]] = set()
        for cycle in graph.cycles():
            key = frozenset(id(t) for t in cycle)
            standing.add(key)
            if snapshot_id is None and key in self._deadlocks:
                continue
            members = []
            waited = []
            for task in cycle:
                waiting_s = self._waiting_s(task, now)
                if waiting_s is not None:
                    waited.append(waiting_s)
                fields = self._task_fields(task)
                fields.pop(S.AWAITING, None)
                fields[S.WAITING_S] = waiting_s
                members.append(fields)
            record: dict[str, Any] = {
                S.TASKS: members,
                S.LOCKS: [describe_lock(graph.waits[t]) for t in cycle],
                S.STOOD_S: min(waited) if waited else None,
            }
            if snapshot_id is not None:
                record[S.SNAPSHOT_ID] = snapshot_id
            self._emit_event(S.DEADLOCK, S.WARNING, record)
        if snapshot_id is None:
            self._deadlocks = standing

    def _waiting_s(self, task: Any, now: int) -> float | None:
        state = self._capture.tasks.of_task(task)
        if state is not None and state.suspended_ns >= 0 and not state.running:
            return round((now - state.suspended_ns) / 1e9, 3)
        wait = self._waits.get(task)
        return round((now - wait.since_ns) / 1e9, 3) if wait is not None else None

    def _wait_of(self, task: Any, waiter: object, now: int) -> _Wait | None:
        """The current wait of a suspended ``task``; ``None`` if it is running."""
        state = self._capture.tasks.of_task(task)
        if state is not None and state.suspended_ns >= 0:
            if state.running:
                return None
            key, since, held = state.suspended_ns, state.suspended_ns, None
        else:
            key, since, held = id(waiter), now, waiter
        wait = self._waits.get(task)
        if wait is None or wait.key != key:
            wait = self._waits[task] = _Wait(key, since, held)
        return wait

    def _ignored(self, coro: object) -> bool:
        """Whether a frame of the chain matches ``COROSCOPE_STUCK_IGNORE``."""
        match = self._ignore
        if match is None:
            return False
        for link in suspended_coroutines(coro):
            frame, code = link.cr_frame, link.cr_code
            module = frame.f_globals.get("__name__", "")
            if match(f"{module}.{code.co_qualname}") or match(
                f"{code.co_filename}:{frame.f_lineno}"
            ):
                return True
        return False

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> int:
        """Dump every task of every loop; returns the snapshot's id.

        The calling thread's loop (if any) is dumped at once; other loops are dumped by
        their own threads as soon as they run a callback.
        """
        snapshot_id = next(self._snapshots)
        running = asyncio.events._get_running_loop()
        if running is not None:
            self._loops.seen(running)  # (watch mode may not know it yet)
        for loop, _ in self._loops.watched():
            if loop is running:
                self.snapshot_loop(loop, snapshot_id)
            else:
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    loop.call_soon_threadsafe(self.snapshot_loop, loop, snapshot_id)
        return snapshot_id

    def snapshot_loop(self, loop: asyncio.AbstractEventLoop, snapshot_id: int) -> None:
        """One ``snapshot`` record per live task of ``loop``, then a ``snapshot.summary``."""
        try:
            current = asyncio.current_task(loop)
            by_state: dict[str, int] = {}
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                if task is current:
                    state = "running"
                    fields: dict[str, Any] = {S.TASK: self.task_of(task), S.FRAMES: []}
                else:
                    state = "cancelling" if task.cancelling() else "pending"
                    fields = self._task_fields(task)
                    idle = wait_kind(task.get_coro(), getattr(task, "_fut_waiter", None))
                    if idle is not None:
                        fields[S.IDLE] = idle
                fields[S.STATE] = state
                fields[S.SNAPSHOT_ID] = snapshot_id
                fields[S.AWAITS_TASKS] = self._awaited_task_ids(task) if task is not current else []
                by_state[state] = by_state.get(state, 0) + 1
                self._emit_event(S.SNAPSHOT, S.INFO, fields)
            self._emit_event(
                S.SNAPSHOT_SUMMARY,
                S.INFO,
                {S.SNAPSHOT_ID: snapshot_id, S.TASKS: len(tasks), S.BY_STATE: by_state},
            )
            waiting = [
                t
                for t in tasks
                if t is not current
                and lock_waited_for(t.get_coro(), getattr(t, "_fut_waiter", None)) is not None
            ]
            self._report_deadlocks(waiting, time.perf_counter_ns(), snapshot_id)
        except Exception:
            self.errors += 1

    def _task_fields(self, task: Any) -> dict[str, Any]:
        waiter = task._fut_waiter
        coro = task.get_coro()
        frames = self._chain.suspended(coro, waiter)
        fields: dict[str, Any] = {
            S.TASK: self.task_of(task),
            S.FRAMES: Frames(frames),
            S.AWAITING: {S.TYPE: type(waiter).__qualname__, S.REPR: describe_awaitable(waiter)},
        }
        fields[S.HOLDS] = [describe_lock(lock) for lock in held_locks(coro)]
        lock = lock_waited_for(coro, waiter)
        fields[S.WAITS_FOR] = describe_lock(lock) if lock is not None else None
        context = self._capture.context.fields(task)
        if context is not None:
            fields.update(context)
        return fields

    def _awaited_task_ids(self, task: Any) -> list[int]:
        """The tasks this task waits for: awaited directly, via gather, TaskGroup or wait."""
        found: list[Any] = []
        waiter = task._fut_waiter
        if is_task(waiter):
            found.append(waiter)
        elif waiter is not None and is_asyncio_future_type(type(waiter)):
            children = getattr(waiter, "_children", None)  # asyncio's own _GatheringFuture
            if type(children) is list:
                found.extend(c for c in children if is_task(c))
        obj: Any = task.get_coro()
        for _ in range(MAX_LINKS):
            if type(obj) is not types.CoroutineType or not obj.cr_suspended:
                break
            code, frame = obj.cr_code, obj.cr_frame
            if code is _TASK_GROUP_AEXIT and frame is not None:
                group = local_value(frame, "self")
                if type(group) is asyncio.TaskGroup:
                    found.extend(t for t in list(group._tasks) if is_task(t))
            elif code is _WAIT_CODE and frame is not None:
                fs = local_value(frame, "fs")
                if type(fs) in (set, frozenset, list, tuple):
                    found.extend(f for f in list(fs) if is_task(f))  # type: ignore[call-overload]
            obj = obj.cr_await
        seen: dict[int, None] = {}
        for awaited in found:
            seen.setdefault(self.task_id(awaited), None)
        return list(seen)

    # -- the signal ---------------------------------------------------------------------

    def install_signal(self, name: str) -> None:
        """Dump a snapshot on ``SIG<name>``, unless that signal already has a handler."""
        self._signal.install(name, "snapshots", " (coroscope.snapshot() still works)")

    def uninstall_signal(self) -> None:
        """Give the signal back, if it is still ours."""
        self._signal.uninstall()

    def _on_signal(self) -> None:
        # Runs in the main thread between two bytecodes, maybe in the middle of a task:
        # schedule the snapshot on every loop instead of walking chains from here.
        try:
            snapshot_id = next(self._snapshots)
            for loop, _ in self._loops.watched():
                loop.call_soon_threadsafe(self.snapshot_loop, loop, snapshot_id)
        except Exception:
            self.errors += 1
