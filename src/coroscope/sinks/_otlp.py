"""``otlp+http://HOST:PORT[/PATH]``: OTLP/HTTP logs with the JSON encoding.

Each batch is sent as one or more POSTs of an ``ExportLogsServiceRequest`` holding one
``resourceLogs`` entry (service, process and host attributes) with one ``scopeLogs``
(scope ``coroscope``).  Each record becomes a ``LogRecord``: its ``event`` is the body,
its ``level`` the severity, its ``timestamp`` the ``timeUnixNano``, and every other field
an attribute (nested objects and lists as ``kvlistValue``/``arrayValue``; ``null``
fields left out, see :func:`any_value`).  64-bit integers are JSON strings, as the OTLP
JSON mapping requires.

Responses follow the OTLP specification: 2xx is delivered (records the receiver counts
in ``partialSuccess.rejectedLogRecords`` are reported lost as ``rejected``); 429, 502, 503
and 504 and connection errors are retried with backoff (honouring ``Retry-After``); any
other status means the receiver will never take those records: they are reported lost as
``rejected`` and not retried.

Built on ``http.client`` from the standard library; see the README for why no
OpenTelemetry package is used.
"""

from __future__ import annotations

import calendar
import contextlib
import http.client
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from .._version import __version__
from .._warn import warn
from ._contract import PartialWrite, level_at

__all__ = ["OtlpHttpSink", "any_value", "log_record"]

RETRYABLE = frozenset({429, 502, 503, 504})
# A POST carries at most this many records and about this many bytes of source JSON.
MAX_RECORDS_PER_POST = 1000
MAX_SOURCE_BYTES_PER_POST = 512 * 1024

_SEVERITY: dict[str, tuple[int, str]] = {
    "debug": (5, "DEBUG"),
    "info": (9, "INFO"),
    "warning": (13, "WARN"),
    "warn": (13, "WARN"),
    "error": (17, "ERROR"),
    "critical": (21, "FATAL"),
}
# Fields carried by the LogRecord itself rather than as attributes.
_OWN_FIELDS = frozenset({"event", "level", "timestamp"})


def any_value(value: Any) -> dict[str, Any]:
    """An OTLP ``AnyValue`` in the JSON encoding.

    ``None`` has no faithful encoding that receivers accept (rotel rejects the empty
    ``AnyValue``, and OpenTelemetry attributes may not be null): keys whose value is
    ``None`` are left out of attributes and maps, and a ``None`` inside a list becomes the
    string ``"null"``.
    """
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if value is None:
        return {"stringValue": "null"}
    if isinstance(value, dict):
        return {
            "kvlistValue": {
                "values": [
                    {"key": str(k), "value": any_value(v)}
                    for k, v in value.items()
                    if v is not None
                ]
            }
        }
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


