"""``coroscope report``: summary tables from coroscope logs, in one streaming pass.

Reads any number of logs (plain or gzip, ``-`` for standard input) and prints:

* **await sites** -- where tasks waited (the innermost non-asyncio frame of the resume's
  chain): count, total, mean, p50, p99 and max wait;
* **slowest steps** -- the longest runs between two switches, with where the step
  started (its resume site) and where it ended (its suspend site);
* **tasks** -- per task: switches, run time, wait time, first and last seen;
* **blocked loop** -- ``loop.blocked`` / ``loop.unblocked`` incidents;
* **drops** -- records the writer reported ``dropped``, and gaps in ``seq`` numbers.

Memory is bounded whatever the size of the input: per await site a quantile sketch (exact
up to :data:`EXACT_LIMIT` samples, then log-scale buckets with at most 1% relative error),
a top-N heap of steps, at most ``--max-tasks`` live tasks (least recently seen ones are
retired into a top-N table), and per process a compacted interval set of ``seq`` numbers.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import os
import sys
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ._logread import (
    LogReader,
    Progress,
    ReadStats,
    check_inputs,
    frame_location,
    place_text,
    timestamp_us,
)

__all__ = [
    "EXACT_LIMIT",
    "RELATIVE_ERROR",
    "QuantileSketch",
    "ReportBuilder",
    "SeqTracker",
    "main",
    "register",
    "render_text",
    "run",
]

#: Samples per await site kept exactly; quantiles over at most this many are exact.
EXACT_LIMIT = 1000
#: Relative error bound of a quantile once a site has more than :data:`EXACT_LIMIT` samples.
RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_INV_LOG_GAMMA = 1 / math.log(_GAMMA)
_TINY = 1e-9  # values at or below this (0.0 ms waits, clock noise) share one "zero" bucket

_MAX_EVENT_NAMES = 256
_MAX_AWAITING_TYPES = 8
_OTHER = "<other>"


def _r(value: float | None) -> float | None:
    """Milliseconds rounded to the microsecond resolution of the log."""
    return None if value is None else round(value, 3)


def _number(value: object) -> float | None:
    cls = type(value)
    if cls is float or cls is int:
        return value  # type: ignore[return-value]
    return None


class QuantileSketch:
    """Count, total, min, max and quantiles of a stream of values, in bounded memory.

    The first :data:`EXACT_LIMIT` values are kept as they are (an ``array('d')``), so small
    samples give exact nearest-rank quantiles.  Beyond that the values move into
    logarithmic buckets (a DDSketch-style mapping with ``gamma = 1.01 / 0.99``): a quantile
    is then the midpoint of the bucket holding the nearest-rank value, within 1% of it
    (relative), and clamped to the exact min and max.  A bucket covers a factor of about
    1.02, so 1 us .. 1 day is some 1,300 buckets at most.
    """

    __slots__ = ("_buckets", "_exact", "_zeros", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self._exact: array[float] | None = array("d")
        self._buckets: dict[int, int] = {}
        self._zeros = 0

    @property
    def exact(self) -> bool:
        """Whether quantiles are exact (at most :data:`EXACT_LIMIT` values so far)."""
        return self._exact is not None

    def add(self, value: float) -> None:
        """Add one value."""
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        exact = self._exact
        if exact is not None:
            exact.append(value)
            if len(exact) > EXACT_LIMIT:
                self._exact = None
                for v in exact:
                    self._bucket(v)
            return
        self._bucket(value)

    def _bucket(self, value: float) -> None:
        if value <= _TINY:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) * _INV_LOG_GAMMA)
        buckets = self._buckets
        buckets[index] = buckets.get(index, 0) + 1

    def quantile(self, percent: int) -> float | None:
        """The nearest-rank ``percent``-th percentile (the value at rank ``ceil(p/100 * n)``)."""
        if self.count == 0:
            return None
        rank = max(1, (percent * self.count + 99) // 100)
        if self._exact is not None:
            return sorted(self._exact)[rank - 1]
        seen = self._zeros
        if seen >= rank:
            return min(max(0.0, self.min), self.max)
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * _GAMMA**index / (_GAMMA + 1)
                return min(max(estimate, self.min), self.max)
        return self.max  # unreachable: the buckets hold every value

    @property
    def mean(self) -> float | None:
        """The arithmetic mean, ``None`` if empty."""
        return self.total / self.count if self.count else None


class SeqTracker:
    """The ``seq`` numbers seen from one process, as sorted disjoint intervals.

    In-order numbers extend the last interval (the common case, O(1)); numbers arriving a
    little out of order (threads) fill holes.  When more than ``max_intervals`` holes are
    open, the lowest one is declared lost for good and merged away, so memory stays
    bounded; a number that arrives after its hole was merged away counts as a duplicate.
    Loss before the first or after the last number seen cannot be detected.
    """

    __slots__ = ("_ends", "_starts", "duplicates", "lost", "max_intervals", "seen")

    def __init__(self, max_intervals: int = 1024) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.lost = 0  # numbers in holes merged away
        self.duplicates = 0
        self.seen = 0
        self.max_intervals = max_intervals

    def add(self, seq: int) -> None:
        """Record one ``seq`` number."""
        self.seen += 1
        ends = self._ends
        if ends and seq == ends[-1] + 1:
            ends[-1] = seq
            return
        starts = self._starts
        i = bisect_right(starts, seq) - 1
        if i >= 0 and seq <= ends[i]:
            self.duplicates += 1
            return
        join_left = i >= 0 and ends[i] + 1 == seq
        join_right = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if join_left and join_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif join_left:
            ends[i] = seq
        elif join_right:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)
            if len(starts) > self.max_intervals:
                self.lost += starts[1] - ends[0] - 1
                ends[0] = ends[1]
                del starts[1], ends[1]

    @property
    def first(self) -> int | None:
        """The lowest number seen."""
        return self._starts[0] if self._starts else None

    @property
    def last(self) -> int | None:
        """The highest number seen."""
        return self._ends[-1] if self._ends else None

    @property
    def missing(self) -> int:
        """Numbers between the first and the last seen that never arrived."""
        starts, ends = self._starts, self._ends
        holes = sum(starts[k + 1] - ends[k] - 1 for k in range(len(starts) - 1))
        return self.lost + holes


class _Site:
    __slots__ = ("awaiting", "exceptions", "resumes", "suspends", "waits")

    def __init__(self) -> None:
        self.waits = QuantileSketch()
        self.suspends = 0
        self.resumes = 0
        self.exceptions: dict[str, int] = {}
        self.awaiting: dict[str, int] = {}


class _Task:
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
            "run_ms": _r(self.run_ms),
            "wait_ms": _r(self.wait_ms),
            "exceptions": self.exceptions,
            "first_seen": self.first,
            "last_seen": self.last,
            "waiting_at": self.waiting_at,
            "outcome": self.outcome,
            "age_ms": _r(self.age_ms),
        }


_TASK_KEYS: dict[str, Callable[[_Task], tuple[float, ...]]] = {
    "run": lambda t: (t.run_ms, t.wait_ms, t.switches),
    "wait": lambda t: (t.wait_ms, t.run_ms, t.switches),
    "switches": lambda t: (t.switches, t.run_ms, t.wait_ms),
}

_SITE_KEYS: dict[str, Callable[[dict[str, Any]], tuple[float, ...]]] = {
    "total": lambda s: (s["total_ms"] or 0.0, s["waits"]),
    "count": lambda s: (s["waits"], s["total_ms"] or 0.0),
    "p50": lambda s: (s["p50_ms"] or 0.0, s["total_ms"] or 0.0),
    "p99": lambda s: (s["p99_ms"] or 0.0, s["total_ms"] or 0.0),
    "max": lambda s: (s["max_ms"] or 0.0, s["total_ms"] or 0.0),
}


def _stack_location(stack: object, innermost: bool) -> str:
    if type(stack) is list and stack:
        if type(stack[-1]) is str:
            return str(stack[-1])
        return frame_location(stack, innermost=innermost)
    if type(stack) is str:
        return stack.rstrip().rsplit("\n", 1)[-1].strip() or "<unknown>"
    return "<unknown>"


def _bump(counter: dict[str, int], key: str, by: int = 1, limit: int = _MAX_EVENT_NAMES) -> None:
    if key in counter or len(counter) < limit:
        counter[key] = counter.get(key, 0) + by
    else:
        counter[_OTHER] = counter.get(_OTHER, 0) + by


class ReportBuilder:
    """Consumes records one at a time (:meth:`feed`) and builds the report (:meth:`result`)."""

    def __init__(
        self,
        *,
        top: int = 20,
        innermost: bool = False,
        max_tasks: int = 100_000,
        max_sites: int = 10_000,
        sort_tasks: str = "run",
        sort_sites: str = "total",
    ) -> None:
        if sort_tasks not in _TASK_KEYS:
            raise ValueError(f"sort_tasks must be one of {', '.join(_TASK_KEYS)}")
        if sort_sites not in _SITE_KEYS:
            raise ValueError(f"sort_sites must be one of {', '.join(_SITE_KEYS)}")
        self.top = top
        self.innermost = innermost
        self.max_tasks = max_tasks
        self.max_sites = max_sites
        self.sort_tasks = sort_tasks
        self.sort_sites = sort_sites
        self._counter = itertools.count()
        self.events: dict[str, int] = {}
        self.first_ts: str | None = None
        self.last_ts: str | None = None
        self.sites: dict[str, _Site] = {}
        self.all_waits = QuantileSketch()
        self.all_steps = QuantileSketch()
        self._steps: list[tuple[float, int, dict[str, Any]]] = []
        self.tasks: OrderedDict[tuple[object, object], _Task] = OrderedDict()
        self.tasks_seen = 0
        self.tasks_evicted = 0
        self._task_key = _TASK_KEYS[sort_tasks]
        self._done_tasks: list[tuple[tuple[float, ...], int, _Task]] = []
        self.outcomes: dict[str, int] = {}
        self._blocked_open: dict[tuple[object, object], dict[str, Any]] = {}
        self._blocked: list[tuple[float, int, dict[str, Any]]] = []
        self.blocked_count = 0
        self.blocked_total = 0.0
        self.blocked_unfinished = 0
        self.dropped: dict[str, int] = {}
        self.seqs: dict[object, SeqTracker] = {}
        self.slow_steps = 0
        self.stuck = 0
        self._handlers: dict[str, Callable[[dict[str, Any], object, str | None], None]] = {
            "suspend": self._on_suspend,
            "resume": self._on_resume,
            "dropped": self._on_dropped,
            "loop.blocked": self._on_blocked,
            "loop.unblocked": self._on_unblocked,
            "task.done": self._on_task_done,
            "slow_step": self._on_slow_step,
            "stuck": self._on_stuck,
        }

    # -- consuming ------------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        """Account for one coroscope record."""
        event = rec.get("event")
        if type(event) is not str:
            event = "<no event>"
        events = self.events
        n = events.get(event)
        if n is not None:
            events[event] = n + 1
        else:
            _bump(events, event)
        pid = rec.get("pid")
        seq = rec.get("seq")
        if type(seq) is int and (type(pid) is int or pid is None):
            tracker = self.seqs.get(pid)
            if tracker is None:
                tracker = self.seqs[pid] = SeqTracker()
            tracker.add(seq)
        ts = rec.get("timestamp")
        if type(ts) is str:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
        else:
            ts = None
        handler = self._handlers.get(event)
        if handler is not None:
            handler(rec, pid, ts)

    def _task(self, rec: dict[str, Any], pid: object, ts: str | None) -> _Task | None:
        task = rec.get("task")
        if type(task) is not dict:
            return None
        task_id = task.get("id")
        if type(task_id) is not int and type(task_id) is not str:
            return None
        name = task.get("name")
        key = (pid, task_id)
        tasks = self.tasks
        st = tasks.get(key)
        if st is not None and name is not None and st.name != name:
            # Ids are unique only for a task's life: another name means another task.
            self._retire(tasks.pop(key))
            st = None
        if st is None:
            st = _Task(pid, task_id, name, ts)
            tasks[key] = st
            self.tasks_seen += 1
            if len(tasks) > self.max_tasks:
                self._retire(tasks.popitem(last=False)[1])
                self.tasks_evicted += 1
        else:
            tasks.move_to_end(key)
            if ts is not None:
                if st.first is None or ts < st.first:
                    st.first = ts
                if st.last is None or ts > st.last:
                    st.last = ts
        return st

    def _retire(self, st: _Task) -> None:
        entry = (self._task_key(st), next(self._counter), st)
        heap = self._done_tasks
        if len(heap) < self.top:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)

    def _site(self, location: str) -> _Site:
        site = self.sites.get(location)
        if site is None:
            if len(self.sites) >= self.max_sites:
                location = _OTHER
                site = self.sites.get(location)
            if site is None:
                site = self.sites[location] = _Site()
        return site

    def _on_suspend(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        st = self._task(rec, pid, ts)
        location = frame_location(rec.get("frames"), innermost=self.innermost)
        site = self._site(location)
        if location not in self.sites:
            location = _OTHER  # past max_sites
        site.suspends += 1
        awaiting = rec.get("awaiting")
        if type(awaiting) is dict:
            kind = awaiting.get("type")
            if type(kind) is str:
                _bump(site.awaiting, kind, limit=_MAX_AWAITING_TYPES)
        step = _number(rec.get("step_ms"))
        if rec.get("slow") is not None:
            self.slow_steps += 1  # flagged by the capture (a step over its threshold)
        resumed_at = None
        if st is not None:
            st.switches += 1
            st.waiting_at = location
            resumed_at = st.resumed_at
            st.resumed_at = None
        if step is None:
            return
        self.all_steps.add(step)
        if resumed_at is None:
            # The resume is not in the log (sampled out, or slow-only capture): the capture
            # may still say where the step began.
            resumed_at = place_text(rec.get("resumed_at"))
        if st is not None:
            st.run_ms += step
        heap = self._steps
        if len(heap) < self.top or step > heap[0][0]:
            entry = (
                step,
                next(self._counter),
                {
                    "step_ms": step,
                    "pid": pid,
                    "task": st.name if st is not None else None,
                    "task_id": st.id if st is not None else None,
                    "resumed_at": resumed_at,
                    "suspended_at": location,
                    "timestamp": ts,
                },
            )
            if len(heap) < self.top:
                heapq.heappush(heap, entry)
            else:
                heapq.heapreplace(heap, entry)

    def _on_resume(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        st = self._task(rec, pid, ts)
        location = frame_location(rec.get("frames"), innermost=self.innermost)
        site = self._site(location)
        site.resumes += 1
        exception = rec.get("exception")
        if exception is not None:
            _bump(site.exceptions, str(exception), limit=_MAX_AWAITING_TYPES)
        waited = _number(rec.get("waited_ms"))
        if waited is not None:
            site.waits.add(waited)
            self.all_waits.add(waited)
        if st is not None:
            st.resumes += 1
            st.resumed_at = location
            st.waiting_at = None
            if waited is not None:
                st.wait_ms += waited
            if exception is not None:
                st.exceptions += 1

    def _on_dropped(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        count = rec.get("count")
        reason = rec.get("reason")
        _bump(
            self.dropped,
            reason if type(reason) is str else "<unknown>",
            by=count if type(count) is int and count > 0 else 0,
        )

    def _blocked_key(self, rec: dict[str, Any], pid: object) -> tuple[object, object]:
        thread = rec.get("thread_id")
        if type(thread) is not int:
            thread = rec.get("thread")
            if type(thread) is not str:
                thread = None
        return (pid, thread)

    def _on_blocked(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        key = self._blocked_key(rec, pid)
        blocked = _number(rec.get("blocked_ms")) or 0.0
        incident = self._blocked_open.get(key)
        if incident is None:
            task = rec.get("task")
            incident = {
                "blocked_ms": blocked,
                "pid": pid,
                "thread": rec.get("thread"),
                "task": task.get("name") if type(task) is dict else None,
                "where": _stack_location(rec.get("stack"), self.innermost),
                "timestamp": ts,
                "unfinished": True,
            }
            if len(self._blocked_open) < 65_536:
                self._blocked_open[key] = incident
        elif blocked > incident["blocked_ms"]:
            incident["blocked_ms"] = blocked

    def _on_unblocked(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        key = self._blocked_key(rec, pid)
        incident = self._blocked_open.pop(key, None)
        if incident is None:
            task = rec.get("task")
            incident = {
                "blocked_ms": 0.0,
                "pid": pid,
                "thread": rec.get("thread"),
                "task": task.get("name") if type(task) is dict else None,
                "where": _stack_location(rec.get("stack"), self.innermost),
                "timestamp": ts,
            }
        total = _number(rec.get("blocked_ms"))
        if total is not None:
            incident["blocked_ms"] = total
        incident["unfinished"] = False
        self._end_incident(incident)

    def _end_incident(self, incident: dict[str, Any]) -> None:
        self.blocked_count += 1
        self.blocked_total += incident["blocked_ms"]
        if incident["unfinished"]:
            self.blocked_unfinished += 1
        entry = (incident["blocked_ms"], next(self._counter), incident)
        heap = self._blocked
        if len(heap) < self.top:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)

    def _on_task_done(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        st = self._task(rec, pid, ts)
        if st is None:
            return
        if st.switches == 0 and st.resumes == 0:
            # Known only from its end: take its totals from the record.
            st.switches = int(_number(rec.get("switches")) or 0)
            st.run_ms = _number(rec.get("run_ms")) or 0.0
            st.wait_ms = _number(rec.get("wait_ms")) or 0.0
        outcome = rec.get("outcome")
        st.outcome = outcome
        st.age_ms = _number(rec.get("age_ms"))
        st.waiting_at = None
        _bump(self.outcomes, str(outcome), limit=_MAX_AWAITING_TYPES)
        self.tasks.pop((st.pid, st.id), None)
        self._retire(st)

    def _on_slow_step(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        self.slow_steps += 1

    def _on_stuck(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        self.stuck += 1

    # -- results --------------------------------------------------------------------------

    def result(self, stats: ReadStats | None = None, files: Sequence[str] = ()) -> dict[str, Any]:
        """The report as a JSON-ready dict (what ``--json`` prints); call once, at the end."""
        waiting_now: dict[str, int] = {}
        for st in self.tasks.values():
            if st.waiting_at is not None:
                waiting_now[st.waiting_at] = waiting_now.get(st.waiting_at, 0) + 1
        sites = []
        for location, site in self.sites.items():
            w = site.waits
            sites.append(
                {
                    "site": location,
                    "waits": w.count,
                    "total_ms": _r(w.total),
                    "mean_ms": _r(w.mean),
                    "p50_ms": _r(w.quantile(50)),
                    "p99_ms": _r(w.quantile(99)),
                    "max_ms": _r(w.max) if w.count else None,
                    "exact": w.exact,
                    "suspends": site.suspends,
                    "resumes": site.resumes,
                    "exceptions": dict(site.exceptions),
                    "awaiting": dict(sorted(site.awaiting.items(), key=lambda kv: -kv[1])),
                    "waiting_at_end": waiting_now.get(location, 0),
                }
            )
        site_key = _SITE_KEYS[self.sort_sites]
        sites.sort(key=lambda s: (site_key(s), s["site"]), reverse=True)

        steps = [entry[2] for entry in sorted(self._steps, key=lambda e: (-e[0], e[1]))]
        for step in steps:
            step["step_ms"] = _r(step["step_ms"])

        live = list(self.tasks.values())
        self.tasks.clear()
        for st in live:
            self._retire(st)
        tasks = [e[2].as_dict() for e in sorted(self._done_tasks, key=lambda e: (e[0], -e[1]))]
        tasks.reverse()

        for incident in self._blocked_open.values():
            self._end_incident(incident)
        self._blocked_open.clear()
        blocked = [e[2] for e in sorted(self._blocked, key=lambda e: (-e[0], e[1]))]
        for incident in blocked:
            incident["blocked_ms"] = _r(incident["blocked_ms"])

        seq = []
        for pid, tracker in sorted(self.seqs.items(), key=lambda kv: str(kv[0])):
            seq.append(
                {
                    "pid": pid,
                    "first": tracker.first,
                    "last": tracker.last,
                    "records": tracker.seen,
                    "missing": tracker.missing,
                    "duplicates": tracker.duplicates,
                }
            )

        first_us = timestamp_us(self.first_ts)
        last_us = timestamp_us(self.last_ts)
        known = set(self._handlers) | {"snapshot"}
        return {
            "input": {"paths": list(files), **(stats.as_dict() if stats is not None else {})},
            "span": {
                "first": self.first_ts,
                "last": self.last_ts,
                "seconds": (
                    round((last_us - first_us) / 1e6, 6)
                    if first_us is not None and last_us is not None
                    else None
                ),
            },
            "events": dict(sorted(self.events.items(), key=lambda kv: (-kv[1], kv[0]))),
            "unknown_events": {k: v for k, v in sorted(self.events.items()) if k not in known},
            "options": {
                "top": self.top,
                "innermost": self.innermost,
                "sort_tasks": self.sort_tasks,
                "sort_sites": self.sort_sites,
                "exact_limit": EXACT_LIMIT,
                "relative_error": RELATIVE_ERROR,
            },
            "waits": _summary(self.all_waits),
            "steps": _summary(self.all_steps),
            "await_sites": sites[: self.top],
            "await_sites_total": len(sites),
            "slowest_steps": steps,
            "tasks": {
                "seen": self.tasks_seen,
                "evicted": self.tasks_evicted,
                "sort": self.sort_tasks,
                "outcomes": dict(self.outcomes),
                "top": tasks,
            },
            "blocked": {
                "incidents": self.blocked_count,
                "unfinished": self.blocked_unfinished,
                "total_ms": _r(self.blocked_total),
                "longest": blocked,
            },
            "drops": {
                "reported": sum(self.dropped.values()),
                "by_reason": dict(sorted(self.dropped.items())),
                "missing_seq": sum(s["missing"] for s in seq),
                "seq": seq,
            },
            "alerts": {"slow_step": self.slow_steps, "stuck": self.stuck},
        }


def _summary(sketch: QuantileSketch) -> dict[str, Any]:
    return {
        "count": sketch.count,
        "total_ms": _r(sketch.total),
        "mean_ms": _r(sketch.mean),
        "p50_ms": _r(sketch.quantile(50)),
        "p99_ms": _r(sketch.quantile(99)),
        "max_ms": _r(sketch.max) if sketch.count else None,
        "exact": sketch.exact,
    }


# -- text rendering -------------------------------------------------------------------------

_LOCATION_WIDTH = 72


def _ms(value: object) -> str:
    if type(value) is float or type(value) is int:
        return f"{value:,.3f}"
    return "-"


def _count(value: object) -> str:
    return f"{value:,}" if type(value) is int else "-"


def _elide(text: object, width: int = _LOCATION_WIDTH) -> str:
    if text is None:
        return "-"
    s = str(text)
    return s if len(s) <= width else "..." + s[-(width - 3) :]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: str) -> list[str]:
    """Rows under headers; columns whose letter in ``right`` is ``r`` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    last = len(headers) - 1
    out = []
    for row in (headers, *rows):
        cells = []
        for i, cell in enumerate(row):
            if right[i] == "r":
                cells.append(cell.rjust(widths[i]))
            elif i == last:
                cells.append(cell)
            else:
                cells.append(cell.ljust(widths[i]))
        out.append("  " + "  ".join(cells).rstrip())
    return out


