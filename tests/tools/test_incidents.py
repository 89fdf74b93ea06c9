"""``coroscope report`` and ``trace`` on recorder-mode incidents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from coroscope.tools import _report_cli, _trace_cli


def _frames(line: int) -> list[dict[str, Any]]:
    return [{"function": "handler", "file": "app.py", "line": line, "lasti": 10, "blocks": []}]


def _rec(seq: int, event: str, second: int, **fields: Any) -> dict[str, Any]:
    return {
        "event": event,
        "level": "info",
        "logger": "coroscope",
        "timestamp": f"2026-12-02T10:00:{second:02d}.000000Z",
        "pid": 7,
        "thread": "MainThread",
        "thread_id": 1,
        "seq": seq,
        **fields,
    }


def _task(name: str, task_id: int) -> dict[str, Any]:
    return {"task": {"name": name, "id": task_id}}


LOG = [
    _rec(
        30,
        "incident",
        10,
        incident_id=1,
        trigger="loop.blocked",
        reason="loop.blocked",
        window_s=10.0,
        records=5,
        suppressed=0,
    ),
    _rec(1, "suspend", 1, incident_id=1, frames=_frames(5), step_ms=2.0, **_task("a", 1)),
    _rec(2, "suspend", 2, incident_id=1, frames=_frames(6), step_ms=40.0, **_task("b", 2)),
    _rec(3, "resume", 3, incident_id=1, suspend_seq=1, waited_ms=900.0, **_task("a", 1)),
    _rec(4, "suspend", 4, incident_id=1, frames=_frames(5), step_ms=1.0, **_task("a", 1)),
    _rec(5, "loop.blocked", 9, incident_id=1, blocked_ms=500.0, **_task("a", 1)),
    _rec(
        40,
        "incident",
        20,
        incident_id=2,
        trigger="dump",
        reason="by hand",
        window_s=10.0,
        records=1,
        suppressed=3,
    ),
    _rec(31, "suspend", 15, incident_id=2, frames=_frames(9), step_ms=7.0, **_task("c", 3)),
]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "incidents.log"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in LOG))
    return path


def _report(args: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    assert _report_cli.main([*args, "--json"]) == 0
    return orjson.loads(capsys.readouterr().out)


def test_report_lists_incidents_with_what_led_up_to_them(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _report([str(log)], capsys)["incidents"]
    assert (first["id"], first["trigger"], first["records"]) == (1, "loop.blocked", 5)
    assert first["tasks"] == [{"task": "a", "switches": 2}, {"task": "b", "switches": 1}]
    assert first["slowest_steps"][0] == {"step_ms": 40.0, "task": "b", "where": "app.py:6 handler"}
    assert first["awaits"] == [{"where": "app.py:5 handler", "waited_ms": 900.0}]
    assert (second["id"], second["reason"], second["suppressed"]) == (2, "by hand", 3)
    assert second["tasks"] == [{"task": "c", "switches": 1}]


def test_report_of_one_incident(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _report([str(log), "--incident", "2"], capsys)
    assert [i["id"] for i in result["incidents"]] == [2]
    assert result["steps"]["count"] == 1  # only that incident's records count
    assert _report_cli.main([str(log)]) == 0
    text = capsys.readouterr().out
    assert "Incidents: 2" in text and "loop.blocked" in text and "by hand" in text


def test_trace_marks_incidents(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    assert _trace_cli.main([str(log), "-o", str(out)]) == 0
    events = orjson.loads(out.read_bytes())["traceEvents"]
    marks = [e for e in events if e.get("cat") == "incident"]
    assert [(e["name"], e["s"]) for e in marks] == [
        ("incident 1: loop.blocked", "p"),
        ("incident 2: dump", "p"),
    ]
    assert _trace_cli.main([str(log), "-o", str(out), "--incident", "2"]) == 0
    events = orjson.loads(out.read_bytes())["traceEvents"]
    assert [e["name"] for e in events if e.get("cat") == "incident"] == ["incident 2: dump"]
    assert not any(e.get("name", "").startswith("wait") and "app.py:5" in e["name"] for e in events)
