"""Streaming reader of coroscope logs, shared by ``coroscope report`` and ``coroscope trace``.

A log is JSON lines, plain or gzip-compressed (recognised by its magic bytes, not its
name), read from a path or from standard input (``-``).  The reader never holds more than
one chunk (1 MiB) plus one partial line in memory, so a log of any size streams through.

It is tolerant by design, because a log file is rarely only ours: lines from other loggers,
non-JSON lines, a record cut short by a crash (mid-file, or the last line) and a gzip stream
that ends early are all counted in :class:`ReadStats` and skipped; only dicts whose
``logger`` is ``"coroscope"`` are yielded.  A record glued to the tail of a truncated one
(a process that crashed mid-line and was restarted, appending to the same file) is
recovered.

Also here: the throttled progress line (:class:`Progress`).  The helpers that read places
out of a record are in :mod:`._places`.
"""

from __future__ import annotations

import gzip
import os
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from .. import _schema as S

__all__ = [
    "CHUNK_SIZE",
    "LOGGER_NAME",
    "MAX_LINE",
    "LogReader",
    "Progress",
    "ReadStats",
    "check_inputs",
]

LOGGER_NAME = S.LOGGER_NAME
CHUNK_SIZE = 1 << 20
#: A "line" longer than this without a newline is not a record: it is skipped (and counted)
#: instead of growing memory without bound.
MAX_LINE = 64 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_RECOVER_ATTEMPTS = 64
_MAX_ERRORS = 20


@dataclass(slots=True)
class ReadStats:
    """What the reader saw; ``skipped`` lines are every non-blank line not yielded."""

    files: int = 0
    bytes: int = 0
    lines: int = 0
    records: int = 0
    #: Well-formed JSON that is not a coroscope record (another logger's line, a non-object).
    foreign: int = 0
    #: Lines that are not JSON at all.
    invalid: int = 0
    #: Records cut short: an unparsable last line, or a broken head glued to a recovered record.
    truncated: int = 0
    #: Records found after a truncated one on the same line.
    recovered: int = 0
    #: Lines over :data:`MAX_LINE` bytes.
    oversize: int = 0
    #: Files that could not be read to their end (bad gzip data, I/O errors), as messages.
    errors: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Lines not yielded as records (blank lines are not counted anywhere)."""
        return self.foreign + self.invalid + self.truncated + self.oversize

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "lines": self.lines,
            "records": self.records,
            "skipped": {
                "total": self.skipped,
                "foreign": self.foreign,
                "invalid": self.invalid,
                "truncated": self.truncated,
                "oversize": self.oversize,
            },
            "recovered": self.recovered,
            "errors": list(self.errors),
        }

    def _error(self, message: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)


class Progress:
    """A throttled ``bytes read / total`` line on a stream (normally stderr).

    Disabled instances cost one attribute test per chunk.  ``total`` is ``None`` when the
    size is unknown (standard input, a pipe).  ``final`` shows the closing figures even if
    the input was read too fast for any line to be shown (for an explicit ``--progress``).
    """

    __slots__ = (
        "_interval",
        "_last",
        "_shown",
        "_start",
        "_stream",
        "enabled",
        "final",
        "label",
        "total",
    )

    def __init__(
        self,
        *,
        enabled: bool,
        label: str = "coroscope",
        total: int | None = None,
        stream: IO[str] | None = None,
        interval: float = 0.5,
        final: bool = False,
    ) -> None:
        self.enabled = enabled
        self.final = final
        self.label = label
        self.total = total
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._start = time.monotonic()
        self._last = self._start
        self._shown = False

    def update(self, done: int, records: int, *, force: bool = False) -> None:
        """Show ``done`` bytes read if the last line is older than the interval."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        mb = done / 1e6
        elapsed = max(now - self._start, 1e-9)
        if self.total:
            pct = min(100.0, 100.0 * done / self.total)
            where = f"{mb:,.1f} / {self.total / 1e6:,.1f} MB ({pct:.0f}%)"
        else:
            where = f"{mb:,.1f} MB"
        line = f"\r{self.label}: {where}, {mb / elapsed:,.1f} MB/s, {records:,} records"
        try:
            self._stream.write(line + "\x1b[K")
            self._stream.flush()
        except (OSError, ValueError):
            self.enabled = False
            return
        self._shown = True

    def finish(self, done: int, records: int) -> None:
        """Show the final figures and end the line (only if a line was shown)."""
        if self.enabled and (self._shown or self.final):
            self.update(done, records, force=True)
            try:
                self._stream.write("\n")
                self._stream.flush()
            except (OSError, ValueError):
                pass


class _Counted:
    """A read-only byte source that remembers how many bytes were taken from it.

    ``head`` holds bytes already read (to sniff the gzip magic) and is served first, so a
    pipe never needs to be rewound.
    """

    __slots__ = ("_head", "_raw", "consumed")

    def __init__(self, raw: IO[bytes], head: bytes) -> None:
        self._raw = raw
        self._head = head
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        head = self._head
        if not head:
            data = self._raw.read(size)
        elif 0 <= size <= len(head):
            data, self._head = head[:size], head[size:]
        else:
            self._head = b""
            data = head + self._raw.read(size - len(head) if size >= 0 else -1)
        self.consumed += len(data)
        return data

    def seek(self, offset: int, /) -> int:
        """Not supported: the source may be a pipe (gzip only seeks when asked to)."""
        raise OSError("coroscope log sources are read once, front to back")


