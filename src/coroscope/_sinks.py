"""Where rendered records go, and the contract between a sink and the writer thread.

A sink receives a batch of rendered records (JSON bytes without a trailing newline) on
the writer thread, which is the only thread that ever calls it.  ``write_batch``:

* returns ``None`` when every record was delivered;
* returns a mapping ``reason -> count`` for records it gave up on for good (a datagram
  that could not be sent, records an OTLP receiver rejected): the writer reports them as
  lost and never retries them;
* raises :class:`PartialWrite` when the first ``written`` records were delivered and the
  rest were not (the writer keeps the rest and retries them with backoff), or any other
  exception when nothing was (the writer keeps the whole batch).

A sink may also have an ``overhead`` (bytes it adds to each record, counted against
``COROSCOPE_MAX_RECORD_BYTES``), a ``record_limit`` (the largest record it can carry) and
a ``reset_after_fork()`` method (drop connections and state inherited from the parent).

This module holds the local outputs: standard streams and files.  Network outputs live
in :mod:`._net` (TCP), :mod:`._syslog` and :mod:`._otlp`, imported only when used.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import sys
from collections.abc import Mapping
from typing import Protocol

from ._outputs import parse_output

__all__ = ["FileSink", "PartialWrite", "Sink", "StreamSink", "open_sink"]

# The largest write(2) to a regular file.  Each write holds whole lines; one O_APPEND
# write to a local file is atomic with respect to other appenders on Linux.
FILE_CHUNK = 1 << 20
# Pipes and sockets (a container's stdout, a pre-forked server's shared stderr): writes
# of at most PIPE_BUF bytes are atomic, so lines of several processes never interleave.
PIPE_CHUNK: int = getattr(select, "PIPE_BUF", 4096)


class PartialWrite(Exception):
    """A batch of which only the first ``written`` records were delivered.

    ``lost`` counts records of the delivered part the sink gave up on (see the module
    docs); ``retry_after`` is a delay the receiver asked for, in seconds, if any.
    """

    def __init__(
        self,
        written: int,
        cause: BaseException,
        *,
        lost: Mapping[str, int] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.written = written
        self.cause = cause
        self.lost = dict(lost or {})
        self.retry_after = retry_after


class Sink(Protocol):
    """The writer's view of an output."""

    name: str

    def write_batch(self, records: list[bytes]) -> Mapping[str, int] | None:
        """Deliver ``records`` (see the module docs for the outcomes)."""

    def close(self) -> None:
        """Release the output; a later write may reopen it."""


class LineWriter:
    """Writes records as newline-terminated lines to a file descriptor.

    Records are grouped into writes of at most ``chunk`` bytes, split only between
    records, so that each ``write(2)`` holds whole lines.  If a write fails after part of
    a line went out, the next write starts with a newline: the torn line stays one bad
    line instead of corrupting the record after it.
    """

    __slots__ = ("_torn",)

    def __init__(self) -> None:
        self._torn = False

    def forget(self) -> None:
        """A new file: nothing to mend."""
        self._torn = False

    def write(self, fd: int, records: list[bytes], chunk: int) -> None:
        """Write every record, or raise :class:`PartialWrite` counting whole lines written."""
        done_records = 0
        total = len(records)
        while done_records < total:
            end = done_records
            size = 0
            while end < total and (end == done_records or size + len(records[end]) < chunk):
                size += len(records[end]) + 1
                end += 1
            prefix = b"\n" if self._torn else b""
            data = prefix + b"\n".join(records[done_records:end]) + b"\n"
            view = memoryview(data)
            sent = 0
            while sent < len(data):
                try:
                    sent += os.write(fd, view[sent:])
                except InterruptedError:
                    continue
                except OSError as exc:
                    lines = data.count(b"\n", 0, sent) - (1 if prefix and sent else 0)
                    if sent:
                        self._torn = data[sent - 1] != 0x0A
                    raise PartialWrite(done_records + max(0, lines), exc) from exc
            self._torn = False
            done_records = end


def _chunk_for(fd: int) -> int:
    mode = os.fstat(fd).st_mode
    return FILE_CHUNK if stat.S_ISREG(mode) else PIPE_CHUNK


