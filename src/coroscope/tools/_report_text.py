"""The text of ``coroscope report``: aligned tables from a report's result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._stats import EXACT_LIMIT, RELATIVE_ERROR

__all__ = ["render_text"]

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
    deadlocks = result.get("deadlocks") or []
    if deadlocks:  # first: nothing else in the report matters as much
        lines.append("")
        lines.append(f"DEADLOCKS: {len(deadlocks):,} (tasks waiting in a cycle for locks)")
        rows = [
            [
                f"{d['stood_s']:,.1f}" if d["stood_s"] is not None else "-",
                str(d["pid"]),
                ", ".join(d["tasks"]),
                ", ".join(d["locks"]),
                when(d["timestamp"]),
                _elide(d["where"], 50),
            ]
            for d in deadlocks
        ]
        lines.extend(
            _table(
                ["stood s", "pid", "tasks", "locks", "detected", "first waits at"], rows, "rrllll"
            )
        )
        lines.append("")
    lines.extend(_incidents(result, when))
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

    stuck = result.get("stuck") or []
    lines.append("")
    lines.append(f"Stuck tasks: {len(stuck):,}" + (" (longest wait first)" if stuck else ""))
    if stuck:
        rows = [
            [
                f"{t['suspended_s']:,.1f}",
                _task_label(t["task"], t["task_id"]),
                str(t["pid"]),
                str(t["reports"]),
                str(t["awaiting"]) if t["awaiting"] is not None else "-",
                _elide(t["where"], 60),
            ]
            for t in stuck
        ]
        lines.extend(
            _table(["waiting s", "task", "pid", "reports", "awaiting", "where"], rows, "rllrll")
        )

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


def _incidents(result: dict[str, Any], when: Callable[[object], str]) -> list[str]:
    """The incidents table (recorder mode): what fired and what led up to it."""
    incidents = result.get("incidents") or []
    if not incidents:
        return []
    only = result.get("only_incident")
    title = f"Incident {only}" if only is not None else f"Incidents: {len(incidents):,}"
    lines = ["", title + " (recorder mode; each is followed by the records that led up to it)"]
    rows = []
    for i in incidents:
        tasks = ", ".join(f"{t['task']} x{t['switches']}" for t in i["tasks"])
        if i["tasks_total"] > len(i["tasks"]):
            tasks += f" (+{i['tasks_total'] - len(i['tasks'])})"
        step = i["slowest_steps"][0] if i["slowest_steps"] else None
        wait = i["awaits"][0] if i["awaits"] else None
        rows.append(
            [
                str(i["id"]),
                str(i["pid"]),
                str(i["trigger"]),
                _elide(str(i["reason"]), 24),
                when(i["timestamp"]),
                f"{i['records'] or 0:,}",
                _elide(tasks or "-", 40),
                f"{step['step_ms']:,.1f} ms {_elide(step['where'], 36)}" if step else "-",
                f"{wait['waited_ms']:,.1f} ms {_elide(wait['where'], 36)}" if wait else "-",
            ]
        )
    lines.extend(
        _table(
            [
                "id",
                "pid",
                "trigger",
                "reason",
                "at",
                "records",
                "tasks that ran",
                "slowest step",
                "longest await",
            ],
            rows,
            "rrlllrlll",
        )
    )
    return lines
