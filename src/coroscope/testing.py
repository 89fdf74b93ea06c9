"""Helpers for testing code with coroscope, and for coroscope's own tests.

``capture_records()`` monitors a block of code and collects the records coroscope wrote,
parsed back from their rendered JSON, so a test sees exactly what a log would hold::

    with coroscope.testing.capture_records() as records:
        asyncio.run(main())
    assert records[0]["event"] == "suspend"
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from . import _api
from ._config import Config
from .delivery import Processor

__all__ = ["MemorySink", "capture_records"]


class MemorySink:
    """A sink that keeps rendered records in memory (thread-safe)."""

    def __init__(self) -> None:
        self.name = "memory"
        self.lines: list[bytes] = []
        self._lock = threading.Lock()

    def write_batch(self, records: list[bytes], levels: Sequence[str] = ()) -> None:
        with self._lock:
            self.lines.extend(records)

    def close(self) -> None:
        pass

    def records(self) -> list[dict[str, Any]]:
        """Every record written so far, parsed."""
        with self._lock:
            return [orjson.loads(line) for line in self.lines]


@contextlib.contextmanager
def capture_records(
    processors: Iterable[Processor] = (),
    environ: Mapping[str, str] | None = None,
    **settings: Any,
) -> Iterator[list[dict[str, Any]]]:
    """Monitor the ``with`` block; the yielded list is filled with the records on exit.

    ``settings`` are those of :func:`coroscope.install` (``output`` is ignored).
    ``environ`` defaults to an empty environment, so a test is not affected by the
    ``COROSCOPE_*`` variables of the shell it runs in.  An installation running before
    the block (``COROSCOPE=1``, say) is paused during it and resumed after it.
    """
    settings.pop("output", None)
    config = Config.from_env({} if environ is None else environ, **settings)
    sink = MemorySink()
    collected: list[dict[str, Any]] = []
    previous = _api.detach()
    try:
        if not _api._install(config, tuple(processors), sink=sink):
            raise RuntimeError("coroscope could not be installed (no free sys.monitoring tool id)")
        try:
            yield collected
        finally:
            _api.flush(timeout=10.0)
            _api.uninstall(timeout=10.0)
            collected.extend(sink.records())
    finally:
        _api.reattach(previous)