class StreamSink:
    """Standard error or standard output, written to the file descriptor directly.

    Writing the descriptor (not ``sys.stderr``) keeps records whole even when the
    application's own text stream is buffered, and needs no lock shared with it.  If the
    stream has no file descriptor (replaced by the application), its ``write`` is used.
    """

    overhead = 0

    def __init__(self, which: str) -> None:
        if which not in ("stderr", "stdout"):
            raise ValueError(which)
        self.name = which
        self._lines = LineWriter()

    def write_batch(self, records: list[bytes]) -> None:
        stream = sys.stderr if self.name == "stderr" else sys.stdout
        if stream is None:
            raise OSError(f"sys.{self.name} is None")
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            stream.write(b"\n".join(records).decode("utf-8", "replace") + "\n")
            stream.flush()
            return
        self._lines.write(fd, records, _chunk_for(fd))

    def close(self) -> None:
        pass


class FileSink:
    """A file opened for appending (``O_APPEND``), reopened when it is rotated.

    With ``O_APPEND`` every write lands at the end of the file, so several processes
    appending to the same file never overwrite each other, and each write holds whole
    lines (see :class:`LineWriter`).

    Rotation: before each batch the sink compares the device and inode of the path with
    those of the file it has open (one ``stat``, no signal handler): when logrotate has
    renamed the file (its default ``create`` mode) or removed it, the sink opens a new
    file at the path.  ``copytruncate`` needs nothing: appends go to the new end.
    """

    overhead = 0

    def __init__(self, path: str) -> None:
        self.name = path
        self.path = os.path.abspath(path)
        self._fd: int | None = None
        self._ident: tuple[int, int] = (-1, -1)
        self._chunk = FILE_CHUNK
        self._lines = LineWriter()

    def open(self) -> None:
        """Open (or create) the file now; raises ``OSError`` if it cannot be."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(fd)
        ident = (st.st_dev, st.st_ino)
        if ident != self._ident:
            self._lines.forget()
        self._fd, self._ident = fd, ident
        self._chunk = FILE_CHUNK if stat.S_ISREG(st.st_mode) else PIPE_CHUNK

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return (st.st_dev, st.st_ino) != self._ident

    def write_batch(self, records: list[bytes]) -> None:
        if self._fd is not None and self._rotated():
            self.close()
        if self._fd is None:
            self.open()
        assert self._fd is not None
        try:
            self._lines.write(self._fd, records, self._chunk)
        except PartialWrite:
            self.close()
            raise

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def reset_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor; the first write reopens."""
        self.close()


def open_sink(
    output: str,
    *,
    service: str = "",
    timeout: float = 2.0,
    resend_bytes: int = 8 << 20,
    environ: Mapping[str, str] | None = None,
) -> Sink:
    """The sink for an output setting (see :mod:`._outputs` for the forms).

    Files are opened at once, to report errors early; network outputs connect on their
    first batch, on the writer thread.  ``service`` names the program to aggregators
    (syslog APP-NAME, OTLP ``service.name``); empty means ``OTEL_SERVICE_NAME`` from
    ``environ`` (by default the process environment).
    """
    spec = parse_output(output)
    if spec.kind in ("stderr", "stdout"):
        return StreamSink(spec.kind)
    if spec.kind == "file":
        sink = FileSink(os.path.expanduser(spec.path))
        sink.open()
        return sink
    env = os.environ if environ is None else environ
    service = service or env.get("OTEL_SERVICE_NAME", "").strip()
    if spec.kind == "tcp":
        from ._net import TcpJsonSink

        return TcpJsonSink(spec.host, spec.port, timeout=timeout, resend_bytes=resend_bytes)
    if spec.kind in ("syslog+tcp", "syslog+udp"):
        from ._syslog import SyslogTcpSink, SyslogUdpSink

        if spec.kind == "syslog+tcp":
            return SyslogTcpSink(
                spec.host, spec.port, app_name=service, timeout=timeout, resend_bytes=resend_bytes
            )
        return SyslogUdpSink(spec.host, spec.port, app_name=service, timeout=timeout)
    from ._otlp import OtlpHttpSink

    return OtlpHttpSink(spec.host, spec.port, spec.path, service=service, timeout=timeout)