def check_inputs(paths: Iterable[str]) -> list[str]:
    """Problems that make inputs unreadable (missing, a directory, no permission), as messages.

    Checked before any reading so a typo in the tenth path does not waste the first nine.
    """
    problems: list[str] = []
    stdin_seen = False
    for path in paths:
        if path == "-":
            if stdin_seen:
                problems.append("'-' (standard input) given more than once")
            stdin_seen = True
            continue
        if os.path.isdir(path):
            problems.append(f"{path}: is a directory")
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
    return problems


def _size(path: str) -> int | None:
    if path == "-":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if st.st_size > 0 else None


class LogReader:
    """Iterate over the coroscope records of one or more logs, in order, streaming.

    ``stats`` fills in as the iteration proceeds.  ``progress`` (optional) is told the
    number of input bytes consumed (compressed bytes for gzip files) once per chunk.
    """

    def __init__(
        self,
        paths: Iterable[str],
        *,
        progress: Progress | None = None,
        chunk_size: int = CHUNK_SIZE,
        max_line: int = MAX_LINE,
    ) -> None:
        self.paths = list(paths)
        self.stats = ReadStats()
        self.progress = progress
        self.chunk_size = chunk_size
        self.max_line = max_line
        if progress is not None and progress.total is None:
            sizes = [_size(p) for p in self.paths]
            if all(s is not None for s in sizes):
                progress.total = sum(s for s in sizes if s is not None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        done_before = 0
        for path in self.paths:
            if path == "-":
                raw: IO[bytes] = sys.stdin.buffer
                yield from self._read_source(raw, "<stdin>", done_before)
            else:
                with open(path, "rb") as raw:
                    yield from self._read_source(raw, path, done_before)
            done_before = self.stats.bytes
        if self.progress is not None:
            self.progress.finish(self.stats.bytes, self.stats.records)

    def _read_source(self, raw: IO[bytes], name: str, done_before: int) -> Iterator[dict[str, Any]]:
        self.stats.files += 1
        head = raw.read(2)
        counted = _Counted(raw, head)
        stream: _Counted | gzip.GzipFile = (
            gzip.GzipFile(fileobj=counted, mode="rb") if head == _GZIP_MAGIC else counted
        )
        try:
            yield from self._read_lines(stream, counted, name, done_before)
        finally:
            if isinstance(stream, gzip.GzipFile):
                stream.close()

    def _read_lines(
        self, stream: _Counted | gzip.GzipFile, counted: _Counted, name: str, done_before: int
    ) -> Iterator[dict[str, Any]]:
        stats = self.stats
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        progress = self.progress
        chunk_size = self.chunk_size
        max_line = self.max_line
        carry: list[bytes] = []
        carry_len = 0
        skipping = False  # inside a line already counted as oversize
        while True:
            try:
                chunk = stream.read(chunk_size)
            except (EOFError, OSError, zlib.error) as exc:
                # EOFError: a gzip stream cut short; BadGzipFile (an OSError) and zlib.error:
                # corrupt data.  What was read so far still counts.
                stats._error(f"{name}: {type(exc).__name__}: {exc}")
                break
            if not chunk:
                break
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if skipping:
                if not lines:
                    stats.bytes = done_before + counted.consumed
                    continue
                lines.pop(0)
                skipping = False
            elif carry and lines:
                carry.append(lines[0])
                lines[0] = b"".join(carry)
                carry = []
                carry_len = 0
            if tail:
                carry.append(tail)
                carry_len += len(tail)
                if carry_len > max_line:
                    carry = []
                    carry_len = 0
                    skipping = True
                    stats.oversize += 1
            records = 0
            foreign = 0
            for line in lines:
                try:
                    obj = loads(line)
                except decode_error:
                    if not line.strip():
                        continue
                    if len(line) > max_line:
                        stats.oversize += 1
                        continue
                    rec = self._recover(line)
                    if rec is not None:
                        records += 1
                        yield rec
                    continue
                if type(obj) is dict and obj.get(S.LOGGER) == LOGGER_NAME:
                    records += 1
                    yield obj
                else:
                    foreign += 1
            stats.lines += len(lines)
            stats.records += records
            stats.foreign += foreign
            stats.bytes = done_before + counted.consumed
            if progress is not None:
                progress.update(stats.bytes, stats.records)
        if carry:
            line = b"".join(carry)
            if line.strip():
                stats.lines += 1
                try:
                    obj = loads(line)
                except decode_error:
                    # The last line of the input is cut short: a truncated record (or, if it
                    # does not even start like JSON, just an unfinished foreign line).
                    if line.lstrip()[:1] == b"{":
                        stats.truncated += 1
                    else:
                        stats.invalid += 1
                else:
                    if type(obj) is dict and obj.get(S.LOGGER) == LOGGER_NAME:
                        stats.records += 1
                        yield obj
                    else:
                        stats.foreign += 1
        stats.bytes = done_before + counted.consumed

    def _recover(self, line: bytes) -> dict[str, Any] | None:
        """Classify a line that is not JSON; return a record glued after a truncated one."""
        stats = self.stats
        start = line.find(b'{"', 1)
        attempts = 0
        while start > 0 and attempts < _RECOVER_ATTEMPTS:
            attempts += 1
            try:
                obj = orjson.loads(line[start:])
            except orjson.JSONDecodeError:
                start = line.find(b'{"', start + 1)
                continue
            if type(obj) is dict and obj.get(S.LOGGER) == LOGGER_NAME:
                head = line[:start].strip()
                if head[:1] == b"{":
                    stats.truncated += 1
                else:
                    stats.invalid += 1
                stats.recovered += 1
                return obj
            break
        if line.lstrip()[:1] == b"{" and b'"' + LOGGER_NAME.encode() + b'"' in line:
            stats.truncated += 1
        else:
            stats.invalid += 1
        return None


# -- reading one record -------------------------------------------------------------------
