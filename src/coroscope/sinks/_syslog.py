"""Syslog outputs: RFC 5424 messages whose MSG is the JSON record.

A message is ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - JSON``: facility
``user``, severity from the record's level, given by the writer beside the record (so a
value inside the record that looks like a level never changes it),
TIMESTAMP the time the batch was sent (the record's own ``timestamp`` is the time of the
switch), APP-NAME the service name, PROCID the pid, MSGID ``coroscope``, no structured
data, and the JSON with no BOM (a BOM breaks JSON parsing in rsyslog).

* ``syslog+tcp``: RFC 6587 octet-counting framing (``LEN SP MESSAGE``), so a record is
  never split or merged whatever it contains; see :mod:`._tcp` for reconnection.
* ``syslog+udp``: one message per datagram (RFC 5426).  A datagram the kernel refused to
  send is counted as lost (``sink_error``); loss in the network is invisible to a UDP
  sender and is not counted.

``COROSCOPE_MAX_RECORD_BYTES`` bounds the whole message, header included (rsyslog's
``maxMessageSize`` counts it too), so a sink declares its header size as ``overhead``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

from ._contract import level_at
from ._tcp import TcpStreamSink

__all__ = ["Rfc5424", "SyslogTcpSink", "SyslogUdpSink"]

FACILITY_USER = 1
SEVERITY_INFO = 6
#: RFC 5424 severity of each level (anything else is informational).
SEVERITIES = {
    "critical": 2,
    "error": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": SEVERITY_INFO,
    "debug": 7,
}
MSGID = "coroscope"
# The largest UDP payload over IPv4.
MAX_DATAGRAM = 65_507


def _printable(text: str, limit: int, default: str) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most ``limit``."""
    clean = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return clean or default


class Rfc5424:
    """Builds RFC 5424 headers; the timestamp is refreshed once per batch."""

    __slots__ = ("_pid", "_stamp_prefix", "_stamp_second", "app_name", "hostname")

    def __init__(self, app_name: str = "", hostname: str | None = None) -> None:
        self.app_name = _printable(app_name, 48, "coroscope")
        self.hostname = _printable(socket.gethostname() if hostname is None else hostname, 255, "-")
        self._pid = os.getpid()
        self._stamp_second = -1
        self._stamp_prefix = ""

    def reset_after_fork(self) -> None:
        """In a forked child: this process's pid."""
        self._pid = os.getpid()

    def _timestamp(self) -> str:
        now = time.time_ns()
        second, ns = divmod(now, 1_000_000_000)
        if second != self._stamp_second:
            self._stamp_second = second
            self._stamp_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp_prefix}.{ns // 1000:06d}Z"

    def header(self, severity: int, timestamp: str) -> bytes:
        """``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - `` as bytes."""
        pri = FACILITY_USER * 8 + severity
        return (
            f"<{pri}>1 {timestamp} {self.hostname} {self.app_name} {self._pid} {MSGID} - "
        ).encode("ascii")

    def max_header(self) -> int:
        """The longest header this process can produce (pid digits may grow at a fork)."""
        return (
            len(self.header(SEVERITY_INFO, "0000-00-00T00:00:00.000000Z")) + 7 - len(str(self._pid))
        )

    def messages(self, records: list[bytes], levels: Sequence[str] = ()) -> list[bytes]:
        """A message (header + record) for each record, headers built once per batch."""
        stamp = self._timestamp()
        headers: dict[str, bytes] = {}
        out = []
        for index, record in enumerate(records):
            level = level_at(levels, index)
            head = headers.get(level)
            if head is None:
                head = headers[level] = self.header(SEVERITIES.get(level, SEVERITY_INFO), stamp)
            out.append(head + record)
        return out


class SyslogTcpSink(TcpStreamSink):
    """``syslog+tcp://HOST:PORT``: RFC 5424 with RFC 6587 octet counting."""

    def __init__(
        self, host: str, port: int, *, app_name: str, timeout: float, resend_bytes: int
    ) -> None:
        super().__init__(
            host,
            port,
            timeout=timeout,
            resend_bytes=resend_bytes,
            name=f"syslog+tcp://{host}:{port}",
        )
        self.syslog = Rfc5424(app_name)
        self.overhead = self.syslog.max_header()

    def frames(self, records: list[bytes], levels: Sequence[str]) -> list[bytes]:
        return [b"%d %b" % (len(msg), msg) for msg in self.syslog.messages(records, levels)]

    def reset_after_fork(self) -> None:
        super().reset_after_fork()
        self.syslog.reset_after_fork()


class SyslogUdpSink:
    """``syslog+udp://HOST:PORT``: one RFC 5424 message per datagram, never split."""

    def __init__(self, host: str, port: int, *, app_name: str, timeout: float) -> None:
        self.name = f"syslog+udp://{host}:{port}"
        self.host = host
        self.port = port
        self.timeout = timeout
        self.syslog = Rfc5424(app_name)
        self.overhead = self.syslog.max_header()
        self.record_limit = MAX_DATAGRAM - self.overhead
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] | tuple[str, int, int, int] | None = None

    def _socket(self) -> tuple[socket.socket, tuple[str, int] | tuple[str, int, int, int]]:
        if self._sock is None or self._address is None:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.settimeout(self.timeout)
            self._sock, self._address = sock, address  # type: ignore[assignment]
        assert self._address is not None
        return self._sock, self._address

    def write_batch(
        self, records: list[bytes], levels: Sequence[str] = ()
    ) -> dict[str, int] | None:
        sock, address = self._socket()
        failed = 0
        for message in self.syslog.messages(records, levels):
            try:
                sock.sendto(message, address)
            except OSError:  # EMSGSIZE, ENOBUFS, a send timeout: this datagram is lost
                failed += 1
        if failed == len(records):
            self.close()  # resolve the address and make a new socket next time
        return {"sink_error": failed} if failed else None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def reset_after_fork(self) -> None:
        """In a forked child: a socket of its own and this process's pid."""
        self.close()
        self.syslog.reset_after_fork()
