"""Reading places out of records: where a frame stands, as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .. import _schema as S

__all__ = [
    "frame_location",
    "frames_summary",
    "is_asyncio_file",
    "location_locals",
    "place_text",
    "timestamp_us",
]


def is_asyncio_file(path: str) -> bool:
    """Whether ``path`` is one of asyncio's own modules (``.../asyncio/tasks.py`` and such).

    A file directly inside a directory named ``asyncio`` counts, unless it is installed
    under ``site-packages`` (a third-party package of that name).
    """
    norm = path.replace("\\", "/")
    cut = norm.rfind("/")
    if cut < 0:
        return False
    parent = norm[norm.rfind("/", 0, cut) + 1 : cut]
    return parent == "asyncio" and "site-packages" not in norm


_asyncio_files: dict[str, bool] = {}


def _is_asyncio_cached(path: str) -> bool:
    known = _asyncio_files.get(path)
    if known is None:
        known = is_asyncio_file(path)
        if len(_asyncio_files) < 65_536:
            _asyncio_files[path] = known
    return known


def _frame_text(frame: dict[str, Any]) -> str:
    return f"{frame.get(S.FILE, '?')}:{frame.get(S.LINE, '?')} {frame.get(S.FUNCTION, '?')}"


def frame_location(frames: object, *, innermost: bool = False) -> str:
    """``"file:line function"`` of the frame where a task stopped.

    That is the innermost frame not in asyncio's own files (the user's ``await``), or the
    innermost frame when every frame is asyncio's or ``innermost`` is true.  Frames are
    root first, innermost last.  Anything unusable gives ``"<unknown>"``.
    """
    if type(frames) is not list or not frames:
        return "<unknown>"
    last = frames[-1]
    if type(last) is not dict:
        return "<unknown>"
    if not innermost:
        for frame in reversed(frames):
            if type(frame) is dict:
                file = frame.get(S.FILE)
                if type(file) is str and not _is_asyncio_cached(file):
                    return _frame_text(frame)
    return _frame_text(last)


def place_text(place: object) -> str | None:
    """``"file:line function"`` of a place given as a dict (``resumed_at``) or a string."""
    if type(place) is dict:
        return _frame_text(place)
    if type(place) is str:
        return place
    return None


def frames_summary(frames: object, limit: int = 16) -> list[str]:
    """The chain as ``"file:line function"`` strings, root first; the innermost ``limit`` kept."""
    if type(frames) is not list:
        return []
    out = [_frame_text(f) for f in frames[-limit:] if type(f) is dict]
    if len(frames) > limit:
        out.insert(0, f"... {len(frames) - limit} outer frames")
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_second_cache: dict[str, int] = {}


def timestamp_us(value: object) -> int | None:
    """Microseconds since the epoch of a record's ``timestamp``; ``None`` if unusable.

    Takes ISO 8601 (``2026-11-25T13:22:03.123456Z``; without an offset it is read as UTC)
    or a number of seconds since the epoch.  coroscope's own format is parsed through a
    per-second cache, the rest through :meth:`datetime.fromisoformat`.
    """
    if type(value) is str:
        # Fast path: "YYYY-MM-DDTHH:MM:SS.ffffffZ", the writer's own format.
        if len(value) == 27 and value[26] == "Z" and value[19] == ".":
            base = _second_cache.get(value[:19])
            if base is None:
                try:
                    dt = datetime.fromisoformat(value[:19]).replace(tzinfo=UTC)
                except ValueError:
                    return None
                base = (dt - _EPOCH) // _US
                if len(_second_cache) > 4096:
                    _second_cache.clear()
                _second_cache[value[:19]] = base
            frac = value[20:26]
            if frac.isdigit():
                return base + int(frac)
            return None
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return (dt - _EPOCH) // _US
    if type(value) is int or type(value) is float:
        return int(value * 1_000_000)
    return None


def location_locals(frames: object, location: str) -> object:
    """The locals of the frame ``location`` names (the innermost frame with that text)."""
    if type(frames) is not list:
        return None
    for frame in reversed(frames):
        if type(frame) is dict:
            text = f"{frame.get('file', '?')}:{frame.get('line', '?')} {frame.get('function', '?')}"
            if text == location:
                return frame.get(S.LOCALS)
    return None
