"""Where rendered records go.  Sinks run on the writer thread only.

A sink receives a batch of rendered records (JSON bytes without a trailing newline) and
writes them whole, or raises ``OSError``; the writer counts a failed batch as lost and
reports it once the sink works again.
"""

from __future__ import annotations

import os
import sys
from typing import Protocol

__all__ = ["FileSink", "Sink", "StreamSink", "open_sink"]


class Sink(Protocol):
    """The writer's view of an output."""

    name: str

    def write_batch(self, records: list[bytes]) -> None:
        """Write every record of ``records``, or raise ``OSError``."""

    def close(self) -> None:
        """Release the output; later writes may reopen it."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[written:]


class StreamSink:
    """Standard error or standard output, written with one ``write(2)`` per batch.

    Writing the file descriptor directly (not ``sys.stderr``) keeps records whole even
    when the application's own text stream is buffered, and needs no lock shared with it.
    If the stream has no file descriptor (replaced by the application), its ``write`` is
    used instead.
    """

    def __init__(self, which: str) -> None:
        if which not in ("stderr", "stdout"):
            raise ValueError(which)
        self.name = which

    def write_batch(self, records: list[bytes]) -> None:
        data = b"\n".join(records) + b"\n"
        stream = sys.stderr if self.name == "stderr" else sys.stdout
        if stream is None:
            raise OSError(f"sys.{self.name} is None")
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
            return
        _write_all(fd, data)

    def close(self) -> None:
        pass


class FileSink:
    """A file opened for appending (``O_APPEND``): each batch is one ``write(2)``.

    With ``O_APPEND`` every write lands at the end of the file, so several processes
    appending to the same file never overwrite each other.
    """

    def __init__(self, path: str) -> None:
        self.name = path
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        """Open (or create) the file now; raises ``OSError`` if it cannot be."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write_batch(self, records: list[bytes]) -> None:
        if self._fd is None:
            self.open()
        assert self._fd is not None
        try:
            _write_all(self._fd, b"\n".join(records) + b"\n")
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def open_sink(output: str) -> Sink:
    """The sink for an output setting; files are opened at once to report errors early."""
    if output in ("stderr", "stdout"):
        return StreamSink(output)
    sink = FileSink(os.path.expanduser(output))
    sink.open()
    return sink
