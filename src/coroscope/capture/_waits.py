"""What kind of wait a suspended task is in: a timer it asked for, a wait that is idle by
design, or an ordinary wait.

Read on the loop thread while the chain is suspended, by walking the coroutines of the
chain (``cr_await``) and recognising asyncio's own code objects by identity: no
``isinstance``, no attribute a user class could answer with its own code.

* A **timer wait** is one whose length the task asked for: ``asyncio.sleep(d)`` or
  ``asyncio.wait_for(..., timeout=d)`` somewhere in the chain.  Such a wait is slow only if
  it overran ``d``, and it is never stuck.  (A bare ``async with asyncio.timeout(d)`` is not
  recognised: its deadline lives in the loop's timer heap, not in the chain.)
* An **idle wait** is one that waits for work by design: ``Queue.get``, ``Event.wait``,
  ``Condition.wait``, a server's ``serve_forever``, or a wait for other tasks (an awaited
  task, ``gather``, ``TaskGroup``, ``asyncio.wait``), which are judged on their own.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator
from typing import Any

from ._awaitables import TASK_TYPES
from ._chain import local_value

__all__ = ["IDLE_KINDS", "TIMER", "overran", "suspended_coroutines", "timer_delay_ns", "wait_kind"]

MAX_LINKS = 64
TIMER = "timer"

_CoroutineType = types.CoroutineType

#: Timer waits: code object -> the name of the local holding the delay in seconds.
_TIMERS: dict[types.CodeType, str] = {
    asyncio.tasks.sleep.__code__: "delay",
    asyncio.tasks.wait_for.__code__: "timeout",
}

#: Idle waits: code object -> the kind of wait it is.
_IDLE: dict[types.CodeType, str] = {
    asyncio.queues.Queue.get.__code__: "queue",
    asyncio.locks.Event.wait.__code__: "event",
    asyncio.locks.Condition.wait.__code__: "condition",
    asyncio.base_events.Server.serve_forever.__code__: "server",
    asyncio.TaskGroup.__aexit__.__code__: "tasks",
    asyncio.tasks._wait.__code__: "tasks",  # type: ignore[attr-defined]
}
_GATHERING = asyncio.tasks._GatheringFuture  # type: ignore[attr-defined]

#: Every kind :func:`wait_kind` returns.
IDLE_KINDS = frozenset({TIMER, *_IDLE.values()})


def suspended_coroutines(link: object) -> Iterator[Any]:
    """The suspended coroutines of a chain, from ``link`` inwards (bounded; a running one
    ends it: reading its ``cr_await`` is not safe)."""
    obj: Any = link
    for _ in range(MAX_LINKS):
        if type(obj) is not _CoroutineType or not obj.cr_suspended:
            return
        yield obj
        obj = obj.cr_await


def timer_delay_ns(link: object) -> int | None:
    """The delay, in ns, of the timer a chain waits on (from ``link``, a coroutine the task
    awaits, inwards); ``None`` if it waits on no timer."""
    for coro in suspended_coroutines(link):
        name = _TIMERS.get(coro.cr_code)
        frame = coro.cr_frame
        if name is not None and frame is not None:
            delay = local_value(frame, name)
            if type(delay) in (int, float) and delay >= 0:  # type: ignore[operator]
                return int(delay * 1e9)  # type: ignore[operator]
    return None


def wait_kind(coro: object, waiter: object) -> str | None:
    """``"timer"``, an idle kind (``"queue"``, ``"event"``, ``"condition"``, ``"server"``,
    ``"tasks"``), or ``None`` for an ordinary wait; ``coro`` is the task's root coroutine
    and ``waiter`` the future it waits on."""
    if type(waiter) in TASK_TYPES or type(waiter) is _GATHERING:
        return "tasks"
    for link in suspended_coroutines(coro):
        code = link.cr_code
        if code in _TIMERS:
            if timer_delay_ns(link) is not None:
                return TIMER
            continue  # wait_for(..., timeout=None): an ordinary wait
        kind = _IDLE.get(code)
        if kind is not None:
            return kind
    return None


def overran(waited: int, link: object, slow_ns: int) -> bool:
    """Whether a wait of ``waited`` ns, whose root awaited ``link``, is slow: it reached
    ``slow_ns``, and if it is a timer wait (``asyncio.sleep(d)``, ``wait_for(..., d)``) it
    overran ``d`` by ``slow_ns``.  (The timer is looked for only past the threshold.)"""
    if waited < slow_ns:
        return False
    delay = timer_delay_ns(link)
    return delay is None or waited - delay >= slow_ns
