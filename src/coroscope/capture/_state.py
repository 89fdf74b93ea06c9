"""What the capture keeps per task, as plain slotted data.

A task is known by its *root* coroutine's frame (the frame its ``Task`` steps).  A
:class:`TaskState` is made when the task's first step starts, lives in the
:class:`TaskTable` while the task runs, and is forgotten when the task ends.  A task
alternates between *steps* (running, from a resume to the next suspend or its end) and
*waits* (suspended).  :func:`task_rooted_at` tells whether a frame is the root of the task
running on this thread's loop.
"""

from __future__ import annotations

import itertools
import time
import weakref
from asyncio import events as _events
from asyncio import tasks as _tasks
from collections.abc import Callable, Iterable
from types import CodeType, CoroutineType, FrameType
from typing import Any, cast

from .._record import FrameRecord

__all__ = [
    "SwitchFields",
    "TaskState",
    "TaskTable",
    "running_task",
    "state_class",
    "task_rooted_at",
]

_get_running_loop = _events._get_running_loop
_current_task = _tasks.current_task
_clock = time.perf_counter_ns


class SwitchFields:
    """The fields of a task's state that every switch reads and writes.

    The native core stores them in C (``coroscope.capture._core.SwitchState``, with the
    same names and meaning) so that its callbacks reach them without attribute lookups;
    :func:`state_class` puts :class:`TaskState` over either storage.
    """

    __slots__ = (
        "link",
        "resumed_lasti",
        "resumed_ns",
        "run_ns",
        "suspend_seq",
        "suspended_ns",
        "switches",
        "value",
        "wait_ns",
    )

    resumed_ns: int
    suspended_ns: int
    resumed_lasti: int
    switches: int
    run_ns: int
    wait_ns: int
    suspend_seq: int
    link: object
    value: object


