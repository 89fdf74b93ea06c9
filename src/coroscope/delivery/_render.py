"""From event dicts to JSON lines, on the writer thread: structlog processors and orjson.

Each record's event dict goes through a structlog processor chain (the user's processors
first, then ``structlog.processors.JSONRenderer`` with ``orjson``) and comes out as bytes.
The processors are called directly with structlog's protocol
``(logger, method_name, event_dict)``: coroscope keeps structlog's composable processors
without paying for a ``BoundLogger`` per record, and never touches the application's global
structlog configuration.

Without user processors the chain is ``orjson.dumps`` alone, and structlog is not even
imported (decided once, here, not per record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

__all__ = ["Processor", "Renderer"]

Processor = Callable[[Any, str, dict[str, Any]], Any]


class _NeverRaised(Exception):
    """Stands for ``structlog.DropEvent`` when no processor could raise it."""


def _orjson_dumps(event_dict: dict[str, Any], **_: Any) -> bytes:
    return orjson.dumps(event_dict, default=_fallback)


def _fallback(obj: object) -> str:
    # Only reached through user processors that add values orjson does not know.
    return f"<{type(obj).__qualname__}>"


class Renderer:
    """Runs the processor chain; the last processor must return ``bytes`` or ``str``.

    ``drop`` is the exception a processor raises to drop a record
    (``structlog.DropEvent``).
    """

    __slots__ = ("_chain", "drop", "processors", "render")

    def __init__(self, processors: Iterable[Processor] = ()) -> None:
        self.processors = tuple(processors)
        self.render: Callable[[dict[str, Any]], bytes]
        self.drop: type[BaseException]
        if self.processors:
            import structlog

            self._chain: tuple[Processor, ...] = (
                *self.processors,
                structlog.processors.JSONRenderer(serializer=_orjson_dumps),
            )
            self.render = self._run_chain
            self.drop = structlog.DropEvent
        else:
            self._chain = ()
            self.render = _orjson_dumps
            self.drop = _NeverRaised

    def __call__(self, event_dict: dict[str, Any]) -> bytes:
        """Render one event dict; raises :attr:`drop` if a processor drops it."""
        return self.render(event_dict)

    def _run_chain(self, event_dict: dict[str, Any]) -> bytes:
        value: Any = event_dict
        method = event_dict.get("level", "info")
        for processor in self._chain:
            value = processor(None, method, value)
        if type(value) is str:
            return value.encode("utf-8", "replace")
        return bytes(value)


#: The renderer of coroscope's own records when the user's processors cannot be trusted
#: with them (a loss report they rejected, a record they made too long).
BARE = Renderer()
