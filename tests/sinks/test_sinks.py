"""Outputs: the COROSCOPE_OUTPUT forms, files (rotation, concurrent appends, whole lines),
syslog message format and framing, and the record size cap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

import coroscope
from aggregators import check_accounting
from coroscope import _api as _install
from coroscope._config import Config, ConfigError
from coroscope.sinks import PartialWrite, open_sink
from coroscope.sinks._local import FileSink, LineWriter
from coroscope.sinks._outputs import parse_output
from coroscope.sinks._syslog import Rfc5424, SyslogTcpSink, SyslogUdpSink
from coroscope.testing import capture_records
from helpers import clean_env, read_records, requires_startup_files, run_python


async def _spin(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class TestOutputSetting:
    """COROSCOPE_OUTPUT accepts the documented forms and rejects anything else at config time."""

    @pytest.mark.parametrize(
        ("raw", "kind", "host", "port", "path"),
        [
            ("stderr", "stderr", "", 0, ""),
            ("logs/x.log", "file", "", 0, "logs/x.log"),
            ("syslog+tcp://127.0.0.1:6514", "syslog+tcp", "127.0.0.1", 6514, ""),
            ("syslog+udp://logs.example", "syslog+udp", "logs.example", 514, ""),
            ("tcp://[::1]:9000", "tcp", "::1", 9000, ""),
            ("otlp+http://collector:4318", "otlp+http", "collector", 4318, "/v1/logs"),
            ("otlp+http://collector/custom/logs", "otlp+http", "collector", 4318, "/custom/logs"),
        ],
    )
    def test_accepted(self, raw: str, kind: str, host: str, port: int, path: str) -> None:
        """Each form parses to its kind, host, port and path (defaults filled in)."""
        out = parse_output(raw)
        assert (out.kind, out.host, out.port, out.path) == (kind, host, port, path)

    @pytest.mark.parametrize(
        "raw",
        [
            "tcp://collector",  # tcp needs a port
            "http://collector:80",  # unknown scheme
            "syslog+tcp://host:70000",
            "syslog+udp://host:514/path",
            "otlp+http://host:4318/v1/logs?x=1",
            "tcp://bad host:1",
            "  ",
        ],
    )
    def test_rejected_with_the_variable_and_forms(self, raw: str) -> None:
        """A bad value is a ConfigError naming COROSCOPE_OUTPUT and the accepted forms."""
        with pytest.raises(ConfigError) as info:
            Config.from_env({"COROSCOPE_OUTPUT": raw})
        message = str(info.value)
        assert message.startswith("COROSCOPE_OUTPUT=")
        assert "accepted: stderr, stdout, a file path, syslog+tcp://HOST:PORT" in message

    @requires_startup_files
    def test_bad_output_leaves_the_program_unmonitored(self) -> None:
        """From the environment, a bad URL gives one message and the program runs on."""
        result = run_python(
            "import asyncio\nasyncio.run(asyncio.sleep(0))\nprint('ran')",
            clean_env(COROSCOPE="1", COROSCOPE_OUTPUT="udp://x:1"),
        )
        assert result.stdout.strip() == "ran"
        assert "COROSCOPE_OUTPUT='udp://x:1' is not valid" in result.stderr

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("COROSCOPE_MAX_RECORD_BYTES", "100"),
            ("COROSCOPE_NET_TIMEOUT", "0"),
            ("COROSCOPE_RESEND_BYTES", "-1"),
        ],
    )
    def test_delivery_settings_validated(self, variable: str, value: str) -> None:
        """The delivery settings reject out-of-range values, naming their variable."""
        with pytest.raises(ConfigError, match=variable):
            Config.from_env({variable: value})


class TestFileRotation:
    """A file output follows logrotate: rename (create mode) and copytruncate."""

    def test_rename_then_new_file(self, tmp_path: Path) -> None:
        """After the file is renamed, later records go to a new file at the path; none lost."""
        log = tmp_path / "c.log"
        assert coroscope.install(output=str(log), locals="off", environ={})
        try:
            asyncio.run(_spin(100))
            assert coroscope.flush(5)
            log.rename(tmp_path / "c.log.1")  # what logrotate does before signalling
            asyncio.run(_spin(100))
            assert coroscope.flush(5)
        finally:
            coroscope.uninstall()
        old = read_records(tmp_path / "c.log.1")
        new = read_records(log)
        assert old and new
        assert max(r["seq"] for r in old) < min(r["seq"] for r in new)
        check_accounting(old + new)

    def test_removed_file_is_recreated(self, tmp_path: Path) -> None:
        """If the file is deleted, the next batch creates it again."""
        log = tmp_path / "c.log"
        sink = FileSink(str(log))
        sink.open()
        sink.write_batch([b'{"a":1}'])
        log.unlink()
        sink.write_batch([b'{"a":2}'])
        sink.close()
        assert log.read_bytes() == b'{"a":2}\n'

    def test_copytruncate(self, tmp_path: Path) -> None:
        """After an in-place truncation, appends start at the new end (no hole of zeros)."""
        log = tmp_path / "c.log"
        sink = FileSink(str(log))
        sink.open()
        sink.write_batch([b'{"a":1}', b'{"a":2}'])
        os.truncate(log, 0)
        sink.write_batch([b'{"a":3}'])
        sink.close()
        assert log.read_bytes() == b'{"a":3}\n'


class TestConcurrentAppends:
    """Several processes appending to one file never interleave partial lines."""

    @requires_startup_files
    def test_processes_append_whole_lines(self, tmp_path: Path) -> None:
        """Four monitored processes write to one file at once: every line is a whole record."""
        log = tmp_path / "shared.log"
        code = textwrap.dedent(
            """
            import asyncio
            async def main():
                blob = "x" * 150
                for _ in range(3000):
                    await asyncio.sleep(0)
            asyncio.run(main())
            """
        )
        env = clean_env(COROSCOPE="1", COROSCOPE_OUTPUT=str(log), COROSCOPE_BUFFER="100000")
        procs = [
            subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        lines = log.read_bytes().splitlines()
        records = [orjson.loads(line) for line in lines]  # raises on any torn line
        by_pid: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            by_pid.setdefault(record["pid"], []).append(record)
        assert len(by_pid) == 4
        for pid_records in by_pid.values():
            figures = check_accounting(pid_records)
            assert figures["delivered"] >= 6000


class TestLineWriter:
    """Each write(2) holds whole lines; a failed write cannot corrupt the next record."""

    def test_pipe_writes_are_atomic_size(self) -> None:
        """To a pipe, every write is at most PIPE_BUF bytes, split between records."""
        read_fd, write_fd = os.pipe()
        sizes: list[int] = []
        real_write = os.write

        def spy(fd: int, data: Any) -> int:
            sizes.append(len(data))
            return real_write(fd, data)

        records = [b'{"n":"' + b"y" * 300 + b'"}' for _ in range(40)]
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(os, "write", spy)
                LineWriter().write(write_fd, records, select.PIPE_BUF)
            os.close(write_fd)
            data = b""
            while chunk := os.read(read_fd, 65536):
                data += chunk
        finally:
            os.close(read_fd)
        assert data.splitlines() == records
        assert len(sizes) > 1
        assert all(size <= select.PIPE_BUF for size in sizes)

    def test_torn_line_is_ended_before_the_next_records(self, tmp_path: Path) -> None:
        """A write that fails midway reports whole lines only; the retry starts a new line."""
        path = tmp_path / "torn.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        real_write = os.write
        calls = 0

        def failing(fd: int, data: Any) -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                return real_write(fd, bytes(data[:12]))  # a short write: 1.5 records
            raise OSError(28, "No space left on device")

        writer = LineWriter()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "write", failing)
            with pytest.raises(PartialWrite) as info:
                writer.write(fd, [b'{"a":1234}', b'{"b":5678}'], 1 << 20)
        assert info.value.written == 1
        writer.write(fd, [b'{"b":5678}'], 1 << 20)
        os.close(fd)
        assert path.read_bytes() == b'{"a":1234}\n{\n{"b":5678}\n'


_HEADER = re.compile(
    rb"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\S+) (\S+) (\d+) coroscope - "
)


class TestSyslogFormat:
    """RFC 5424 messages with the JSON record as MSG; RFC 6587 octet counting over TCP."""

    def test_message_and_framing(self) -> None:
        """Each frame is `LEN SP MSG`, LEN counting MSG's bytes; no BOM; severity from level."""
        sink = SyslogTcpSink("127.0.0.1", 1, app_name="my app", timeout=1, resend_bytes=0)
        records = [b'{"event":"resume","level":"info","x":"\xc3\xa9 \\n"}', b'{"level":"warning"}']
        frames = sink.frames(records, ["info", "warning"])
        for frame, record in zip(frames, records, strict=True):
            length, _, message = frame.partition(b" ")
            assert int(length) == len(message)
            match = _HEADER.match(message)
            assert match is not None, message
            assert message[match.end() :] == record  # no BOM, nothing added
            assert match[4] == b"my_app"
            assert int(match[5]) == os.getpid()
        assert [int(_HEADER.match(f.partition(b" ")[2])[1]) for f in frames] == [14, 12]  # type: ignore[index]
        assert sink.overhead >= len(frames[0].partition(b" ")[2]) - len(records[0])

    def test_severity_is_the_records_level_not_its_contents(self) -> None:
        """An info record whose locals hold {"level": "error"} goes out at severity info."""
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)

        async def job() -> None:
            options = {"level": "error", "note": '"level":"error"'}
            await asyncio.sleep(0)
            del options

        port = receiver.getsockname()[1]
        with coroscope.monitoring(output=f"syslog+udp://127.0.0.1:{port}", environ={}):
            asyncio.run(job())
        messages = []
        with contextlib.suppress(TimeoutError):
            while True:
                receiver.settimeout(0.5)
                messages.append(receiver.recv(65536))
        receiver.close()
        suspend = next(m for m in messages if b'"event":"suspend"' in m)
        assert b'"level":"error"' in suspend  # the locals are there ...
        assert _HEADER.match(suspend)[1] == b"14"  # type: ignore[index]  # ... at user.info

    def test_udp_one_datagram_per_record(self) -> None:
        """Over UDP each record is one datagram holding one whole message."""
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        sink = SyslogUdpSink("127.0.0.1", receiver.getsockname()[1], app_name="", timeout=1)
        records = [orjson.dumps({"seq": i, "pad": "p" * 3000}) for i in range(5)]
        assert sink.write_batch(records) is None
        got = [receiver.recv(65536) for _ in records]
        receiver.close()
        sink.close()
        assert [g[_HEADER.match(g).end() :] for g in got] == records  # type: ignore[union-attr]

    def test_udp_send_failures_are_counted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Datagrams the kernel refuses are reported lost (sink_error), exactly."""
        sink = SyslogUdpSink("127.0.0.1", 9, app_name="", timeout=1)
        sent = 0

        def flaky(self: socket.socket, data: bytes, address: Any) -> int:
            nonlocal sent
            sent += 1
            if sent % 3 == 0:
                raise OSError(105, "No buffer space available")
            return len(data)

        monkeypatch.setattr(socket.socket, "sendto", flaky)
        assert sink.write_batch([b"{}"] * 9) == {"sink_error": 3}
        sink.close()

    def test_header_fields_are_printable(self) -> None:
        """APP-NAME and HOSTNAME are cut to RFC 5424 limits and hold no spaces."""
        header = Rfc5424("a b" * 40, hostname="").header(6, "2024-01-01T00:00:00.000000Z")
        fields = header.split(b" ")
        assert fields[2] == b"-"
        assert fields[3] == (b"a_b" * 40)[:48]


def _wide_locals_source(count: int, width: int) -> str:
    names = [f"v{i}" for i in range(count)]
    assignments = "\n".join(f"    {n} = {'x' * width!r}" for n in names)
    return f"import asyncio\nasync def wide():\n{assignments}\n    await asyncio.sleep(0)\n"


class TestRecordCap:
    """Records over COROSCOPE_MAX_RECORD_BYTES are shrunk, marked truncated, never split."""

    def test_big_locals_are_trimmed(self) -> None:
        """A frame with many long locals: the record fits, is valid JSON, keeps its identity."""
        namespace: dict[str, Any] = {}
        exec(_wide_locals_source(40, 180), namespace)
        with capture_records(max_record_bytes=2048) as records:
            asyncio.run(namespace["wide"]())
        with capture_records() as full:
            asyncio.run(namespace["wide"]())
        big = [r for r in full if r["event"] == "suspend"]
        assert len(orjson.dumps(big[0])) > 2048  # the test would prove nothing otherwise
        suspends = [r for r in records if r["event"] == "suspend"]
        assert suspends and all(r.get("truncated") is True for r in suspends)
        assert all(len(orjson.dumps(r)) <= 2048 for r in records)
        assert {"seq", "timestamp", "task", "thread", "pid"} <= suspends[0].keys()
        assert suspends[0]["frames"][0]["function"] == "wide"

    def test_small_records_untouched(self) -> None:
        """Records under the cap carry no truncated flag."""
        with capture_records() as records:
            asyncio.run(_spin(3))
        assert records and not any("truncated" in r for r in records)

    def test_deep_chain_omits_middle_frames(self) -> None:
        """A chain too deep to fit keeps its outer and inner frames and counts the rest."""

        async def down(n: int) -> None:
            if n:
                await down(n - 1)
            else:
                await asyncio.sleep(0)

        with capture_records(max_record_bytes=1024, locals="off") as records:
            asyncio.run(down(60))
        suspend = next(r for r in records if r["event"] == "suspend")
        assert suspend["truncated"] is True
        assert suspend["frames_omitted"] > 0
        assert len(orjson.dumps(suspend)) <= 1024

    def test_syslog_cap_counts_the_header(self) -> None:
        """For syslog outputs the whole message (header included) fits the cap."""
        sink = open_sink("syslog+udp://127.0.0.1:9", timeout=1.0, resend_bytes=0)
        config = Config(max_record_bytes=2048, locals="safe")
        assert _install._install(config, (), sink=sink)
        try:
            writer = _install._session.writer  # type: ignore[union-attr]
            assert writer.record_limit == 2048 - sink.overhead  # type: ignore[attr-defined]
        finally:
            coroscope.uninstall()


def _bloat(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A user processor that adds a large field to every record."""
    event["blob"] = "b" * 5000
    return event


class TestRecordCapWithProcessors:
    """The cap holds even when a user processor makes every record too long."""

    def test_minimal_records(self) -> None:
        """Every record fits; shrunk ones fall back to the minimal record, still valid JSON."""
        with capture_records(processors=[_bloat], max_record_bytes=1024) as records:
            asyncio.run(_spin(20))
        assert records
        assert all(len(orjson.dumps(r)) <= 1024 for r in records)
        switches = [r for r in records if r["event"] in ("suspend", "resume")]
        assert switches and all(r["truncated"] is True for r in switches)
        assert {"seq", "timestamp", "task", "thread", "pid"} <= switches[0].keys()
