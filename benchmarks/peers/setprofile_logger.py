"""A task-switch logger built on ``sys.setprofile``: the classic way, written carefully.

It captures, at every task switch, the fields coroscope captures: the task (id and name),
the await chain root first (function, file, line, ``f_lasti``, a bounded and redacted
snapshot of each frame's locals, what each frame awaits), the awaited object, the step or
wait duration, the thread, a sequence number and a timestamp.  It does not capture the
enclosing ``try``/``with``/``for`` blocks of each frame (coroscope does), so it does
slightly less work than coroscope per switch.  Like coroscope's default
(``COROSCOPE_EXCLUDE=asyncio,asyncio.*``), frames of asyncio's own modules are walked
through but not recorded.

How switches are detected with the legacy profiling hook (which fires for every Python and
C call and return of the thread):

* ``"return"`` of a coroutine frame that is the current task's root coroutine *and* is
  still suspended (``cr_suspended``) is a suspend (a real return leaves it not suspended);
  at that moment the whole chain is suspended and is walked from the root;
* ``"call"`` of the current task's root coroutine frame after a suspend is a resume (the
  first ``"call"`` of a task is its start, not a resume).

Everything else returns after one string comparison (``c_call``/``c_return``) or one
``co_flags`` test (calls and returns of non-coroutine code).  Records are compact tuples
appended to a bounded ``deque``; a writer thread renders them to JSON lines with
``orjson`` (no structlog: cheaper than coroscope's renderer) and appends them to a file
with one ``write(2)`` per batch.  A full buffer drops and counts records, like coroscope.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from asyncio import events as _events
from asyncio import tasks as _tasks
from collections import deque
from collections.abc import Mapping
from inspect import CO_COROUTINE
from types import CoroutineType, FrameType, GeneratorType
from typing import Any

import orjson

__all__ = ["SwitchLogger"]

_DENY = ("password", "passwd", "secret", "token", "apikey", "auth", "credential", "cookie")
_SCALARS = (int, float, bool, type(None))
_MAX_STR = 200
_MAX_DEPTH = 64
_BATCH = 4096

_get_running_loop = _events._get_running_loop
_current_task = _tasks.current_task
_clock = time.perf_counter_ns
_get_ident = threading.get_ident


class _Locals:
    """Bounded, redacted locals: scalars as themselves, other values by type and id."""

    __slots__ = ("_denied",)

    def __init__(self) -> None:
        self._denied: dict[str, bool] = {}

    def render(self, f_locals: Mapping[str, object]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        denied = self._denied
        for name, value in f_locals.items():
            deny = denied.get(name)
            if deny is None:
                key = name.lower().replace("_", "")
                deny = denied[name] = any(d in key for d in _DENY)
            if deny:
                out[name] = "[redacted]"
                continue
            cls = type(value)
            if cls is str:
                out[name] = value if len(value) <= _MAX_STR else value[:_MAX_STR] + "..."  # type: ignore[arg-type, index]
            elif cls in _SCALARS:
                out[name] = value
            else:
                out[name] = f"<{cls.__qualname__} object at {id(value):#x}>"
        return out


def _describe(obj: object) -> str:
    if obj is None:
        return "None"
    cls = type(obj)
    state = getattr(obj, "_state", None) if cls.__module__.startswith("_asyncio") else None
    if type(state) is str:
        return f"<{cls.__qualname__} {state.lower()}>"
    return f"<{cls.__module__}.{cls.__qualname__} object at {id(obj):#x}>"


class _Task:
    __slots__ = ("frames", "ref", "resumed_ns", "suspended_ns", "task_id")

    def __init__(self, task_id: int, task: object) -> None:
        self.task_id = task_id
        self.resumed_ns = -1
        self.suspended_ns = -1
        self.frames: tuple[Any, ...] = ()
        self.ref = task  # strong: entries are removed when the task is done (below)


class SwitchLogger:
    """Log every asyncio task switch of the thread that calls :meth:`start`."""

    def __init__(self, path: str, *, with_locals: bool = True, capacity: int = 65_536) -> None:
        self.path = path
        self.capacity = capacity
        self._locals = _Locals() if with_locals else None
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._dropped = 0
        self._tasks: dict[int, _Task] = {}
        self._codes: dict[int, tuple[Any, bool]] = {}
        self._next_task = 1
        self._seq_counter = itertools.count(1)
        self._drop_lock = threading.Lock()
        self._handled = 0  # records written or dropped, by the writer thread
        self._skipped = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = False
        self._offset_ns = time.time_ns() - time.perf_counter_ns()
        self._thread = threading.Thread(target=self._run, name="setprofile-writer", daemon=True)
        self.written = 0

    # -- capture ----------------------------------------------------------------------------

    def _chain(self, root: object, value: object) -> tuple[Any, ...]:
        render = self._locals.render if self._locals is not None else None
        codes = self._codes
        frames = []
        obj: Any = root
        for _ in range(_MAX_DEPTH):
            cls = type(obj)
            if cls is CoroutineType:
                if not obj.cr_suspended:
                    break
                frame: FrameType = obj.cr_frame
                link = obj.cr_await
            elif cls is GeneratorType:
                if not obj.gi_suspended:
                    break
                frame, link = obj.gi_frame, obj.gi_yieldfrom
            else:
                break
            code = frame.f_code
            obj = link
            entry = codes.get(id(code))
            if entry is None:
                module = frame.f_globals.get("__name__")
                skip = type(module) is str and (module == "asyncio" or module[:8] == "asyncio.")
                entry = codes[id(code)] = (code, skip)  # the code keeps its id from reuse
            if entry[1]:
                continue  # asyncio's own frames are left out, as coroscope does by default
            awaits: tuple[str, str | None] | None
            if link is None:
                awaits = None
            elif type(link) is CoroutineType:
                awaits = ("coroutine", link.cr_code.co_qualname)
            elif type(link) is GeneratorType:
                awaits = ("generator", link.gi_code.co_qualname)
            else:
                awaits = (type(link).__qualname__, None)
            frames.append(
                (
                    code.co_qualname,
                    code.co_filename,
                    frame.f_lineno,
                    frame.f_lasti,
                    render(dict(frame.f_locals)) if render is not None else None,
                    awaits,
                )
            )
        return tuple(frames)

    def _state(self, task: Any) -> _Task:
        state = self._tasks.get(id(task))
        if state is None or state.ref is not task:
            state = _Task(self._next_task, task)
            self._next_task += 1
            self._tasks[id(task)] = state
            task.add_done_callback(self._forget)
        return state

    def _forget(self, task: Any) -> None:
        self._tasks.pop(id(task), None)

    def _make_profile(self) -> Any:
        """Build the profile function as a closure over everything it uses (fewer lookups)."""
        buffer = self._buffer
        append = buffer.append
        capacity = self.capacity
        chain = self._chain
        tasks = self._tasks
        new_state = self._state
        drop_lock = self._drop_lock
        seq = self._seq_counter

        def emit(record: tuple[Any, ...]) -> None:
            if len(buffer) < capacity:
                append(record)
            else:
                with drop_lock:
                    self._dropped += 1

        def profile(frame: FrameType, event: str, arg: object) -> None:
            if event == "return":
                if not frame.f_code.co_flags & CO_COROUTINE:
                    return
                loop = _get_running_loop()
                if loop is None:
                    return
                task = _current_task(loop)
                if task is None:
                    return
                coro: Any = task.get_coro()
                if coro.cr_frame is not frame or not coro.cr_suspended:
                    return  # an inner frame of the chain, or a real return
                now = _clock()
                state = tasks.get(id(task))
                if state is None or state.ref is not task:
                    state = new_state(task)
                frames = chain(coro, arg)
                state.frames = frames
                step = now - state.resumed_ns if state.resumed_ns >= 0 else -1
                state.suspended_ns = now
                emit(
                    (
                        "suspend",
                        next(seq),
                        now,
                        _get_ident(),
                        state.task_id,
                        task.get_name(),
                        frames,
                        (type(arg).__qualname__, _describe(arg)),
                        step,
                    )
                )
            elif event == "call":
                if not frame.f_code.co_flags & CO_COROUTINE:
                    return
                loop = _get_running_loop()
                if loop is None:
                    return
                task = _current_task(loop)
                if task is None:
                    return
                coro = task.get_coro()
                if coro.cr_frame is not frame:
                    return
                now = _clock()
                state = tasks.get(id(task))
                if state is None or state.ref is not task:
                    state = new_state(task)
                if state.suspended_ns < 0:
                    state.resumed_ns = now  # the task's first step starts: not a resume
                    return
                waited = now - state.suspended_ns
                state.resumed_ns = now
                frames, state.frames = state.frames, ()
                emit(
                    (
                        "resume",
                        next(seq),
                        now,
                        _get_ident(),
                        state.task_id,
                        task.get_name(),
                        frames,
                        None,
                        waited,
                    )
                )

        return profile

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread and profile the calling thread."""
        self._thread.start()
        sys.setprofile(self._make_profile())

    def stop(self) -> None:
        """Stop profiling the calling thread (the writer keeps going until :meth:`close`)."""
        sys.setprofile(None)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything captured so far is written; ``True`` if within ``timeout``."""
        deadline = time.monotonic() + timeout
        # Records numbered so far; each flush takes (and skips) one number.
        target = next(self._seq_counter) - 1 - self._skipped
        self._skipped += 1
        while self._handled < target:
            self._idle.clear()
            self._wake.set()
            if not self._idle.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def close(self) -> None:
        """Flush, stop the writer and close the file."""
        self.stop()
        self.flush()
        self._stop = True
        self._wake.set()
        self._thread.join(2.0)
        os.close(self._fd)

    # -- writer thread ----------------------------------------------------------------------

    def _iso(self, perf_ns: int) -> str:
        wall = perf_ns + self._offset_ns
        second, ns = divmod(wall, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{ns // 1000:06d}Z"

    def _render(self, record: tuple[Any, ...], pid: int, threads: dict[int, str]) -> bytes:
        kind, seq, t_ns, ident, task_id, task_name, frames, awaiting, duration = record
        thread = threads.get(ident)
        if thread is None:
            active = threading._active.get(ident)  # type: ignore[attr-defined]
            thread = threads[ident] = active.name if active is not None else str(ident)
        event: dict[str, Any] = {
            "event": kind,
            "level": "info",
            "logger": "setprofile",
            "timestamp": self._iso(t_ns),
            "pid": pid,
            "thread": thread,
            "thread_id": ident,
            "seq": seq,
            "task": {"name": task_name, "id": task_id},
            "frames": [
                {
                    "function": f[0],
                    "file": f[1],
                    "line": f[2],
                    "lasti": f[3],
                    "locals": f[4],
                    "awaits": {"type": f[5][0], "name": f[5][1]} if f[5] is not None else None,
                }
                for f in frames
            ],
        }
        ms = round(duration / 1e6, 3) if duration >= 0 else None
        if kind == "suspend":
            event["awaiting"] = {"type": awaiting[0], "repr": awaiting[1]}
            event["step_ms"] = ms
        else:
            event["waited_ms"] = ms
        return orjson.dumps(event)

    def _run(self) -> None:
        pid = os.getpid()
        threads: dict[int, str] = {}
        buffer = self._buffer
        while True:
            self._wake.wait(0.05)
            self._wake.clear()
            while buffer or self._dropped:
                batch = [buffer.popleft() for _ in range(min(_BATCH, len(buffer)))]
                lines = [self._render(r, pid, threads) for r in batch]
                with self._drop_lock:
                    dropped, self._dropped = self._dropped, 0
                if dropped:
                    lines.append(orjson.dumps({"event": "dropped", "count": dropped}))
                data = memoryview(b"\n".join(lines) + b"\n")
                while data:
                    data = data[os.write(self._fd, data) :]
                self.written += len(batch)
                self._handled += len(batch) + dropped
            self._idle.set()
            if self._stop:
                return
