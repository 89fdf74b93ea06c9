"""Receivers the delivery tests send records to: a real rsyslogd, a real OTLP collector
(rotel, when installed), and small in-test servers (TCP lines, a stalled peer, a strict
OTLP/HTTP receiver that validates the JSON shape against the OTLP specification)."""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

# -- shared ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port free for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` (every 5 ms) until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def check_accounting(records: list[dict[str, Any]]) -> dict[str, int]:
    """The loss invariant: every seq up to the highest is delivered or counted as dropped.

    Returns figures (delivered, duplicates, missing, reported) for messages; asserts that
    what is missing equals what the ``dropped`` records report.
    """
    seqs = [r["seq"] for r in records]
    distinct = set(seqs)
    # A resent ``dropped`` record arrives twice: count each seq once.
    reports = {r["seq"]: r["count"] for r in records if r["event"] == "dropped"}
    reported = sum(reports.values())
    top = max(distinct)
    missing = top + 1 - len(distinct)
    assert missing == reported, f"{missing} records missing, {reported} reported as dropped"
    return {
        "delivered": len(distinct),
        "duplicates": len(seqs) - len(distinct),
        "missing": missing,
        "reported": reported,
    }


# -- rsyslog ------------------------------------------------------------------------------


def rsyslogd_path() -> str:
    """The rsyslogd binary; skip (or fail under CI) when it is not installed."""
    path = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if os.access("/usr/sbin/rsyslogd", os.X_OK) else None
    )
    if path is None:
        message = "rsyslogd is not installed (apt-get install rsyslog; .ci/services does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


_RSYSLOG_CONF = """
global(workDirectory="{dir}" maxMessageSize="64k")
main_queue(queue.type="{queue}")
module(load="imtcp")
module(load="imudp")
module(load="mmjsonparse")
input(type="imtcp" port="{port}" address="127.0.0.1" ruleset="coroscope")
input(type="imudp" port="{port}" address="127.0.0.1" ruleset="coroscope")
template(name="msg" type="string" string="%msg%\\n")
ruleset(name="coroscope") {{
    action(type="mmjsonparse" cookie="")
    if $parsesuccess == "OK" then {{
        action(type="omfile" file="{out}" template="msg")
    }} else {{
        action(type="omfile" file="{bad}" template="msg")
    }}
}}
"""


