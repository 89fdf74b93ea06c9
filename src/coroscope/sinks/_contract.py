"""The contract between the writer thread and a sink.

A sink receives a batch of rendered records (JSON bytes without a trailing newline) with
each record's level beside it, on the writer thread, which is the only thread that ever
calls it.  ``write_batch(records, levels)``:

* returns ``None`` when every record was delivered;
* returns a mapping ``reason -> count`` for records it gave up on for good (a datagram
  that could not be sent, records an OTLP receiver rejected): the writer reports them as
  lost and never retries them;
* raises :class:`PartialWrite` when the first ``written`` records were delivered and the
  rest were not (the writer keeps the rest and retries them with backoff), or any other
  exception when nothing was (the writer keeps the whole batch).

``levels[i]`` is the ``level`` of ``records[i]`` (``info``, ``warning``, ...), so that a sink
which needs it (a syslog severity) never parses a record back; a sink called without
levels takes every record as ``info``.

A sink may also have an ``overhead`` (bytes it adds to each record, counted against
``COROSCOPE_MAX_RECORD_BYTES``), a ``record_limit`` (the largest record it can carry) and
a ``reset_after_fork()`` method (drop connections and state inherited from the parent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["PartialWrite", "Sink", "level_at"]


def level_at(levels: Sequence[str], index: int) -> str:
    """The level of record ``index`` of a batch (``info`` when not given)."""
    return levels[index] if index < len(levels) else "info"


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

    def write_batch(
        self, records: list[bytes], levels: Sequence[str] = ()
    ) -> Mapping[str, int] | None:
        """Deliver ``records`` (see the module docs for the outcomes)."""

    def close(self) -> None:
        """Release the output; a later write may reopen it."""
