"""Walking a suspended task's await chain and capturing each frame.

Called from the capture callbacks at the moment the task's root coroutine yields: then
every coroutine of the chain is suspended (``cr_suspended``), the link of each is set, and
the frames cannot change until the task resumes.  Links are followed through coroutines
(``cr_await``), generator-based coroutines (``gi_yieldfrom``), async generators
(``ag_await``) and the helper objects an ``async for`` or ``__await__()`` parks on, which
expose their target only to the garbage collector (see :mod:`._awaitables`).

An exception thrown into a task runs the chain again (each coroutine passes the throw to
the one it awaits), so at that moment the chain cannot be walked through its links.  It
is walked through the frames instead: the frame receiving the exception is linked, by
``f_back``, to the frame that threw it in, up to the root (:meth:`ChainCapture.thrown`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from inspect import CO_ASYNC_GENERATOR, CO_COROUTINE, CO_ITERABLE_COROUTINE
from types import AsyncGeneratorType, CodeType, CoroutineType, FrameType, GeneratorType
from typing import Any, Protocol

from .._record import FrameRecord, Place
from ._awaitables import OPAQUE_LINKS, awaited_value, awaits, opaque_target
from ._places import Places
from ._stack import EXCEPT, block_items, link_of

__all__ = ["MAX_DEPTH", "ChainCapture", "LocalsSource", "local_value"]

#: Frames followed in one chain at most.
MAX_DEPTH = 64

# Python 3.12 caches a function frame's f_locals dict on the frame (3.13 returns a proxy).
_FRAME_CACHES_LOCALS = sys.version_info < (3, 13)


class LocalsSource(Protocol):
    """What the capture needs of a locals renderer (see :mod:`coroscope.values`)."""

    def new_budget(self) -> Any:
        """A fresh byte and time budget for one record."""

    def render_locals(self, f_locals: Mapping[str, object], budget: Any = None) -> dict[str, Any]:
        """A frame's locals as JSON-ready values, spending ``budget``."""

    def render_value(self, value: object, budget: Any = None) -> Any:
        """One value as a JSON-ready value, spending ``budget``."""


def local_value(frame: FrameType, name: str) -> object:
    """One local of a suspended frame, read as the capture reads locals (``None`` if unset).

    On 3.12 reading ``f_locals`` fills a dict cached on the frame, which would keep the
    frame's objects alive after the program deleted them; it is emptied again unless the
    program holds it (a ``locals()`` it kept).
    """
    f_locals = frame.f_locals
    value = f_locals.get(name)
    # Held by the frame, this name and getrefcount's argument: nobody else has it.
    if _FRAME_CACHES_LOCALS and type(f_locals) is dict and sys.getrefcount(f_locals) <= 3:
        f_locals.clear()
    return value


_MAX_EMPTY = 65_536  # places remembered as holding nothing for their blocks

# A frame of a chain before its locals are rendered: (place, frame, awaits, owner), the
# owner being the suspended coroutine (or generator) whose stack the frame's blocks are read
# from, or None.
_Pending = tuple[Place, FrameType, "tuple[str, str | None] | None", object]

_FLAG_KINDS = (
    (CO_COROUTINE, "coroutine"),
    (CO_ASYNC_GENERATOR, "async_generator_asend"),
    (CO_ITERABLE_COROUTINE, "generator"),
)


def _awaits_frame(code: CodeType) -> tuple[str, str | None]:
    """What a frame awaits when only the awaited frame is known (a throw in progress)."""
    flags = code.co_flags
    for flag, kind in _FLAG_KINDS:
        if flags & flag:
            return (kind, code.co_qualname)
    return ("generator", code.co_qualname)


