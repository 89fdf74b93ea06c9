"""Who holds which asyncio lock, who waits for which, and the deadlocks that follow.

Read on the loop thread, between tasks, from suspended coroutines only:

* **holds**: an active ``async with lock:`` keeps the bound ``lock.__aexit__`` on the
  coroutine's value stack, where the garbage collector's traversal sees it
  (``gc.get_referents(coro)``): a public mechanism that does not depend on frame internals.
  A lock being *entered* (the coroutine awaits its ``__aenter__``) is not held yet, and a
  ``Condition`` whose ``wait()`` is in progress has released its lock.
* **waits_for**: a task blocked in ``Lock.acquire``/``Semaphore.acquire`` (directly or through
  ``async with``) waits for that lock: the ``self`` of the acquiring frame, checked against the
  lock's own waiter queue.

Locks taken with ``await lock.acquire()`` outside ``async with`` leave nothing on the stack:
they cannot be attributed to a task this way, and coroscope does not guess.  Recognised:
``asyncio.Lock``, ``Semaphore``, ``BoundedSemaphore`` and ``Condition`` (exact types).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import types
from typing import Any

from .. import _schema as S
from ..capture import local_value
from ..capture._waits import suspended_coroutines

__all__ = ["LOCK_TYPES", "LockGraph", "describe_lock", "held_locks", "lock_waited_for"]

MAX_CYCLE = 16  # tasks in one reported cycle, at most

LOCK_TYPES: frozenset[type] = frozenset(
    {asyncio.Lock, asyncio.Semaphore, asyncio.BoundedSemaphore, asyncio.Condition}
)
_AEXIT = asyncio.locks._ContextManagerMixin.__aexit__
_AENTER_CODE = asyncio.locks._ContextManagerMixin.__aenter__.__code__
_ACQUIRE_CODES = frozenset({asyncio.Lock.acquire.__code__, asyncio.Semaphore.acquire.__code__})
_COND_WAIT_CODES = frozenset({asyncio.Condition.wait.__code__})
_MethodType = types.MethodType
_CoroutineType = types.CoroutineType


def held_locks(coro: object) -> list[Any]:
    """The asyncio locks a suspended task's active ``async with`` blocks hold, outermost
    first (one entry per block)."""
    held: list[Any] = []
    releasing: list[Any] = []  # conditions whose wait() has let their lock go
    for link in suspended_coroutines(coro):
        entering = None
        awaited = link.cr_await
        if type(awaited) is _CoroutineType and awaited.cr_code is _AENTER_CODE:
            frame = awaited.cr_frame
            entering = local_value(frame, "self") if frame is not None else None
        if link.cr_code in _COND_WAIT_CODES and link.cr_frame is not None:
            releasing.append(local_value(link.cr_frame, "self"))
        for ref in gc.get_referents(link):
            if type(ref) is _MethodType and ref.__func__ is _AEXIT:
                lock = ref.__self__
                if type(lock) not in LOCK_TYPES:
                    continue
                if lock is entering:
                    entering = None  # its __aenter__ is still running: not held yet
                    continue
                held.append(lock)
    for cond in releasing:
        for i, lock in enumerate(held):
            if lock is cond:
                del held[i]
                break
    return held


def lock_waited_for(coro: object, waiter: object) -> Any:
    """The asyncio lock a suspended task is blocked acquiring, or ``None``."""
    for link in suspended_coroutines(coro):
        if link.cr_code in _ACQUIRE_CODES and link.cr_frame is not None:
            lock = local_value(link.cr_frame, "self")
            if type(lock) not in LOCK_TYPES:
                return None
            waiters = getattr(lock, "_waiters", None)
            if waiters is not None and any(w is waiter for w in list(waiters)):
                return lock
            return None
    return None


def _identity(lock: Any) -> int:
    """What two views of one lock share: a Condition is acquired through its inner lock."""
    if type(lock) is asyncio.Condition:
        inner = vars(lock).get("_lock")
        if type(inner) is asyncio.Lock:
            return id(inner)
    return id(lock)


def describe_lock(lock: Any) -> dict[str, Any]:
    """A lock as records name it: ``{"type", "id", "state"}``; ``id`` tells locks apart
    across the records of one process, ``state`` is read from plain attributes."""
    attrs = vars(lock)
    waiters = attrs.get("_waiters")
    queued = len(waiters) if type(waiters) is collections.deque else 0
    kind = type(lock).__qualname__
    if type(lock) is asyncio.Condition:
        inner = attrs.get("_lock")
        locked = bool(vars(inner).get("_locked")) if type(inner) is asyncio.Lock else None
        state = f"<Condition {'locked' if locked else 'unlocked'} waiters={queued}>"
    elif type(lock) is asyncio.Lock:
        state = f"<Lock {'locked' if attrs.get('_locked') else 'unlocked'} waiters={queued}>"
    else:
        value = attrs.get("_value")
        state = f"<{kind} value={value if type(value) is int else '?'} waiters={queued}>"
    return {S.TYPE: kind, S.ID: _identity(lock), S.STATE: state}


class LockGraph:
    """Holds and waits of a loop's suspended tasks, and the cycles among them."""

    def __init__(self) -> None:
        self.holds: dict[Any, list[Any]] = {}  # task -> locks held
        self.waits: dict[Any, Any] = {}  # task -> lock waited for
        self.holders: dict[int, list[Any]] = {}  # id(lock) -> tasks holding it

    def add(self, task: Any, coro: object, waiter: object) -> None:
        held = held_locks(coro)
        if held:
            self.holds[task] = held
            for lock in held:
                self.holders.setdefault(_identity(lock), []).append(task)
        lock = lock_waited_for(coro, waiter)
        if lock is not None:
            self.waits[task] = lock

    def cycles(self) -> list[list[Any]]:
        """Each cycle once, as its tasks in wait order (each waits for a lock the next
        holds): a deadlock when every holder of each lock on it is on it too."""
        found: list[list[Any]] = []
        seen: set[frozenset[int]] = set()
        for start in self.waits:
            path = [start]
            on_path = {id(start): 0}
            task = start
            for _ in range(MAX_CYCLE):
                holders = self.holders.get(_identity(self.waits[task]), [])
                nxt = next((h for h in holders if h is not task and h in self.waits), None)
                if nxt is None:
                    break
                if id(nxt) in on_path:
                    cycle = path[on_path[id(nxt)] :]
                    key = frozenset(id(t) for t in cycle)
                    if key not in seen and self._closed(cycle):
                        seen.add(key)
                        found.append(cycle)
                    break
                on_path[id(nxt)] = len(path)
                path.append(nxt)
                task = nxt
        return found

    def _closed(self, cycle: list[Any]) -> bool:
        """Whether no task off the cycle can release a lock on it.  Only waiting tasks are
        looked at, so a lock's holders are known in full only for a ``Lock`` or a
        ``Condition`` (one holder) and a ``BoundedSemaphore`` (as many as its bound); a plain
        ``Semaphore`` does not say how many permits it handed out, and a cycle through one is
        not reported."""
        members = {id(t) for t in cycle}
        for task in cycle:
            lock = self.waits[task]
            holders = self.holders.get(_identity(lock), [])
            if not holders or any(id(h) not in members for h in holders):
                return False  # a holder off the cycle may still release it
            if type(lock) is asyncio.Semaphore:
                return False
            if type(lock) is asyncio.BoundedSemaphore:
                bound = vars(lock).get("_bound_value")
                if type(bound) is not int or len(holders) < bound:
                    return False
        return True
