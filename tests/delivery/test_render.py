"""From records to JSON lines: the processor chain, timestamps and loss reporting."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog

from coroscope._threads import ThreadNames
from coroscope.delivery import EventBuilder, Renderer
from coroscope.delivery._clock import WallClock
from coroscope.testing import capture_records


async def _two_switches() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


class TestWallClock:
    """perf_counter readings become UTC wall-clock strings."""

    def test_iso_matches_time(self) -> None:
        """The ISO string of 'now' is within a few ms of time.time()."""
        import datetime

        clock = WallClock()
        stamp = clock.iso(time.perf_counter_ns())
        assert stamp.endswith("Z")
        parsed = datetime.datetime.fromisoformat(stamp).timestamp()
        assert abs(parsed - time.time()) < 0.05

    def test_microseconds_padded(self) -> None:
        """Sub-second parts are always six digits."""
        clock = WallClock()
        base = time.perf_counter_ns()
        stamp = clock.iso(base - clock.wall_ns(base) % 1_000_000_000 + 5_000)
        assert stamp.endswith(".000005Z")


class TestProcessors:
    """User processors follow structlog's protocol and run on the writer thread."""

    def test_processor_adds_key(self) -> None:
        """A processor's additions appear in every record."""

        def add_service(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
            event_dict["service"] = "billing"
            return event_dict

        with capture_records(processors=[add_service]) as records:
            asyncio.run(_two_switches())
        assert records
        assert all(r["service"] == "billing" for r in records)

    def test_drop_event_is_reported_as_filtered(self) -> None:
        """Records a processor drops are counted in a `dropped` record with reason `filtered`."""

        def only_resumes(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
            if event_dict["event"] == "suspend":
                raise structlog.DropEvent
            return event_dict

        with capture_records(processors=[only_resumes]) as records:
            asyncio.run(_two_switches())
        events = [r["event"] for r in records]
        assert events.count("suspend") == 0
        assert events.count("resume") == 2
        dropped = [r for r in records if r["event"] == "dropped"]
        assert sum(d["count"] for d in dropped) == 2
        assert {d["reason"] for d in dropped} == {"filtered"}

    def test_failing_processor_is_counted_not_fatal(self) -> None:
        """A processor that raises loses its records (counted as render_error), nothing else."""

        def broken(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
            if event_dict["event"] == "resume":
                raise ZeroDivisionError
            return event_dict

        with capture_records(processors=[broken]) as records:
            asyncio.run(_two_switches())
        assert [r["event"] for r in records].count("suspend") == 2
        dropped = [r for r in records if r["event"] == "dropped"]
        assert [(d["reason"], d["count"]) for d in dropped] == [("render_error", 2)]

    def test_renderer_output_is_one_json_line(self) -> None:
        """The default chain renders an event dict as compact JSON bytes without newline."""
        builder = EventBuilder(WallClock(), ThreadNames())
        event = builder.dropped(7, 3, "buffer_full")
        line = Renderer()(event)
        assert b"\n" not in line
        parsed = orjson.loads(line)
        assert parsed["seq"] == 7 and parsed["count"] == 3 and parsed["reason"] == "buffer_full"
