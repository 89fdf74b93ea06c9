"""Delivery: the writer thread, from buffered records to bytes handed to a sink.

Capture appends records to the bounded :mod:`._buffer` (never blocking); the writer thread
(:mod:`._writer`) drains it in batches, builds each record's event dict (:mod:`._events`,
with places' blocks from :mod:`._blocks` and timestamps from :mod:`._clock`), renders it
through the user's structlog processors and orjson (:mod:`._render`), shrinks the rare
record over the size cap (:mod:`._shrink`) and hands the batch to the sink.
"""

from __future__ import annotations

from ._buffer import RecordBuffer
from ._events import EventBuilder
from ._recorder import Recorder
from ._render import BARE, Processor, Renderer
from ._writer import Writer

__all__ = [
    "BARE",
    "EventBuilder",
    "Processor",
    "RecordBuffer",
    "Recorder",
    "Renderer",
    "Writer",
]
