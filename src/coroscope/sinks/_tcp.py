"""Records over a TCP connection: connecting, noticing a dead peer, resending.

TCP tells the sender nothing about what the *application* at the other end read: bytes
the kernel accepted die with an aggregator that exits before reading them (rsyslog stops
reading at shutdown, then closes its connections with data still in its socket buffer).
So a stream sink keeps the most recent records it sent, up to ``resend_bytes``
(``COROSCOPE_RESEND_BYTES``), and after a broken connection sends them again, first, on
the next one.

The guarantee: a record is lost without being reported only if it was sent more than
``resend_bytes`` before the connection broke *and* the aggregator had not processed it.
What an aggregator can hold unprocessed is its socket receive buffer (Linux autotunes it up
to the maximum of ``net.ipv4.tcp_rmem``, 6 MiB by default) plus any in-memory queue of its
own, plus this sink's send buffer (fixed at ``SEND_BUFFER``, doubled by the kernel).  Records
in the window may arrive twice, with the same ``pid`` and ``seq``.  ``resend_bytes=0``
gives at-most-once delivery.  A record whose bytes did not all reach the kernel is not
counted as sent: the writer keeps it and retries it.

Before each batch the sink checks, without blocking, whether the peer closed the
connection, so that a batch is not written blindly into a connection that is already
gone.  A send that makes no progress for ``timeout`` seconds (a stalled aggregator)
counts as a broken connection.

The writer thread is the only caller; nothing here blocks the event loop.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import select
import socket
from collections import deque
from collections.abc import Sequence

from ._contract import PartialWrite

__all__ = ["TcpJsonSink", "TcpStreamSink"]

SEND_BUFFER = 128 * 1024


class TcpStreamSink:
    """A TCP connection carrying framed records, reconnected on demand (base class)."""

    overhead = 0
    record_limit: int | None = None

    def __init__(
        self, host: str, port: int, *, timeout: float, resend_bytes: int, name: str
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.timeout = timeout
        self.resend_bytes = max(0, resend_bytes)
        self.connects = 0
        self._sock: socket.socket | None = None
        self._window: deque[bytes] = deque()
        self._window_size = 0
        self._resend = False

    # -- framing (subclasses) -----------------------------------------------------------

    def frames(self, records: list[bytes], levels: Sequence[str]) -> list[bytes]:
        """The bytes sent for each record."""
        raise NotImplementedError

    # -- the connection -----------------------------------------------------------------

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            # A fixed send buffer (no autotuning to megabytes) bounds what a dying
            # connection can swallow, so that the resend window covers it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:
            pass
        self.connects += 1
        return sock

    def _peer_closed(self, sock: socket.socket) -> bool:
        """Whether the peer closed or reset the connection (never blocks)."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return not sock.recv(65536)  # aggregators send nothing: b"" is end of stream
        except OSError:
            return True

    def _drop_connection(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._resend = self.resend_bytes > 0 and bool(self._window)
            with contextlib.suppress(OSError):
                sock.close()

    def _connection(self) -> socket.socket:
        sock = self._sock
        if sock is not None and self._peer_closed(sock):
            self._drop_connection()
            sock = None
        if sock is None:
            sock = self._sock = self._connect()
        return sock

    def _send(self, sock: socket.socket, data: bytes) -> tuple[int, OSError | None]:
        """Send ``data``: the bytes the kernel accepted, and the error that stopped it."""
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            try:
                sent += sock.send(view[sent:])
            except InterruptedError:
                continue
            except OSError as exc:
                return sent, exc
        return sent, None

    def _remember(self, frames: list[bytes]) -> None:
        if not self.resend_bytes:
            return
        window = self._window
        window.extend(frames)
        self._window_size += sum(map(len, frames))
        while self._window_size > self.resend_bytes and len(window) > 1:
            self._window_size -= len(window.popleft())

    # -- the sink protocol --------------------------------------------------------------

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        frames = self.frames(records, levels)
        sock = self._connection()
        if self._resend:
            _, error = self._send(sock, b"".join(self._window))
            if error is not None:
                self._drop_connection()
                raise PartialWrite(0, error)
            self._resend = False
        sent, error = self._send(sock, b"".join(frames))
        if error is None:
            self._remember(frames)
            return
        ends = list(itertools.accumulate(map(len, frames)))
        whole = bisect.bisect_right(ends, sent)
        self._remember(frames[:whole])
        self._drop_connection()
        raise PartialWrite(whole, error)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def reset_after_fork(self) -> None:
        """In a forked child: close the parent's socket copy and forget its records."""
        self.close()
        self._window.clear()
        self._window_size = 0
        self._resend = False


class TcpJsonSink(TcpStreamSink):
    """``tcp://HOST:PORT``: one JSON record per line (Vector, Fluent Bit, Logstash)."""

    overhead = 0

    def __init__(self, host: str, port: int, *, timeout: float, resend_bytes: int) -> None:
        super().__init__(
            host, port, timeout=timeout, resend_bytes=resend_bytes, name=f"tcp://{host}:{port}"
        )

    def frames(self, records: list[bytes], levels: Sequence[str]) -> list[bytes]:
        return [record + b"\n" for record in records]
