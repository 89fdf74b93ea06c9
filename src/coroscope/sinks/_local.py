"""Local outputs: standard error, standard output and files.

Both write the file descriptor directly, in writes of whole lines (see :class:`LineWriter`).
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import sys
from collections.abc import Sequence

from ._contract import PartialWrite

__all__ = ["FileSink", "LineWriter", "StreamSink"]

# The largest write(2) to a regular file.  Each write holds whole lines; one O_APPEND
# write to a local file is atomic with respect to other appenders on Linux.
FILE_CHUNK = 1 << 20
# Pipes and sockets (a container's stdout, a pre-forked server's shared stderr): writes
# of at most PIPE_BUF bytes are atomic, so lines of several processes never interleave.
PIPE_CHUNK: int = getattr(select, "PIPE_BUF", 4096)


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

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
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

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
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