class ChainCapture:
    """Capture the frames of an await chain.

    ``renderer`` is ``None`` when locals are off; otherwise its ``render_locals`` is called
    with each frame's locals (cell and free variables included) and one budget per record,
    spent root frame first (the application's own frames usually come first; library
    internals further in).
    """

    __slots__ = ("_empty", "places", "renderer")

    def __init__(self, renderer: LocalsSource | None, places: Places) -> None:
        self.renderer = renderer
        self.places = places
        #: Places whose frames hold nothing for their blocks (kept: their ids are keys).
        self._empty: dict[int, Place] = {}

    # -- the ways into a chain -----------------------------------------------------------

    def suspended(self, root: object, value: object) -> tuple[FrameRecord, ...]:
        """All frames from ``root`` (a suspended coroutine) down to the awaited object."""
        return self._finish(self._walk(root, value, []))

    def resumed(
        self, root_frame: FrameType, link: object, value: object
    ) -> tuple[FrameRecord, ...]:
        """The chain of a task being resumed: its root frame, then the still-suspended links.

        At a root's resume its ``cr_await`` is already cleared, so the caller passes the
        link it saved at the suspend; the frames below have not run since.
        """
        pending: list[_Pending] = []
        place = self.places.here(root_frame.f_code, root_frame)
        if place is not None:
            pending.append((place, root_frame, awaits(link, value), None))
        return self._finish(self._walk(link, value, pending))

    def thrown(
        self, frame: FrameType, root_frame: FrameType, value: object
    ) -> tuple[FrameRecord, ...]:
        """The chain of a task an exception is being thrown into, from the frame that
        receives it (the innermost one) up through ``f_back`` to ``root_frame``.

        Only the root frame is captured if the root is not found above ``frame``.
        """
        inner_first: list[FrameType] = []
        here: FrameType | None = frame
        while here is not None and len(inner_first) < MAX_DEPTH:
            inner_first.append(here)
            if here is root_frame:
                break
            here = here.f_back
        else:
            inner_first = [root_frame]
        pending: list[_Pending] = []
        below: FrameType | None = None
        for here in inner_first:  # innermost first, so each frame knows what it awaits
            place = self.places.here(here.f_code, here)
            if place is not None:
                waits = _awaits_frame(below.f_code) if below is not None else awaited_value(value)
                pending.append((place, here, waits, None))
            below = here
        pending.reverse()
        return self._finish(pending)

    def frame(self, frame: FrameType) -> FrameRecord | None:
        """One frame alone (no link known), or ``None`` if its module is left out."""
        place = self.places.here(frame.f_code, frame)
        if place is None:
            return None
        return self._finish([(place, frame, None, None)])[0]

    # -- the work ------------------------------------------------------------------------

    def _finish(self, pending: list[_Pending]) -> tuple[FrameRecord, ...]:
        """Add the locals and the blocks' contents: one budget per record, spent root frame
        first."""
        renderer = self.renderer
        if renderer is None:
            return tuple([(place, None, waits, None) for place, _, waits, _ in pending])
        render = renderer.render_locals
        budget = renderer.new_budget()
        empty = self._empty
        out = []
        for place, frame, waits, owner in pending:
            f_locals = frame.f_locals
            rendered = render(f_locals, budget)
            held = None
            if owner is not None and id(place) not in empty:
                held = self._held(owner, frame, f_locals, budget)
                if held is None:  # the blocks active at an offset never change
                    if len(empty) >= _MAX_EMPTY:
                        empty.clear()
                    empty[id(place)] = place
            out.append((place, rendered, waits, held))
            # See local_value(): the frame, this name and getrefcount's argument.
            if _FRAME_CACHES_LOCALS and type(f_locals) is dict and sys.getrefcount(f_locals) <= 3:
                f_locals.clear()
            del f_locals
        return tuple(out)

    def _held(
        self, owner: object, frame: FrameType, f_locals: Mapping[str, object], budget: Any
    ) -> tuple[tuple[str, Any], ...] | None:
        """What the frame's blocks hold, rendered like locals: ``(kind, value)`` in stack
        order, the exception being handled last (kind ``except``); ``None`` if nothing."""
        locals_ids = {id(v) for v in f_locals.values()}
        items, handled = block_items(owner, frame.f_code, locals_ids, link_of(owner))
        if handled is not None:
            items.append((EXCEPT, handled))
        if not items:
            return None
        render = self.renderer.render_value  # type: ignore[union-attr]
        return tuple([(kind, render(value, budget)) for kind, value in items])

    def _walk(self, obj: Any, value: object, pending: list[_Pending]) -> list[_Pending]:
        here = self.places.here
        append = pending.append
        for _ in range(MAX_DEPTH):
            cls = type(obj)
            # Follow only suspended frames: reading the link of a running one is unsafe
            # (CPython 3.12.1 crashed reading cr_await of an executing coroutine).
            if cls is CoroutineType:
                if not obj.cr_suspended:
                    break
                frame, link = obj.cr_frame, obj.cr_await
            elif cls is GeneratorType:
                if not obj.gi_suspended:
                    break
                frame, link = obj.gi_frame, obj.gi_yieldfrom
            elif cls is AsyncGeneratorType:
                if not obj.ag_suspended:
                    break
                frame, link = obj.ag_frame, obj.ag_await
            elif cls in OPAQUE_LINKS:
                obj = opaque_target(obj)
                continue
            else:
                break
            place = here(frame.f_code, frame)
            if place is not None:
                append((place, frame, awaits(link, value), obj))
            obj = link
        return pending