def _task_label(name: object, task_id: object) -> str:
    return f"{name if name is not None else '?'} #{task_id}"


def _clock(first: str | None, last: str | None) -> Callable[[object], str]:
    """Formats timestamps for the tables: without the date when the whole log is one day."""
    day = first[:11] if first and last and first[:11] == last[:11] and first[10:11] == "T" else None

    def when(ts: object) -> str:
        if type(ts) is not str:
            return "-"
        return ts[11:] if day is not None and ts.startswith(day) else ts

    return when


def render_text(result: dict[str, Any]) -> str:
    """The human-readable report of a :meth:`ReportBuilder.result`."""
    lines: list[str] = []
    inp = result["input"]
    span = result["span"]
    when = _clock(span["first"], span["last"])
    skipped = inp.get("skipped", {})
    lines.append(
        f"coroscope report: {_count(inp.get('records'))} records from "
        f"{_count(inp.get('files'))} file(s), {inp.get('bytes', 0) / 1e6:,.1f} MB"
    )
    if skipped.get("total"):
        parts = [f"{skipped[k]:,} {k}" for k in ("foreign", "invalid", "truncated", "oversize")]
        lines.append(f"  skipped lines: {skipped['total']:,} ({', '.join(parts)})")
    if inp.get("recovered"):
        lines.append(f"  records recovered after a truncated one: {inp['recovered']:,}")
    for error in inp.get("errors", []):
        lines.append(f"  read error: {error}")
    if span["first"] is not None:
        seconds = span["seconds"]
        length = f" ({seconds:,.3f} s)" if seconds is not None else ""
        lines.append(f"  time: {span['first']} .. {span['last']}{length}")
    tasks = result["tasks"]
    waits, steps = result["waits"], result["steps"]
    lines.append(
        f"  tasks: {tasks['seen']:,}; waits: {waits['count']:,} "
        f"(p50 {_ms(waits['p50_ms'])} ms, p99 {_ms(waits['p99_ms'])} ms); "
        f"steps: {steps['count']:,} (p50 {_ms(steps['p50_ms'])} ms, "
        f"p99 {_ms(steps['p99_ms'])} ms)"
    )

    sites = result["await_sites"]
    lines.append("")
    lines.append(
        f"Await sites by {result['options']['sort_sites']} wait "
        f"(top {len(sites)} of {result['await_sites_total']})"
    )
    if sites:
        rows = [
            [
                _ms(s["total_ms"]),
                _count(s["waits"]),
                _ms(s["mean_ms"]),
                _ms(s["p50_ms"]) + ("" if s["exact"] else "~"),
                _ms(s["p99_ms"]) + ("" if s["exact"] else "~"),
                _ms(s["max_ms"]),
                _count(sum(s["exceptions"].values())) if s["exceptions"] else "",
                _count(s["waiting_at_end"]) if s["waiting_at_end"] else "",
                ",".join(s["awaiting"]) or "-",
                _elide(s["site"]),
            ]
            for s in sites
        ]
        headers = ["total ms", "waits", "mean ms", "p50 ms", "p99 ms", "max ms", "exc", "open"]
        lines.extend(_table([*headers, "awaiting", "site"], rows, "rrrrrrrrll"))
        notes = []
        if any(s["exceptions"] for s in sites):
            notes.append("exc: resumed by an exception (CancelledError...)")
        if any(s["waiting_at_end"] for s in sites):
            notes.append("open: tasks still waiting there at the end of the log")
        if any(not s["exact"] for s in sites):
            notes.append(f"~: estimated (over {EXACT_LIMIT:,} waits), within {RELATIVE_ERROR:.0%}")
        if notes:
            lines.append("  " + "; ".join(notes))
    else:
        lines.append("  (none)")

    lines.append("")
    lines.append("Slowest steps")
    if result["slowest_steps"]:
        rows = [
            [
                _ms(s["step_ms"]),
                _task_label(s["task"], s["task_id"]),
                _elide(s["resumed_at"] or "(start)", 48),
                _elide(s["suspended_at"], 48),
                when(s["timestamp"]),
            ]
            for s in result["slowest_steps"]
        ]
        lines.extend(
            _table(["step ms", "task", "resumed at", "suspended at", "ended"], rows, "rllll")
        )
    else:
        lines.append("  (none)")

    lines.append("")
    shown = tasks["top"]
    evicted = f"; {tasks['evicted']:,} retired early (memory bound)" if tasks["evicted"] else ""
    lines.append(
        f"Tasks by {tasks['sort']} time (top {len(shown)} of {tasks['seen']:,}{evicted})"
        if tasks["sort"] != "switches"
        else f"Tasks by switches (top {len(shown)} of {tasks['seen']:,}{evicted})"
    )
    if shown:
        rows = [
            [
                _task_label(t["name"], t["task_id"]),
                str(t["pid"]),
                _count(t["switches"]),
                _ms(t["run_ms"]),
                _ms(t["wait_ms"]),
                when(t["first_seen"]),
                when(t["last_seen"]),
                str(t["outcome"]) if t["outcome"] is not None else "",
            ]
            for t in shown
        ]
        lines.extend(
            _table(
                [
                    "task",
                    "pid",
                    "switches",
                    "run ms",
                    "wait ms",
                    "first seen",
                    "last seen",
                    "outcome",
                ],
                rows,
                "lrrrrlll",
            )
        )
    else:
        lines.append("  (none)")

    blocked = result["blocked"]
    lines.append("")
    unfinished = f", {blocked['unfinished']} unfinished" if blocked["unfinished"] else ""
    lines.append(
        f"Blocked loop: {blocked['incidents']:,} incident(s), {_ms(blocked['total_ms'])} ms "
        f"in total{unfinished}"
    )
    if blocked["longest"]:
        rows = [
            [
                _ms(b["blocked_ms"]) + ("+" if b["unfinished"] else ""),
                str(b["pid"]),
                str(b["thread"]) if b["thread"] is not None else "-",
                str(b["task"]) if b["task"] is not None else "-",
                when(b["timestamp"]),
                _elide(b["where"], 60),
            ]
            for b in blocked["longest"]
        ]
        lines.extend(
            _table(["blocked ms", "pid", "thread", "task", "detected", "where"], rows, "rrllll")
        )
        if blocked["unfinished"]:
            lines.append("  +: still blocked at the end of the log (duration so far)")

    drops = result["drops"]
    lines.append("")
    reasons = ", ".join(f"{k} {v:,}" for k, v in drops["by_reason"].items())
    lines.append(
        f"Drops: {drops['reported']:,} record(s) reported dropped"
        + (f" ({reasons})" if reasons else "")
        + f"; {drops['missing_seq']:,} missing seq number(s)"
    )
    for s in drops["seq"]:
        dup = f", {s['duplicates']:,} duplicate(s)" if s["duplicates"] else ""
        lines.append(
            f"  pid {s['pid']}: seq {s['first']}..{s['last']}, {s['records']:,} records, "
            f"{s['missing']:,} missing{dup}"
        )

    lines.append("")
    events = ", ".join(f"{k} {v:,}" for k, v in result["events"].items())
    lines.append(f"Events: {events or '(none)'}")
    if result["unknown_events"]:
        unknown = ", ".join(result["unknown_events"])
        lines.append(f"  not understood (counted only): {unknown}")
    outcomes = tasks["outcomes"]
    if outcomes:
        lines.append("  task outcomes: " + ", ".join(f"{k} {v:,}" for k, v in outcomes.items()))
    alerts = result["alerts"]
    if alerts["slow_step"] or alerts["stuck"]:
        lines.append(
            f"  flagged by the capture: {alerts['slow_step']:,} slow step(s), "
            f"{alerts['stuck']:,} stuck task report(s)"
        )
    return "\n".join(lines) + "\n"