class Rsyslog:
    """An rsyslogd of the test's own: TCP and UDP on one loopback port.

    Its main queue is ``Direct`` by default: a message is written before the next is
    read, so rsyslog holds nothing in memory that a restart could lose (with its default
    in-memory ``LinkedList`` queue, whatever is queued at shutdown or at a kill is
    discarded, unknown to any sender).  ``Direct`` also makes rsyslog slower (one thread
    parses and writes).

    Messages that rsyslog's ``mmjsonparse`` accepts as JSON go to ``out``, one per line
    (``%msg%`` only); anything else goes to ``bad``.
    """

    def __init__(self, directory: Path, queue: str = "Direct") -> None:
        self.binary = rsyslogd_path()
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = self.dir / "out.log"
        self.bad = self.dir / "bad.log"
        self.conf = self.dir / "rsyslog.conf"
        self.conf.write_text(
            _RSYSLOG_CONF.format(
                dir=self.dir, port=self.port, out=self.out, bad=self.bad, queue=queue
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start rsyslogd in the foreground and wait until it accepts TCP connections."""
        assert self.process is None
        log = open(self.dir / f"rsyslogd-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [self.binary, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.starts += 1
        process = self.process
        wait_until(
            lambda: process.poll() is not None or accepts(self.port), 10, "rsyslogd to listen"
        )
        if process.poll() is not None:
            pytest.fail(f"rsyslogd exited: {self.diagnostics()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` and wait for the process to end (SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def diagnostics(self) -> str:
        """What rsyslogd printed, for failure messages."""
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.dir.glob("rsyslogd-*.log"))
        )

    def lines(self) -> list[bytes]:
        """Every message written to ``out``."""
        if not self.out.exists():
            return []
        return self.out.read_bytes().splitlines()

    def records(self) -> list[dict[str, Any]]:
        """Every message in ``out``, parsed (all of them must parse)."""
        return [orjson.loads(line) for line in self.lines()]

    def bad_lines(self) -> list[bytes]:
        """Messages rsyslog could not parse as JSON."""
        return self.bad.read_bytes().splitlines() if self.bad.exists() else []

    def wait_for_lines(self, count: int, timeout: float = 30) -> None:
        """Wait until ``out`` holds at least ``count`` lines."""

        seen = [0, 0]  # bytes read, lines counted

        def enough() -> bool:
            if not self.out.exists():
                return False
            with open(self.out, "rb") as f:
                f.seek(seen[0])
                data = f.read()
            seen[0] += len(data)
            seen[1] += data.count(b"\n")
            if seen[1] >= count:
                return True
            time.sleep(0.02)
            return False

        wait_until(enough, timeout, f"{count} lines in {self.out}")


# -- small TCP servers ------------------------------------------------------------------


class LineCollector:
    """A TCP server collecting newline-terminated lines, remembering each line's connection.

    ``stop()`` closes the listener and every connection (an aggregator going away);
    ``start()`` listens again on the same port.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.connections: list[list[bytes]] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> LineCollector:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        thread = threading.Thread(
            target=self._accept, args=(listener,), daemon=True, name=f"accept-{self.port}"
        )
        thread.start()
        self._threads.append(thread)
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile: refuse it
                    conn.close()
                    return
                lines: list[bytes] = []
                self.connections.append(lines)
                self._socks.append(conn)
            thread = threading.Thread(target=self._read, args=(conn, lines), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read(self, conn: socket.socket, lines: list[bytes]) -> None:
        rest = b""
        while True:
            try:
                data = conn.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            rest += data
            *complete, rest = rest.split(b"\n")
            with self._lock:
                lines.extend(complete)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:  # the accept loop has returned: nothing listens
            if thread.name.startswith("accept"):
                thread.join(5)

    def lines(self) -> list[bytes]:
        with self._lock:
            return [line for conn in self.connections for line in conn]

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines()]

    def wait_for(self, count: int, timeout: float = 20) -> None:
        wait_until(lambda: len(self.lines()) >= count, timeout, f"{count} lines over TCP")


class StalledPeer:
    """A TCP server that accepts connections and never reads: an aggregator that hangs."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port: int = self.listener.getsockname()[1]

    def close(self) -> None:
        self.listener.close()


# -- OTLP ---------------------------------------------------------------------------------

_ANY_VALUE_KINDS = {
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
}
_LOG_RECORD_FIELDS = {
    "timeUnixNano",
    "observedTimeUnixNano",
    "severityNumber",
    "severityText",
    "body",
    "attributes",
    "droppedAttributesCount",
    "flags",
    "traceId",
    "spanId",
    "eventName",
}
_UINT64 = re.compile(r"^[0-9]{1,20}$")
_INT64 = re.compile(r"^-?[0-9]{1,19}$")


def _fail(where: str, problem: str) -> None:
    raise AssertionError(f"OTLP shape: {where}: {problem}")


def decode_any_value(value: Any, where: str) -> Any:
    """Check an ``AnyValue`` (JSON encoding) strictly; return it as a Python value.

    The empty ``AnyValue`` (``{}``) is refused: the protobuf allows it, but real receivers
    (rotel) reject a request holding one, so coroscope must never send it."""
    if not isinstance(value, dict):
        _fail(where, f"AnyValue must be an object, got {value!r}")
    if len(value) != 1 or next(iter(value)) not in _ANY_VALUE_KINDS:
        _fail(where, f"AnyValue must have exactly one of {sorted(_ANY_VALUE_KINDS)}: {value!r}")
    kind, inner = next(iter(value.items()))
    if kind == "stringValue" and not isinstance(inner, str):
        _fail(where, "stringValue must be a string")
    if kind == "boolValue" and not isinstance(inner, bool):
        _fail(where, "boolValue must be a boolean")
    if kind == "intValue":
        if not (isinstance(inner, str) and _INT64.match(inner)):
            _fail(where, f"intValue must be a decimal string (int64), got {inner!r}")
        return int(inner)
    if kind == "doubleValue" and (isinstance(inner, bool) or not isinstance(inner, int | float)):
        _fail(where, "doubleValue must be a number")
    if kind == "arrayValue":
        if not isinstance(inner, dict) or set(inner) - {"values"}:
            _fail(where, "arrayValue must be {values: [...]}")
        return [decode_any_value(v, f"{where}[]") for v in inner.get("values", [])]
    if kind == "kvlistValue":
        if not isinstance(inner, dict) or set(inner) - {"values"}:
            _fail(where, "kvlistValue must be {values: [...]}")
        return decode_attributes(inner.get("values", []), where)
    return inner


def decode_attributes(attributes: Any, where: str) -> dict[str, Any]:
    """Check a ``KeyValue`` list (unique string keys); return it as a dict."""
    if not isinstance(attributes, list):
        _fail(where, "attributes must be a list")
    out: dict[str, Any] = {}
    for item in attributes:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            _fail(where, f"a KeyValue must be exactly {{key, value}}: {item!r}")
        key = item["key"]
        if not isinstance(key, str) or not key:
            _fail(where, f"a key must be a non-empty string: {key!r}")
        if key in out:
            _fail(where, f"duplicate key {key!r}")
        out[key] = decode_any_value(item["value"], f"{where}.{key}")
    return out


def decode_export_request(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate an ``ExportLogsServiceRequest`` (JSON) as coroscope must send it: exactly one
    ``resourceLogs`` with one ``scopeLogs``.  Returns the resource attributes and the
    records, each as ``{"time", "observed", "severity", "severity_text", "body", "attributes"}``."""
    doc = orjson.loads(body)
    if not isinstance(doc, dict) or set(doc) != {"resourceLogs"}:
        _fail("request", f"must be exactly {{resourceLogs}}, got keys {list(doc)}")
    resource_logs = doc["resourceLogs"]
    if not isinstance(resource_logs, list) or len(resource_logs) != 1:
        _fail("resourceLogs", "must hold exactly one entry per POST")
    entry = resource_logs[0]
    if set(entry) - {"resource", "scopeLogs", "schemaUrl"}:
        _fail("resourceLogs[0]", f"unknown keys {set(entry)}")
    resource = entry.get("resource")
    if not isinstance(resource, dict) or set(resource) - {"attributes", "droppedAttributesCount"}:
        _fail("resource", f"bad resource {resource!r}")
    resource_attributes = decode_attributes(resource.get("attributes", []), "resource")
    if not isinstance(resource_attributes.get("service.name"), str):
        _fail("resource", "service.name (a string) is required")
    scope_logs = entry.get("scopeLogs")
    if not isinstance(scope_logs, list) or len(scope_logs) != 1:
        _fail("scopeLogs", "must hold exactly one entry")
    scope_entry = scope_logs[0]
    if set(scope_entry) - {"scope", "logRecords", "schemaUrl"}:
        _fail("scopeLogs[0]", f"unknown keys {set(scope_entry)}")
    scope = scope_entry.get("scope")
    if (
        not isinstance(scope, dict)
        or set(scope) - {"name", "version", "attributes", "droppedAttributesCount"}
        or not isinstance(scope.get("name"), str)
        or not isinstance(scope.get("version", ""), str)
    ):
        _fail("scope", f"bad InstrumentationScope {scope!r}")
    log_records = scope_entry.get("logRecords")
    if not isinstance(log_records, list) or not log_records:
        _fail("logRecords", "must be a non-empty list")
    records = []
    for index, record in enumerate(log_records):
        where = f"logRecords[{index}]"
        if not isinstance(record, dict) or set(record) - _LOG_RECORD_FIELDS:
            _fail(where, f"unknown fields {set(record) - _LOG_RECORD_FIELDS}")
        for field in ("timeUnixNano", "observedTimeUnixNano"):
            if not (isinstance(record.get(field), str) and _UINT64.match(record[field])):
                _fail(where, f"{field} must be a decimal string (fixed64)")
        severity = record.get("severityNumber")
        if not isinstance(severity, int) or isinstance(severity, bool) or not 1 <= severity <= 24:
            _fail(where, f"severityNumber must be an integer 1-24, got {severity!r}")
        if not isinstance(record.get("severityText"), str):
            _fail(where, "severityText must be a string")
        body_value = record.get("body")
        if not isinstance(body_value, dict) or set(body_value) != {"stringValue"}:
            _fail(where, f"body must be a stringValue, got {body_value!r}")
        records.append(
            {
                "time": int(record["timeUnixNano"]),
                "observed": int(record["observedTimeUnixNano"]),
                "severity": severity,
                "severity_text": record["severityText"],
                "body": body_value["stringValue"],
                "attributes": decode_attributes(record.get("attributes", []), where),
            }
        )
    return resource_attributes, records


class OtlpReceiver:
    """A strict OTLP/HTTP logs receiver: every request is validated (path, method, content
    type, JSON shape); ``statuses`` scripts the answers to the first requests."""

    def __init__(self, path: str = "/v1/logs") -> None:
        self.path = path
        self.statuses: list[int] = []
        self.partial_rejections: list[int] = []
        self.requests = 0
        self.errors: list[str] = []
        self.resources: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"otlp+http://127.0.0.1:{self.port}{self.path}"

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        with self._lock:
            self.requests += 1
            status = self.statuses.pop(0) if self.statuses else 200
            reply: dict[str, Any] = {}
            try:
                if request.path != self.path:
                    _fail("request", f"path {request.path!r}, expected {self.path!r}")
                if request.headers.get("Content-Type") != "application/json":
                    _fail("request", f"Content-Type {request.headers.get('Content-Type')!r}")
                resource, records = decode_export_request(body)
            except (AssertionError, orjson.JSONDecodeError) as exc:
                self.errors.append(str(exc))
                status = 400
            else:
                if status == 200:
                    rejected = self.partial_rejections.pop(0) if self.partial_rejections else 0
                    kept = records[: len(records) - rejected]
                    self.resources.append(resource)
                    self.records.extend(kept)
                    if rejected:
                        reply = {
                            "partialSuccess": {
                                "rejectedLogRecords": str(rejected),
                                "errorMessage": "scripted rejection",
                            }
                        }
        payload = orjson.dumps(reply) if status == 200 else b'{"code": 3}'
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        if status in (429, 503):
            request.send_header("Retry-After", "0")
        request.end_headers()
        request.wfile.write(payload)

    def seqs(self) -> list[int]:
        with self._lock:
            return [r["attributes"]["seq"] for r in self.records]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def rotel_agent() -> tuple[Path, dict[str, str]] | None:
    """The rotel collector binary (PyPI ``rotel``) and the environment it needs, if usable.

    The binary embeds CPython: it links ``libpython3.X.so``, found in this interpreter's
    ``LIBDIR`` when Python was built shared (pyenv, Debian).
    """
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "rotel-agent"
    if not binary.exists():
        return None
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(libdir), env.get("LD_LIBRARY_PATH", "")) if p
        )
    probe = subprocess.run(
        [str(binary), "--version"], env=env, capture_output=True, timeout=30, check=False
    )
    return (binary, env) if probe.returncode == 0 else None


