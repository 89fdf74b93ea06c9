"""OTLP/HTTP logs output (JSON encoding): the request shape checked strictly against the
OTLP specification, retry and rejection handling, and delivery to a real collector
(rotel) when it is installed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import coroscope
from aggregators import (
    OtlpReceiver,
    Rotel,
    check_accounting,
    decode_export_request,
    wait_until,
)
from coroscope import _api as _install
from coroscope.sinks._otlp import OtlpHttpSink, any_value, log_record


async def _spin(n: int) -> None:
    payload = {"k": [1, 2.5, None, True]}  # noqa: F841 - a local with nested values
    for _ in range(n):
        await asyncio.sleep(0)


def _as_records(decoded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OTLP log records back to coroscope records (body -> event, attributes -> fields)."""
    return [{"event": r["body"], **r["attributes"]} for r in decoded]


def _flush_until_done(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not coroscope.flush(1):
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A strict OTLP/HTTP receiver on a loopback port."""
    server = OtlpReceiver()
    try:
        yield server
    finally:
        coroscope.uninstall(timeout=1)
        server.close()


class TestEncoding:
    """Values and records map onto OTLP's JSON encoding."""

    def test_any_value(self) -> None:
        """Strings, booleans, 64-bit ints (as strings), doubles, null, lists and objects."""
        assert any_value("s") == {"stringValue": "s"}
        assert any_value(True) == {"boolValue": True}
        assert any_value(2**62) == {"intValue": str(2**62)}
        assert any_value(0.5) == {"doubleValue": 0.5}
        assert any_value(None) == {"stringValue": "null"}  # receivers reject the empty value
        assert any_value({"a": None, "b": 1}) == {
            "kvlistValue": {"values": [{"key": "b", "value": {"intValue": "1"}}]}
        }
        assert any_value([1, "a"]) == {
            "arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "a"}]}
        }
        assert any_value({"a": {"b": 1}}) == {
            "kvlistValue": {
                "values": [
                    {
                        "key": "a",
                        "value": {
                            "kvlistValue": {"values": [{"key": "b", "value": {"intValue": "1"}}]}
                        },
                    }
                ]
            }
        }

    def test_record_fields(self) -> None:
        """event -> body, level -> severity, timestamp -> timeUnixNano, the rest -> attributes."""
        record = orjson.dumps(
            {
                "event": "dropped",
                "level": "warning",
                "timestamp": "2024-02-03T04:05:06.123456Z",
                "seq": 7,
                "task": {"name": "t", "id": 3},
            }
        )
        out = log_record(record, 1)
        assert out["timeUnixNano"] == "1706933106123456000"
        assert (out["severityNumber"], out["severityText"]) == (13, "WARN")
        assert out["body"] == {"stringValue": "dropped"}
        keys = [a["key"] for a in out["attributes"]]
        assert keys == ["seq", "task"]

    def test_request_passes_the_strict_check(self) -> None:
        """A whole request validates: one resourceLogs, one scopeLogs, string-encoded ints."""
        sink = OtlpHttpSink("127.0.0.1", 1, "/v1/logs", service="svc", timeout=1)
        body = sink.request_body([b'{"event":"suspend","level":"info","seq":1}', b"not json"])
        resource, records = decode_export_request(body)
        assert resource["service.name"] == "svc"
        assert resource["process.pid"] > 0
        assert [r["body"] for r in records] == ["suspend", "not json"]


class TestStrictReceiver:
    """Records reach an OTLP receiver that checks every request against the specification."""

    def test_records_arrive_valid(
        self, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Thousands of records in several POSTs: each request valid, none lost, typed values."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "ignored-when-coroscope-service-is-set")
        assert coroscope.install(
            output=receiver.url, environ={"COROSCOPE_SERVICE": "checkout"}, buffer_size=100_000
        )
        asyncio.run(_spin(2500))
        assert coroscope.flush(20)
        coroscope.uninstall()
        assert receiver.errors == []
        assert receiver.requests >= 5  # batches are split into POSTs of at most 1000 records
        assert {r["service.name"] for r in receiver.resources} == {"checkout"}
        records = _as_records(receiver.records)
        assert check_accounting(records)["missing"] == 0
        suspend = next(r for r in records if r["event"] == "suspend")
        assert isinstance(suspend["seq"], int)
        assert isinstance(suspend["task"], dict) and isinstance(suspend["task"]["id"], int)
        assert isinstance(suspend["frames"], list)
        assert all(abs(r["time"] - time.time_ns()) < 60e9 for r in receiver.records)
        pairs = {(r["severity"], r["severity_text"]) for r in receiver.records}
        assert (9, "INFO") in pairs
        assert pairs <= {(5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"), (21, "FATAL")}

    def test_otel_service_name_fallback(
        self, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without COROSCOPE_SERVICE, service.name comes from OTEL_SERVICE_NAME."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
        assert coroscope.install(output=receiver.url, environ={})
        asyncio.run(_spin(3))
        assert coroscope.flush(10)
        assert {r["service.name"] for r in receiver.resources} == {"from-otel"}

    def test_retryable_statuses_are_retried(self, receiver: OtlpReceiver) -> None:
        """503 and 429 answers are retried with backoff: everything arrives, nothing is lost."""
        receiver.statuses = [503, 429, 503]
        assert coroscope.install(output=receiver.url, environ={})
        asyncio.run(_spin(100))
        _flush_until_done(20)
        coroscope.uninstall()
        assert receiver.requests >= 4
        records = _as_records(receiver.records)
        figures = check_accounting(records)
        assert figures["missing"] == figures["reported"] == 0

    def test_rejected_batch_is_reported(self, receiver: OtlpReceiver) -> None:
        """A 400 answer is not retried; its records are reported lost as `rejected`."""
        receiver.statuses = [400]
        assert coroscope.install(output=receiver.url, environ={})
        asyncio.run(_spin(50))
        assert coroscope.flush(10)
        asyncio.run(_spin(5))
        assert coroscope.flush(10)
        coroscope.uninstall()
        records = _as_records(receiver.records)
        figures = check_accounting(records)
        assert figures["reported"] > 0
        assert {r["reason"] for r in records if r["event"] == "dropped"} == {"rejected"}

    def test_partial_success_is_reported(self, receiver: OtlpReceiver) -> None:
        """Records a 200 answer counts in partialSuccess.rejectedLogRecords are reported lost."""
        receiver.partial_rejections = [3]
        assert coroscope.install(output=receiver.url, environ={})
        asyncio.run(_spin(20))
        assert coroscope.flush(10)
        asyncio.run(_spin(2))
        assert coroscope.flush(10)
        coroscope.uninstall()
        records = _as_records(receiver.records)
        figures = check_accounting(records)
        assert figures["reported"] == 3
        assert {r["reason"] for r in records if r["event"] == "dropped"} == {"rejected"}


class TestRealCollector:
    """A real OTLP collector (rotel, from PyPI) accepts and decodes what coroscope sends."""

    def test_rotel_receives_every_record(self, tmp_path: Path) -> None:
        """Every record arrives at rotel, decoded with its body and integer attributes."""
        rotel = Rotel(tmp_path)
        try:
            assert coroscope.install(output=rotel.url, environ={"COROSCOPE_SERVICE": "demo"})
            asyncio.run(_spin(300))
            assert coroscope.flush(20)
            written = _install._session.writer.written  # type: ignore[union-attr]
            coroscope.uninstall()
            wait_until(lambda: len(set(rotel.seqs())) >= written, 30, "rotel to print the records")
            seqs = rotel.seqs()
            assert len(seqs) >= written >= 600, (written, len(seqs), rotel.text()[-3000:])
            assert sorted(seqs) == list(range(len(seqs)))  # each once, no gap
            text = rotel.text()
            assert b"Body: Str(suspend)" in text
            assert b"service.name: Str(demo)" in text
            assert b"Failed to decode" not in text
        finally:
            coroscope.uninstall(timeout=1)
            rotel.stop()
