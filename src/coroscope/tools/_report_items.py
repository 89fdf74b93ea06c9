"""What ``coroscope report`` keeps per await site and per task, and how it orders them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._stats import QuantileSketch

__all__ = ["SITE_ORDERS", "TASK_ORDERS", "Site", "TaskStats", "number", "rounded"]


def rounded(value: float | None) -> float | None:
    """Milliseconds rounded to the microsecond resolution of the log."""
    return None if value is None else round(value, 3)


def number(value: object) -> float | None:
    cls = type(value)
    if cls is float or cls is int:
        return value  # type: ignore[return-value]
    return None


class Site:
    """One await site: its waits and what was awaited there."""

    __slots__ = ("awaiting", "exceptions", "resumes", "suspends", "waits")

    def __init__(self) -> None:
        self.waits = QuantileSketch()
        self.suspends = 0
        self.resumes = 0
        self.exceptions: dict[str, int] = {}
        self.awaiting: dict[str, int] = {}


class TaskStats:
    """One task, as far as the log shows it."""

    __slots__ = (
        "age_ms",
        "exceptions",
        "first",
        "id",
        "last",
        "name",
        "outcome",
        "pid",
        "resumed_at",
        "resumes",
        "run_ms",
        "switches",
        "wait_ms",
        "waiting_at",
    )

    def __init__(self, pid: object, task_id: object, name: object, ts: str | None) -> None:
        self.pid = pid
        self.id = task_id
        self.name = name
        self.first = ts
        self.last = ts
        self.switches = 0
        self.resumes = 0
        self.run_ms = 0.0
        self.wait_ms = 0.0
        self.exceptions = 0
        self.resumed_at: str | None = None
        self.waiting_at: str | None = None
        self.outcome: object = None
        self.age_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "task_id": self.id,
            "name": self.name,
            "switches": self.switches,
            "resumes": self.resumes,
            "run_ms": rounded(self.run_ms),
            "wait_ms": rounded(self.wait_ms),
            "exceptions": self.exceptions,
            "first_seen": self.first,
            "last_seen": self.last,
            "waiting_at": self.waiting_at,
            "outcome": self.outcome,
            "age_ms": rounded(self.age_ms),
        }


TASK_ORDERS: dict[str, Callable[[TaskStats], tuple[float, ...]]] = {
    "run": lambda t: (t.run_ms, t.wait_ms, t.switches),
    "wait": lambda t: (t.wait_ms, t.run_ms, t.switches),
    "switches": lambda t: (t.switches, t.run_ms, t.wait_ms),
}

SITE_ORDERS: dict[str, Callable[[dict[str, Any]], tuple[float, ...]]] = {
    "total": lambda s: (s["total_ms"] or 0.0, s["waits"]),
    "count": lambda s: (s["waits"], s["total_ms"] or 0.0),
    "p50": lambda s: (s["p50_ms"] or 0.0, s["total_ms"] or 0.0),
    "p99": lambda s: (s["p99_ms"] or 0.0, s["total_ms"] or 0.0),
    "max": lambda s: (s["max_ms"] or 0.0, s["total_ms"] or 0.0),
}