class Rotel:
    """A running rotel collector printing the log records it receives (``--debug-log``)."""

    _SEQ = re.compile(rb"-> seq: Int\((\d+)\)")
    _RECORD = re.compile(rb"^LogRecord #", re.MULTILINE)

    def __init__(self, directory: Path) -> None:
        found = rotel_agent()
        if found is None:
            pytest.skip("the rotel collector (pip install rotel) is not usable here")
        binary, env = found
        self.port = free_port()
        grpc_port = free_port()
        self.output = directory / "rotel.out"
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [
                    str(binary),
                    "start",
                    "--otlp-http-endpoint",
                    f"127.0.0.1:{self.port}",
                    "--otlp-grpc-endpoint",
                    f"127.0.0.1:{grpc_port}",
                    "--exporter",
                    "blackhole",
                    "--debug-log",
                    "logs",
                    "--debug-log-verbosity",
                    "detailed",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        process = self.process
        wait_until(lambda: process.poll() is not None or accepts(self.port), 20, "rotel")
        if process.poll() is not None:
            pytest.fail(f"rotel exited: {self.output.read_text(errors='replace')}")

    @property
    def url(self) -> str:
        return f"otlp+http://127.0.0.1:{self.port}/v1/logs"

    def text(self) -> bytes:
        return self.output.read_bytes()

    def seqs(self) -> list[int]:
        return [int(m) for m in self._SEQ.findall(self.text())]

    def record_count(self) -> int:
        return len(self._RECORD.findall(self.text()))

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def receive_buffer_max() -> int:
    """The largest TCP receive buffer Linux lets a socket autotune to (tcp_rmem's maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 64 << 20


def distinct_seqs_reach(read: Callable[[], list[dict[str, Any]]], count: int) -> Callable[[], bool]:
    """A predicate: ``read()`` holds at least ``count`` distinct seq numbers."""

    def check() -> bool:
        time.sleep(0.05)
        return len({r["seq"] for r in read()}) >= count

    return check
