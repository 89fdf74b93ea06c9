"""``coroscope report``: summary tables from coroscope logs, in one streaming pass.

:class:`ReportBuilder` reads records one at a time and keeps:

* **await sites** -- where tasks waited (the innermost non-asyncio frame of the resume's
  chain): count, total, mean, p50, p99 and max wait;
* **slowest steps** -- the longest runs between two switches (or a switch and the task's
  end), with where the step started (its resume site) and where it ended;
* **tasks** -- per task: switches, run time, wait time, first and last seen;
* **blocked loop** -- ``loop.blocked`` / ``loop.unblocked`` incidents;
* **drops** -- records the writer reported ``dropped``, and gaps in ``seq`` numbers.

Memory is bounded whatever the size of the input: per await site a quantile sketch (exact
up to :data:`~._stats.EXACT_LIMIT` samples, then log-scale buckets with at most 1%
relative error), a top-N heap of steps, at most ``--max-tasks`` live tasks (least
recently seen ones are retired into a top-N table), and per process a compacted interval
set of ``seq`` numbers.  :mod:`._report_text` prints the result; :mod:`._report_cli` is
the command.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .. import _schema as S
from ._logread import ReadStats
from ._places import frame_location, place_text, timestamp_us
from ._report_alerts import Alerts
from ._report_incidents import Incidents
from ._report_items import SITE_ORDERS, TASK_ORDERS, Site, TaskStats, number, rounded
from ._stats import EXACT_LIMIT, RELATIVE_ERROR, QuantileSketch, SeqTracker

__all__ = ["ReportBuilder"]

_MAX_EVENT_NAMES = 256
_MAX_AWAITING_TYPES = 8
_OTHER = "<other>"


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
        incident: int | None = None,
    ) -> None:
        #: Only the records of this incident (``--incident ID``), or every record.
        self.only_incident = incident
        if sort_tasks not in TASK_ORDERS:
            raise ValueError(f"sort_tasks must be one of {', '.join(TASK_ORDERS)}")
        if sort_sites not in SITE_ORDERS:
            raise ValueError(f"sort_sites must be one of {', '.join(SITE_ORDERS)}")
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
        self.sites: dict[str, Site] = {}
        self.all_waits = QuantileSketch()
        self.all_steps = QuantileSketch()
        self._steps: list[tuple[float, int, dict[str, Any]]] = []
        self.tasks: OrderedDict[tuple[object, object], TaskStats] = OrderedDict()
        self.tasks_seen = 0
        self.tasks_evicted = 0
        self._task_key = TASK_ORDERS[sort_tasks]
        self._done_tasks: list[tuple[tuple[float, ...], int, TaskStats]] = []
        self.outcomes: dict[str, int] = {}
        self._blocked_open: dict[tuple[object, object], dict[str, Any]] = {}
        self._blocked: list[tuple[float, int, dict[str, Any]]] = []
        self.blocked_count = 0
        self.blocked_total = 0.0
        self.blocked_unfinished = 0
        self.dropped: dict[str, int] = {}
        self.seqs: dict[object, SeqTracker] = {}
        self.slow_steps = 0
        self.alerts = Alerts(innermost)
        self.incidents = Incidents(innermost)
        self._handlers: dict[str, Callable[[dict[str, Any], object, str | None], None]] = {
            S.SUSPEND: self._on_suspend,
            S.RESUME: self._on_resume,
            S.END: self._on_end,
            S.DROPPED: self._on_dropped,
            S.LOOP_BLOCKED: self._on_blocked,
            S.LOOP_UNBLOCKED: self._on_unblocked,
            S.TASK_DONE: self._on_task_done,
            S.TASK_STUCK: self.alerts.on_stuck,
            S.DEADLOCK: self.alerts.on_deadlock,
        }

    # -- consuming ------------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        """Account for one coroscope record."""
        incident = rec.get(S.INCIDENT_ID)
        if self.only_incident is not None and incident != self.only_incident:
            return
        event = rec.get(S.EVENT)
        if type(event) is not str:
            event = "<no event>"
        events = self.events
        n = events.get(event)
        if n is not None:
            events[event] = n + 1
        else:
            _bump(events, event)
        pid = rec.get(S.PID)
        seq = rec.get(S.SEQ)
        if type(seq) is int and (type(pid) is int or pid is None):
            tracker = self.seqs.get(pid)
            if tracker is None:
                tracker = self.seqs[pid] = SeqTracker()
            tracker.add(seq)
        ts = rec.get(S.TIMESTAMP)
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
        if incident is not None:
            self.incidents.feed(rec, pid, ts)

    def _task(self, rec: dict[str, Any], pid: object, ts: str | None) -> TaskStats | None:
        task = rec.get(S.TASK)
        if type(task) is not dict:
            return None
        task_id = task.get(S.ID)
        if type(task_id) is not int and type(task_id) is not str:
            return None
        name = task.get(S.NAME)
        key = (pid, task_id)
        tasks = self.tasks
        st = tasks.get(key)
        if st is not None and name is not None and st.name != name:
            # Ids are unique only for a task's life: another name means another task.
            self._retire(tasks.pop(key))
            st = None
        if st is None:
            st = TaskStats(pid, task_id, name, ts)
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

    def _retire(self, st: TaskStats) -> None:
        entry = (self._task_key(st), next(self._counter), st)
        heap = self._done_tasks
        if len(heap) < self.top:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)

    def _site(self, location: str) -> Site:
        site = self.sites.get(location)
        if site is None:
            if len(self.sites) >= self.max_sites:
                location = _OTHER
                site = self.sites.get(location)
            if site is None:
                site = self.sites[location] = Site()
        return site

    def _on_suspend(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        st = self._task(rec, pid, ts)
        location = frame_location(rec.get(S.FRAMES), innermost=self.innermost)
        site = self._site(location)
        if location not in self.sites:
            location = _OTHER  # past max_sites
        site.suspends += 1
        awaiting = rec.get(S.AWAITING)
        if type(awaiting) is dict:
            kind = awaiting.get(S.TYPE)
            if type(kind) is str:
                _bump(site.awaiting, kind, limit=_MAX_AWAITING_TYPES)
        if st is not None:
            st.switches += 1
            st.waiting_at = location
        self._step(rec, st, pid, ts, location)

    def _on_end(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        """A task's final step (logged when it was slow): a step like the others."""
        st = self._task(rec, pid, ts)
        location = frame_location(rec.get(S.FRAMES), innermost=self.innermost)
        if st is not None:
            st.waiting_at = None
        self._step(rec, st, pid, ts, f"{location} (end)")

    def _step(
        self, rec: dict[str, Any], st: TaskStats | None, pid: object, ts: str | None, location: str
    ) -> None:
        """Account for the step a ``suspend`` or ``end`` record closes."""
        step = number(rec.get(S.STEP_MS))
        if rec.get(S.SLOW) is not None:
            self.slow_steps += 1  # flagged by the capture (a step over its threshold)
        resumed_at = None
        if st is not None:
            resumed_at = st.resumed_at
            st.resumed_at = None
        if step is None:
            return
        self.all_steps.add(step)
        if resumed_at is None:
            # The resume is not in the log (sampled out, or slow-only capture): the capture
            # may still say where the step began.
            resumed_at = place_text(rec.get(S.RESUMED_AT))
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
        frames = rec.get(S.FRAMES)
        if frames is None and st is not None and st.waiting_at is not None:
            location = st.waiting_at  # it names its suspend (suspend_seq): the same place
        else:
            location = frame_location(frames, innermost=self.innermost)
        site = self._site(location)
        site.resumes += 1
        exception = rec.get(S.EXCEPTION)
        if exception is not None:
            _bump(site.exceptions, str(exception), limit=_MAX_AWAITING_TYPES)
        waited = number(rec.get(S.WAITED_MS))
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
        count = rec.get(S.COUNT)
        reason = rec.get(S.REASON)
        _bump(
            self.dropped,
            reason if type(reason) is str else "<unknown>",
            by=count if type(count) is int and count > 0 else 0,
        )

    def _blocked_key(self, rec: dict[str, Any], pid: object) -> tuple[object, object]:
        thread = rec.get(S.THREAD_ID)
        if type(thread) is not int:
            thread = rec.get(S.THREAD)
            if type(thread) is not str:
                thread = None
        return (pid, thread)

    def _on_blocked(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        key = self._blocked_key(rec, pid)
        blocked = number(rec.get(S.BLOCKED_MS)) or 0.0
        incident = self._blocked_open.get(key)
        if incident is None:
            task = rec.get(S.TASK)
            incident = {
                "blocked_ms": blocked,
                "pid": pid,
                "thread": rec.get(S.THREAD),
                "task": task.get(S.NAME) if type(task) is dict else None,
                "where": _stack_location(rec.get(S.STACK), self.innermost),
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
            task = rec.get(S.TASK)
            incident = {
                "blocked_ms": 0.0,
                "pid": pid,
                "thread": rec.get(S.THREAD),
                "task": task.get(S.NAME) if type(task) is dict else None,
                "where": _stack_location(rec.get(S.STACK), self.innermost),
                "timestamp": ts,
            }
        total = number(rec.get(S.BLOCKED_MS))
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
            st.switches = int(number(rec.get(S.SWITCHES)) or 0)
            st.run_ms = number(rec.get(S.RUN_MS)) or 0.0
            st.wait_ms = number(rec.get(S.WAIT_MS)) or 0.0
        outcome = rec.get(S.OUTCOME)
        st.outcome = outcome
        st.age_ms = number(rec.get(S.AGE_MS))
        st.waiting_at = None
        _bump(self.outcomes, str(outcome), limit=_MAX_AWAITING_TYPES)
        self.tasks.pop((st.pid, st.id), None)
        self._retire(st)

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
                    "total_ms": rounded(w.total),
                    "mean_ms": rounded(w.mean),
                    "p50_ms": rounded(w.quantile(50)),
                    "p99_ms": rounded(w.quantile(99)),
                    "max_ms": rounded(w.max) if w.count else None,
                    "exact": w.exact,
                    "suspends": site.suspends,
                    "resumes": site.resumes,
                    "exceptions": dict(site.exceptions),
                    "awaiting": dict(sorted(site.awaiting.items(), key=lambda kv: -kv[1])),
                    "waiting_at_end": waiting_now.get(location, 0),
                }
            )
        site_key = SITE_ORDERS[self.sort_sites]
        sites.sort(key=lambda s: (site_key(s), s["site"]), reverse=True)

        steps = [entry[2] for entry in sorted(self._steps, key=lambda e: (-e[0], e[1]))]
        for step in steps:
            step["step_ms"] = rounded(step["step_ms"])

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
            incident["blocked_ms"] = rounded(incident["blocked_ms"])

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
        known = set(self._handlers) | {S.SNAPSHOT, S.SNAPSHOT_SUMMARY, S.NEVER_AWAITED}
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
                "total_ms": rounded(self.blocked_total),
                "longest": blocked,
            },
            "drops": {
                "reported": sum(self.dropped.values()),
                "by_reason": dict(sorted(self.dropped.items())),
                "missing_seq": sum(s["missing"] for s in seq),
                "seq": seq,
            },
            "alerts": {"slow_step": self.slow_steps, "stuck": self.alerts.stuck_reports},
            "stuck": self.alerts.stuck(),
            "deadlocks": self.alerts.deadlocks,
            "incidents": self.incidents.result(),
            "only_incident": self.only_incident,
        }


def _summary(sketch: QuantileSketch) -> dict[str, Any]:
    return {
        "count": sketch.count,
        "total_ms": rounded(sketch.total),
        "mean_ms": rounded(sketch.mean),
        "p50_ms": rounded(sketch.quantile(50)),
        "p99_ms": rounded(sketch.quantile(99)),
        "max_ms": rounded(sketch.max) if sketch.count else None,
        "exact": sketch.exact,
    }
