"""Keeping every record within ``COROSCOPE_MAX_RECORD_BYTES`` without breaking its JSON.

The cap applies to the rendered record.  The writer checks ``len()`` of each rendered
record and calls :meth:`Shrinker.fit` only for the rare one that is too long, which
rebuilds it with less detail, in this order, re-rendering (user processors included)
until it fits:

1. every string in locals and the awaited object's repr shortened to 64 characters;
2. the locals of frames dropped, innermost frame first;
3. frames dropped from the middle of the await chain (``frames_omitted`` counts them),
   keeping the outermost and the innermost;
4. a minimal record: ``event``, ``level``, ``logger``, ``timestamp``, ``pid``,
   ``thread``, ``thread_id``, ``seq`` and ``task``.

A shrunk record says ``"truncated": true``.  A record is never split.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .. import _schema as S

__all__ = ["MIN_RECORD_BYTES", "Shrinker"]

SHORT = 64
NAME_LIMIT = 100
# The smallest cap accepted: a minimal record with long names cut fits in it.
MIN_RECORD_BYTES = 1024
_MINIMAL_KEYS = (*S.COMMON, S.TASK)

Render = Callable[[dict[str, Any]], bytes]


def _short(value: Any) -> Any:
    if type(value) is str and len(value) > SHORT:
        return value[: SHORT - 3] + "..."
    return value


def _cut(value: Any, limit: int) -> Any:
    if type(value) is str and len(value) > limit:
        return value[: limit - 3] + "..."
    return value


class Shrinker:
    """Rebuilds an oversized record with less detail until it fits ``limit`` bytes."""

    __slots__ = ("_bare", "_render", "limit")

    def __init__(self, limit: int, render: Render, bare: Render) -> None:
        self.limit = limit
        self._render = render
        self._bare = bare

    def _event(
        self, built: dict[str, Any], drop_locals: int, keep_frames: int | None
    ) -> dict[str, Any]:
        # A copy, down to the frames: the original is rendered again at the next step.
        event = dict(built)
        frames: list[dict[str, Any]] = [dict(frame) for frame in built.get(S.FRAMES) or []]
        event[S.FRAMES] = frames
        count = len(frames)
        for index, frame in enumerate(frames):
            values = frame.get(S.LOCALS)
            if values is None:
                continue
            if index >= count - drop_locals:
                frame[S.LOCALS] = None
            else:
                frame[S.LOCALS] = {name: _short(value) for name, value in values.items()}
        if keep_frames is not None and keep_frames < count:
            head = (keep_frames + 1) // 2
            tail = keep_frames - head
            event[S.FRAMES] = frames[:head] + (frames[count - tail :] if tail else [])
            event[S.FRAMES_OMITTED] = count - keep_frames
        awaiting = event.get(S.AWAITING)
        if isinstance(awaiting, dict):
            event[S.AWAITING] = {k: _short(v) for k, v in awaiting.items()}
        event[S.TRUNCATED] = True
        return event

    def _try(self, event: dict[str, Any]) -> bytes | None:
        line = self._render(event)
        return line if len(line) <= self.limit else None

    def fit(self, built: dict[str, Any], line: bytes) -> bytes:
        """A rendering of the event ``built`` within the limit (``line``, its rendering,
        was not)."""
        frames: list[dict[str, Any]] = built.get(S.FRAMES) or []
        count = len(frames)
        # 1. Short strings.
        fitted = self._try(self._event(built, 0, None))
        if fitted is not None:
            return fitted
        # 2. Drop locals, innermost first: enough frames to cover the excess, then more.
        sizes = [
            len(orjson.dumps({k: _short(v) for k, v in (f.get(S.LOCALS) or {}).items()}))
            for f in frames
        ]
        excess = len(line) - self.limit
        drop, saved = 0, 0
        while drop < count and saved < excess:
            saved += sizes[count - 1 - drop]
            drop += 1
        while drop <= count:
            if any(sizes):
                fitted = self._try(self._event(built, drop, None))
                if fitted is not None:
                    return fitted
            if drop == count:
                break
            drop = min(count, max(drop * 2, drop + 1))
        # 3. Drop frames from the middle, halving what is kept.
        keep = count
        while keep > 2:
            keep //= 2
            fitted = self._try(self._event(built, count, keep))
            if fitted is not None:
                return fitted
        # 4. The minimal record, through the processors if they leave it small enough.
        fitted = self._try(self._minimal(built))
        return fitted if fitted is not None else self._bare(self._minimal(built))

    def _minimal(self, built: dict[str, Any]) -> dict[str, Any]:
        event = {key: built[key] for key in _MINIMAL_KEYS if key in built}
        event[S.THREAD] = _cut(event.get(S.THREAD), NAME_LIMIT)
        task = event.get(S.TASK)
        if isinstance(task, dict):
            event[S.TASK] = {S.NAME: _cut(task.get(S.NAME), NAME_LIMIT), S.ID: task.get(S.ID)}
        event[S.TRUNCATED] = True
        return event