# -- command line ---------------------------------------------------------------------------


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help="coroscope logs (plain or gzip; '-' for stdin)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--top", type=_positive, default=20, metavar="N", help="rows per table (default 20)"
    )
    parser.add_argument(
        "--innermost",
        action="store_true",
        help="locate waits at the innermost frame, even inside asyncio (default: the "
        "innermost frame outside asyncio's own files)",
    )
    parser.add_argument(
        "--sort-sites",
        choices=tuple(_SITE_KEYS),
        default="total",
        help="order of the await-site table (default: total wait)",
    )
    parser.add_argument(
        "--sort-tasks",
        choices=tuple(_TASK_KEYS),
        default="run",
        help="order of the task table (default: run time)",
    )
    parser.add_argument(
        "--max-tasks",
        type=_positive,
        default=100_000,
        metavar="N",
        help="live tasks tracked at once; the least recently seen are retired beyond it "
        "(default 100000)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show progress on stderr (default: only when stderr is a terminal)",
    )


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a whole number greater than 0") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("expected a whole number greater than 0")
    return value


def _want_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    """Run ``coroscope report`` with parsed arguments; returns the exit code."""
    problems = check_inputs(args.files)
    if problems:
        for problem in problems:
            print(f"coroscope report: {problem}", file=sys.stderr)
        return 1
    progress = Progress(
        enabled=_want_progress(args.progress),
        label="coroscope report",
        final=args.progress is True,
    )
    reader = LogReader(args.files, progress=progress)
    builder = ReportBuilder(
        top=args.top,
        innermost=args.innermost,
        max_tasks=args.max_tasks,
        sort_tasks=args.sort_tasks,
        sort_sites=args.sort_sites,
    )
    feed = builder.feed
    try:
        for record in reader:
            feed(record)
    except KeyboardInterrupt:
        print("\ncoroscope report: interrupted", file=sys.stderr)
        return 130
    result = builder.result(reader.stats, args.files)
    for error in reader.stats.errors:
        print(f"coroscope report: warning: {error}", file=sys.stderr)
    if reader.stats.records == 0:
        print("coroscope report: warning: no coroscope records found", file=sys.stderr)
    try:
        if args.json:
            sys.stdout.flush()
            sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(render_text(result))
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``): not an error; silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


_DESCRIPTION = (
    "Summarise coroscope logs: await sites (total, p50/p99 wait), slowest steps, per-task "
    "switches and run/wait time, blocked-loop incidents and dropped records.  Reads plain "
    "or gzip JSON lines ('-' for stdin), skipping and counting lines that are not "
    "coroscope records.  Memory stays bounded on inputs of any size."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand to the ``coroscope`` command line."""
    parser = subparsers.add_parser(
        "report", help="summary tables from coroscope logs", description=_DESCRIPTION
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``coroscope report`` on its own: parse ``argv`` and run."""
    parser = argparse.ArgumentParser(prog="coroscope report", description=_DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
