"""What ``coroscope report`` gathers of the capture's alerts: stuck tasks and deadlocks."""

from __future__ import annotations

from typing import Any

from .. import _schema as S
from ._places import frame_location
from ._report_items import number

__all__ = ["Alerts"]

_MAX_STUCK = 65_536  # stuck tasks remembered
_TOP = 20  # stuck tasks and deadlocks shown (longest wait first; first found)


class Alerts:
    """Stuck tasks (per task, its longest reported wait) and deadlocks, as reported."""

    def __init__(self, innermost: bool) -> None:
        self.innermost = innermost
        self.stuck_reports = 0
        self._stuck: dict[tuple[object, object], dict[str, Any]] = {}
        self.deadlocks: list[dict[str, Any]] = []

    def on_stuck(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        self.stuck_reports += 1
        task = rec.get(S.TASK)
        task_id = task.get(S.ID) if type(task) is dict else None
        key = (pid, task_id)
        suspended = number(rec.get(S.SUSPENDED_S)) or 0.0
        known = self._stuck.get(key)
        if known is None:
            if len(self._stuck) >= _MAX_STUCK:
                return
            known = self._stuck[key] = {
                "task": task.get(S.NAME) if type(task) is dict else None,
                "task_id": task_id,
                "pid": pid,
                "reports": 0,
                "first_reported": ts,
            }
        elif suspended < known["suspended_s"]:
            return  # an older report of the same task (a new wait is reported afresh)
        awaiting = rec.get(S.AWAITING)
        known.update(
            reports=known["reports"] + 1,
            suspended_s=suspended,
            where=frame_location(rec.get(S.FRAMES), innermost=True),
            awaiting=awaiting.get(S.TYPE) if type(awaiting) is dict else None,
            last_reported=ts,
        )

    def on_deadlock(self, rec: dict[str, Any], pid: object, ts: str | None) -> None:
        if len(self.deadlocks) >= _TOP:
            return
        members = rec.get(S.TASKS)
        members = members if type(members) is list else []
        locks = rec.get(S.LOCKS)
        names = []
        for m in members:
            task = m.get(S.TASK) if type(m) is dict else None
            names.append(str(task.get(S.NAME)) if type(task) is dict else "?")
        first = members[0] if members and type(members[0]) is dict else {}
        self.deadlocks.append(
            {
                "pid": pid,
                "timestamp": ts,
                "tasks": names,
                "locks": [
                    str(lock.get(S.STATE) or lock.get(S.TYPE))
                    for lock in (locks if type(locks) is list else [])
                    if type(lock) is dict
                ],
                "stood_s": number(rec.get(S.STOOD_S)),
                "where": frame_location(first.get(S.FRAMES), innermost=self.innermost),
                "snapshot": rec.get(S.SNAPSHOT_ID) is not None,
            }
        )

    def stuck(self) -> list[dict[str, Any]]:
        """The stuck tasks, longest reported wait first."""
        return sorted(self._stuck.values(), key=lambda t: -t["suspended_s"])[:_TOP]