class TaskState(SwitchFields):
    """One task: identity, the timing of its current step or wait, and what a record of
    its next switch needs."""

    __slots__ = (
        "coro_ref",
        "frame",
        "frames",
        "notable",
        "started_ns",
        "task_id",
        "task_ref",
        "thrown_at",
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
        self.started_ns = now
        self.resumed_ns = now  # the current step began (-1: unknown, for an adopted task)
        self.suspended_ns = -1  # the last suspend (-1: none yet)
        self.resumed_lasti = -1  # the root frame's offset where the current step began
        self.switches = 0
        self.run_ns = 0
        self.wait_ns = 0
        # What the last suspend left for the next resume: the chain if it was captured,
        # else the root's link and the task's awaited object (to capture it if needed).
        self.frames: tuple[FrameRecord, ...] = ()
        self.suspend_seq = -1  # the seq of the last suspend record written (-1: none)
        self.link: object = None
        self.value: object = None
        self.thrown_at: tuple[FrameRecord, ...] = ()  # the chain when an exception came in
        #: In ``slow`` mode: a slow step or a slow cancellation was logged, so the task's
        #: ``task.done`` is written too.
        self.notable = False

    @property
    def running(self) -> bool:
        """Whether the task is in a step (its resume, or start, was seen last)."""
        return self.resumed_ns > self.suspended_ns

    def end_step(self, now: int) -> int:
        """The task suspends at ``now``: the step's length, ``-1`` if unknown."""
        self.switches += 1
        return self.end(now)

    def end(self, now: int) -> int:
        """The task's step ends at ``now`` (a suspend, or the task's own end, which is not
        a switch): the step's length, ``-1`` if unknown."""
        step = now - self.resumed_ns if self.resumed_ns >= 0 else -1
        self.suspended_ns = now
        if step > 0:
            self.run_ns += step
        return step

    def end_wait(self, now: int) -> int:
        """The task resumes at ``now``: the wait's length, ``-1`` if its suspend was not seen
        (adopted while suspended, or suspended below its root after a handled exception)."""
        suspended = self.suspended_ns
        waited = now - suspended if suspended > self.resumed_ns else -1
        self.resumed_ns = now
        if waited > 0:
            self.wait_ns += waited
        return waited

    def task(self) -> Any:
        """The task, or ``None`` once it is gone."""
        return self.task_ref()

    def coro(self) -> Any:
        """The root coroutine, or ``None`` once it is gone."""
        return self.coro_ref()


def state_class(fields: type) -> type[TaskState]:
    """:class:`TaskState` with its switch fields stored by ``fields`` (the native core's
    ``SwitchState``): the same methods and slots over another base."""
    if fields is SwitchFields:
        return TaskState
    names = set(TaskState.__slots__)
    namespace = {k: v for k, v in vars(TaskState).items() if k not in names}
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    return cast("type[TaskState]", type("TaskState", (fields,), namespace))


class TaskTable:
    """Task states by their root frame.

    Each entry holds its frame, so the id stays unique while the entry exists.  Entries are
    removed when their task ends and, for tasks that vanish without ending, swept whenever
    the table has doubled since the last sweep, so memory follows the number of live tasks.
    """

    __slots__ = ("_sweep_at", "by_frame", "ids", "state_type")

    def __init__(self, state_type: type[TaskState] = TaskState) -> None:
        #: The class of the states made (:func:`state_class`).
        self.state_type = state_type
        #: The lookup of the hot path: ``by_frame.get(frame)`` (frames hash and compare by
        #: identity, and each entry holds its frame, so a key is never reused).
        self.by_frame: dict[FrameType, TaskState] = {}
        #: Task ids: coroscope's number for each task, shared with tasks it did not capture.
        self.ids = itertools.count(1)
        self._sweep_at = 1024

    def add(self, frame: FrameType, coro: object, task: object, now: int) -> TaskState:
        """A new task, starting its first step at ``now``."""
        state = self.state_type(frame, coro, task, next(self.ids), now)
        table = self.by_frame
        table[frame] = state
        if len(table) >= self._sweep_at:
            self._sweep()
        return state

    def _sweep(self) -> None:
        table = self.by_frame
        for key, old in list(table.items()):
            coro = old.coro()
            if coro is None or coro.cr_frame is None:
                table.pop(key, None)
                old.frame = None
        self._sweep_at = max(1024, 2 * len(table))

    def adopt(
        self,
        tasks: Iterable[Any],
        watch_root: Callable[[CodeType, FrameType], bool],
        on_loop: Callable[[Any], None] | None,
    ) -> int:
        """Add states for already-running tasks (``watch_root`` turns their root events on):
        how many were added.  A task known already keeps its state."""
        adopted = 0
        now = _clock()
        for task in tasks:
            coro: Any = task.get_coro()
            frame = getattr(coro, "cr_frame", None)
            if type(coro) is not CoroutineType or frame is None:
                continue
            if self.of_task(task) is not None:
                continue  # seen starting after all
            if watch_root(frame.f_code, frame):
                state = self.add(frame, coro, task, now)
                state.resumed_ns = -1  # suspended since before we knew it
                adopted += 1
                if on_loop is not None:
                    on_loop(task.get_loop())
        return adopted

    def remove(self, state: TaskState) -> None:
        """Forget a task (it has ended)."""
        frame = state.frame
        if frame is not None and self.by_frame.get(frame) is state:
            del self.by_frame[frame]
        state.frame = None

    def of_task(self, task: Any) -> TaskState | None:
        """The state of a live task, if it was seen starting (or adopted)."""
        frame = getattr(task.get_coro(), "cr_frame", None)
        if frame is None:
            return None
        state = self.by_frame.get(frame)
        if state is None or state.frame is not frame:
            return None
        return state

    def __len__(self) -> int:
        return len(self.by_frame)


def running_task() -> tuple[Any, Any] | None:
    """``(loop, task)``: the task running on this thread's loop, or ``None``."""
    loop = _get_running_loop()
    if loop is None:
        return None
    task = _current_task(loop)
    return (loop, task) if task is not None else None


def task_rooted_at(frame: FrameType) -> tuple[Any, Any, CoroutineType[Any, Any, Any]] | None:
    """``(loop, task, coroutine)`` if ``frame`` is the root coroutine frame of the task
    running on this thread's loop, else ``None``."""
    running = running_task()
    if running is None:
        return None
    loop, task = running
    coro = task.get_coro()
    if type(coro) is not CoroutineType or coro.cr_frame is not frame:
        return None
    return loop, task, coro
