"""What ``coroscope report`` gathers of recorder-mode incidents: what led up to each.

An ``incident`` record opens an incident; every record written for it carries its
``incident_id``.  Per incident (and process) the report keeps its trigger and reason,
the tasks that ran in its window (by number of switches), its slowest steps and the await
sites where its tasks waited longest.  Memory stays bounded: at most ``_MAX_INCIDENTS``
incidents, and a few rows of each.
"""

from __future__ import annotations

from typing import Any

from .. import _schema as S
from ._places import frame_location
from ._report_items import number

__all__ = ["Incidents", "incident_of"]

_MAX_INCIDENTS = 1_000
_ROWS = 3  # tasks, steps and awaits shown per incident
_MAX_KEYS = 1_000  # tasks and await sites counted per incident


def incident_of(rec: dict[str, Any]) -> object:
    """The ``incident_id`` a record was written for, or ``None``."""
    return rec.get(S.INCIDENT_ID)


class Incidents:
    """Incidents in the order they were written, with what their windows hold."""

    def __init__(self, innermost: bool) -> None:
        self.innermost = innermost
        self._by_key: dict[tuple[object, object], dict[str, Any]] = {}
        self.dropped = 0

    def _entry(self, pid: object, incident_id: object) -> dict[str, Any] | None:
        key = (pid, incident_id)
        entry = self._by_key.get(key)
        if entry is None:
            if len(self._by_key) >= _MAX_INCIDENTS:
                self.dropped += 1
                return None
            entry = self._by_key[key] = {
                "id": incident_id,
                "pid": pid,
                "trigger": None,
                "reason": None,
                "timestamp": None,
                "records": 0,
                "suppressed": 0,
                "first": None,
                "last": None,
                "_tasks": {},
                "_awaits": {},
                "_steps": [],
                "_last_site": {},  # task -> where its last suspend stood
            }
        return entry

    def feed(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        """Account for a record of an incident (``incident_id`` set)."""
        entry = self._entry(pid, incident_of(rec))
        if entry is None:
            return
        event = rec.get(S.EVENT)
        if event == S.INCIDENT:
            entry.update(
                trigger=rec.get(S.TRIGGER),
                reason=rec.get(S.REASON),
                timestamp=ts,
                records=rec.get(S.RECORDS),
                suppressed=rec.get(S.SUPPRESSED),
            )
            return
        if ts is not None:
            if entry["first"] is None or ts < entry["first"]:
                entry["first"] = ts
            if entry["last"] is None or ts > entry["last"]:
                entry["last"] = ts
        task = rec.get(S.TASK)
        name = task.get(S.NAME) if type(task) is dict else None
        if event in (S.SUSPEND, S.END):
            tasks = entry["_tasks"]
            if name in tasks or len(tasks) < _MAX_KEYS:
                tasks[name] = tasks.get(name, 0) + 1
            step = number(rec.get(S.STEP_MS))
            if step is not None:
                steps = entry["_steps"]
                steps.append(
                    (step, name, frame_location(rec.get(S.FRAMES), innermost=self.innermost))
                )
                steps.sort(key=lambda s: -s[0])
                del steps[_ROWS:]
            sites = entry["_last_site"]
            if event == S.SUSPEND and (name in sites or len(sites) < _MAX_KEYS):
                sites[name] = frame_location(rec.get(S.FRAMES), innermost=self.innermost)
        elif event == S.RESUME:
            waited = number(rec.get(S.WAITED_MS))
            site = entry["_last_site"].get(name)
            if waited is not None and site is not None:
                awaits = entry["_awaits"]
                if site in awaits or len(awaits) < _MAX_KEYS:
                    awaits[site] = awaits.get(site, 0.0) + waited

    def result(self) -> list[dict[str, Any]]:
        """Every incident, oldest first, with its top rows."""
        out = []
        for entry in self._by_key.values():
            tasks = sorted(entry["_tasks"].items(), key=lambda kv: (-kv[1], str(kv[0])))
            awaits = sorted(entry["_awaits"].items(), key=lambda kv: -kv[1])
            public = {k: v for k, v in entry.items() if not k.startswith("_")}
            public["tasks"] = [{"task": t, "switches": n} for t, n in tasks[:_ROWS]]
            public["tasks_total"] = len(tasks)
            public["slowest_steps"] = [
                {"step_ms": s, "task": t, "where": w} for s, t, w in entry["_steps"]
            ]
            public["awaits"] = [{"where": w, "waited_ms": round(ms, 3)} for w, ms in awaits[:_ROWS]]
            out.append(public)
        out.sort(key=lambda e: (str(e["timestamp"] or e["first"] or ""), str(e["pid"])))
        return out
