"""Records tied to the request: structlog's bound context variables and OpenTelemetry ids."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
import structlog

from coroscope.testing import capture_records


def _of(records: list[dict[str, Any]], name: str, *events: str) -> list[dict[str, Any]]:
    return [r for r in records if r["event"] in events and r.get("task", {}).get("name") == name]


async def _handler(request_id: str, fail: bool = False) -> None:
    structlog.contextvars.bind_contextvars(request_id=request_id, user="ada", api_token="s3cr3t")
    await asyncio.sleep(0)
    if fail:
        raise ValueError("bad request")


class TestStructlogContext:
    """Values bound with bind_contextvars in a task's context travel with its records."""

    def test_switches_and_end_carry_the_task_s_own_context(self) -> None:
        async def main() -> None:
            await asyncio.gather(
                asyncio.create_task(_handler("r-1"), name="one"),
                asyncio.create_task(_handler("r-2"), name="two"),
            )

        with capture_records() as records:
            asyncio.run(main())
        for name, rid in (("one", "r-1"), ("two", "r-2")):
            suspends = _of(records, name, "suspend")
            assert suspends, records
            context = suspends[0]["context"]
            assert context["request_id"] == rid and context["user"] == "ada"
            assert context["api_token"] == "[redacted]"  # redacted by name, like a local
            (done,) = _of(records, name, "task.done")
            assert done["context"]["request_id"] == rid

    def test_no_context_key_when_nothing_is_bound(self) -> None:
        async def plain() -> None:
            await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.create_task(plain(), name="plain")

        with capture_records() as records:
            asyncio.run(main())
        assert _of(records, "plain", "suspend")
        assert all("context" not in r for r in _of(records, "plain", "suspend", "task.done"))

    def test_watch_mode_failure_carries_it(self) -> None:
        async def main() -> None:
            await asyncio.gather(
                asyncio.create_task(_handler("r-9", fail=True), name="bad"),
                return_exceptions=True,
            )

        with capture_records(mode="watch", blocked_ms=0, stuck_s=0) as records:
            asyncio.run(main())
        (done,) = _of(records, "bad", "task.done")
        assert done["context"]["request_id"] == "r-9"

    def test_locals_off_leaves_values_out(self) -> None:
        async def main() -> None:
            await asyncio.create_task(_handler("r-3"), name="one")

        with capture_records(locals="off") as records:
            asyncio.run(main())
        assert all("context" not in r for r in _of(records, "one", "suspend", "task.done"))


class TestOpenTelemetry:
    """The current trace and span ids, read from the task's context."""

    def test_trace_and_span_ids(self) -> None:
        trace = pytest.importorskip("opentelemetry.trace")
        sdk = pytest.importorskip("opentelemetry.sdk.trace")
        tracer = sdk.TracerProvider().get_tracer("test")
        seen: dict[str, Any] = {}

        async def traced() -> None:
            with tracer.start_as_current_span("request") as span:
                seen["ctx"] = span.get_span_context()
                await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.create_task(traced(), name="traced")

        with capture_records() as records:
            asyncio.run(main())
        (suspend,) = _of(records, "traced", "suspend")
        assert suspend["trace_id"] == trace.format_trace_id(seen["ctx"].trace_id)
        assert suspend["span_id"] == trace.format_span_id(seen["ctx"].span_id)

    def test_not_imported_by_coroscope(self) -> None:
        """A process that does not use OpenTelemetry (or structlog) does not import it."""
        code = (
            "import asyncio, sys, coroscope\n"
            "from coroscope.testing import capture_records\n"
            "async def t():\n    await asyncio.sleep(0)\n"
            "with capture_records() as records:\n    asyncio.run(t())\n"
            "assert records\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('opentelemetry', 'structlog')))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=False, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[]"


class TestAiohttpRoute:
    """A task handling one aiohttp request names its route in every record."""

    def test_route_of_a_handler_task(self) -> None:
        web = pytest.importorskip("aiohttp.web")
        aiohttp = pytest.importorskip("aiohttp")

        async def item(request: Any) -> Any:
            await asyncio.sleep(0)
            return web.json_response({"key": request.match_info["key"]})

        async def main() -> list[Any]:
            app = web.Application()
            app.router.add_get("/item/{key}", item)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]
            try:
                async with aiohttp.ClientSession() as session:
                    out = []
                    for key in ("a", "b"):
                        async with session.get(f"http://127.0.0.1:{port}/item/{key}") as resp:
                            out.append(await resp.json())
                    return out
            finally:
                await runner.cleanup()

        with capture_records() as records:
            assert asyncio.run(main()) == [{"key": "a"}, {"key": "b"}]
        routed = [r for r in records if "route" in r]
        assert routed, [r["event"] for r in records]
        assert {r["route"] for r in routed} == {"GET /item/{key}"}
        assert any(r["event"] == "suspend" for r in routed)