class _Timestamps:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` -> Unix nanoseconds, seconds cached."""

    __slots__ = ("_second", "_second_text")

    def __init__(self) -> None:
        self._second_text = ""
        self._second = 0

    def parse(self, text: object) -> int | None:
        if not isinstance(text, str) or len(text) != 27 or text[19] != "." or text[26] != "Z":
            return None
        head = text[:19]
        try:
            if head != self._second_text:
                self._second = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
                self._second_text = head
            return self._second * 1_000_000_000 + int(text[20:26]) * 1000
        except ValueError:
            return None


def log_record(
    record: bytes, observed_ns: int, stamps: _Timestamps | None = None, level: str | None = None
) -> dict[str, Any]:
    """The OTLP ``LogRecord`` (JSON encoding) for one rendered coroscope record.

    ``level`` is the record's level as the writer gave it (read from the record if
    ``None``).  OTLP is the one output that reads records back: every field becomes an
    attribute.
    """
    observed = str(observed_ns)
    try:
        fields = orjson.loads(record)
    except orjson.JSONDecodeError:
        fields = None
    if not isinstance(fields, dict):
        return {
            "timeUnixNano": observed,
            "observedTimeUnixNano": observed,
            "severityNumber": 9,
            "severityText": "INFO",
            "body": {"stringValue": record.decode("utf-8", "replace")},
        }
    if level is None:
        level = str(fields.get("level", "info"))
    number, text = _SEVERITY.get(level.lower(), (9, "INFO"))
    at = (stamps or _Timestamps()).parse(fields.get("timestamp"))
    event = fields.get("event")
    return {
        "timeUnixNano": str(at) if at is not None else observed,
        "observedTimeUnixNano": observed,
        "severityNumber": number,
        "severityText": text,
        "body": {"stringValue": event if isinstance(event, str) else orjson.dumps(event).decode()},
        "attributes": [
            {"key": key, "value": any_value(value)}
            for key, value in fields.items()
            if key not in _OWN_FIELDS and value is not None
        ],
    }


class OtlpStatusError(OSError):
    """The receiver answered a POST with a non-2xx status."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        text = body[:200].decode("utf-8", "replace").strip()
        super().__init__(f"HTTP {status} {reason}" + (f": {text}" if text else ""))
        self.status = status


class OtlpHttpSink:
    """POSTs batches of records to an OTLP/HTTP logs endpoint, JSON-encoded."""

    overhead = 0
    record_limit: int | None = None

    def __init__(self, host: str, port: int, path: str, *, service: str, timeout: float) -> None:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.name = f"otlp+http://{netloc}{path}"
        self.host = host
        self.port = port
        self.path = path
        self.timeout = timeout
        self.service = service or f"unknown_service:{os.path.basename(sys.executable) or 'python'}"
        self.posts = 0
        self._conn: http.client.HTTPConnection | None = None
        self._stamps = _Timestamps()
        self._warned: set[int] = set()
        self._resource: dict[str, Any] = {}
        self._scope = {"name": "coroscope", "version": __version__}
        self._build_resource()

    def _build_resource(self) -> None:
        attributes = {
            "service.name": self.service,
            "process.pid": os.getpid(),
            "process.runtime.name": sys.implementation.name,
            "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
            "host.name": socket.gethostname(),
            "telemetry.sdk.name": "coroscope",
            "telemetry.sdk.language": "python",
            "telemetry.sdk.version": __version__,
        }
        self._resource = {
            "attributes": [{"key": k, "value": any_value(v)} for k, v in attributes.items()]
        }

    def request_body(self, records: list[bytes], levels: Sequence[str] = ()) -> bytes:
        """The JSON ``ExportLogsServiceRequest`` for ``records``."""
        observed = time.time_ns()
        stamps = self._stamps
        given = bool(levels)
        request = {
            "resourceLogs": [
                {
                    "resource": self._resource,
                    "scopeLogs": [
                        {
                            "scope": self._scope,
                            "logRecords": [
                                log_record(
                                    r, observed, stamps, level_at(levels, i) if given else None
                                )
                                for i, r in enumerate(records)
                            ],
                        }
                    ],
                }
            ]
        }
        return orjson.dumps(request)

    def _chunks(self, records: list[bytes]) -> list[tuple[int, int]]:
        out = []
        start = 0
        size = 0
        for i, record in enumerate(records):
            if i > start and (
                i - start >= MAX_RECORDS_PER_POST or size + len(record) > MAX_SOURCE_BYTES_PER_POST
            ):
                out.append((start, i))
                start, size = i, 0
            size += len(record)
        if start < len(records):
            out.append((start, len(records)))
        return out

    def _post(self, body: bytes) -> tuple[int, str, bytes, str | None]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        conn = self._conn
        conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        self.posts += 1
        if response.will_close:
            self._close_connection()
        return response.status, response.reason, payload, response.getheader("Retry-After")

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def write_batch(
        self, records: list[bytes], levels: Sequence[str] = ()
    ) -> dict[str, int] | None:
        rejected = 0
        for start, end in self._chunks(records):
            lost = {"rejected": rejected} if rejected else None
            try:
                status, reason, payload, retry_after = self._post(
                    self.request_body(records[start:end], levels[start:end])
                )
            except (OSError, http.client.HTTPException) as exc:
                self._close_connection()
                raise PartialWrite(start, exc, lost=lost) from exc
            if 200 <= status < 300:
                rejected += _rejected_count(payload, end - start)
                continue
            error = OtlpStatusError(status, reason, payload)
            if status in RETRYABLE:
                raise PartialWrite(start, error, lost=lost, retry_after=_seconds(retry_after))
            rejected += end - start
            if status not in self._warned:
                self._warned.add(status)
                warn(
                    f"coroscope: {self.name} rejected {end - start} records ({error}); not retried"
                )
        return {"rejected": rejected} if rejected else None

    def close(self) -> None:
        self._close_connection()

    def reset_after_fork(self) -> None:
        """In a forked child: a connection of its own and this process's pid."""
        conn, self._conn = self._conn, None
        if conn is not None and conn.sock is not None:
            conn.sock.close()
        self._build_resource()


def _rejected_count(payload: bytes, limit: int) -> int:
    """``partialSuccess.rejectedLogRecords`` of a response (0 if absent or unreadable)."""
    try:
        partial = orjson.loads(payload).get("partialSuccess") or {}
        count = int(partial.get("rejectedLogRecords") or 0)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0
    return max(0, min(count, limit))


def _seconds(retry_after: str | None) -> float | None:
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after))
    except ValueError:
        return None
