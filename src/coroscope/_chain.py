"""Walking a suspended task's await chain and capturing each frame.

Called from the capture callback at the moment the task's root coroutine yields: then
every coroutine of the chain is suspended (``cr_running`` is false), ``cr_await`` of each
link is set, and the frames cannot change until the task resumes.  Links are followed
through coroutines (``cr_await``), generator-based coroutines (``gi_yieldfrom``), async
generators (``ag_await``) and the helper objects an ``async for`` or ``__await__()`` parks
on (``async_generator_asend``/``athrow``, ``coroutine_wrapper``), which expose their target
only to the garbage collector's referents.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import types
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, Protocol

from ._blocks import BlockIndex
from ._record import FrameRecord, Skeleton

__all__ = ["ChainCapture", "MAX_DEPTH", "ModuleFilter", "describe_awaitable"]

MAX_DEPTH = 64
MAX_REPR = 200

_CoroutineType = types.CoroutineType
# Python 3.12 caches a function frame's f_locals dict on the frame (3.13 returns a proxy).
_FRAME_CACHES_LOCALS = sys.version_info < (3, 13)
_GeneratorType = types.GeneratorType
_AsyncGeneratorType = types.AsyncGeneratorType


async def _probe_agen() -> Any:  # pragma: no cover - never iterated
    yield None


async def _probe_coro() -> None:  # pragma: no cover - never awaited
    return None


def _helper_types() -> tuple[type, ...]:
    agen = _probe_agen()
    asend = agen.asend(None)
    athrow = agen.athrow(GeneratorExit)
    coro = _probe_coro()
    wrapper = coro.__await__()
    found = (type(asend), type(athrow), type(wrapper))
    asend.close()
    athrow.close()
    coro.close()
    return found


# Objects whose only link onward is visible through gc referents.
_OPAQUE_LINKS: frozenset[type] = frozenset(_helper_types())


class _InertLoop:
    # Just enough of a loop to build a Future at import time without touching asyncio's
    # event loop policy.
    def get_debug(self) -> bool:
        return False


def _future_iter_type() -> type:
    future: Any = asyncio.Future(loop=_InertLoop())  # type: ignore[arg-type]
    return type(iter(future))


_FUTURE_ITER = _future_iter_type()  # what `await future` leaves in cr_await
_TASK_TYPES: frozenset[type] = frozenset({asyncio.Task, asyncio.tasks._PyTask})  # type: ignore[attr-defined]
_FUTURE_TYPES: frozenset[type] = frozenset({asyncio.Future, asyncio.futures._PyFuture})  # type: ignore[attr-defined]


def _callback_names(fut: Any) -> str:
    callbacks = fut._callbacks
    if not callbacks:
        return ""
    names = []
    for item in callbacks[:3]:
        fn = item[0] if type(item) is tuple else item
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        names.append(f"{name}()")
    more = f", <{len(callbacks) - 3} more>" if len(callbacks) > 3 else ""
    return f" cb=[{', '.join(names)}{more}]"


def _coro_name(coro: object) -> str:
    cls = type(coro)
    if cls is _CoroutineType:
        return coro.cr_code.co_qualname  # type: ignore[attr-defined, no-any-return]
    if cls is _GeneratorType:
        return coro.gi_code.co_qualname  # type: ignore[attr-defined, no-any-return]
    return cls.__qualname__


def describe_awaitable(obj: object) -> str:
    """A short, bounded description of what a task waits on, without calling user code.

    asyncio's own ``repr()`` of a future formats its callbacks through ``inspect`` and
    costs microseconds; this reads the same facts directly from the exact asyncio types.
    Any other object is shown by type and identity only.
    """
    cls = type(obj)
    if obj is None:
        return "None"
    if cls in _TASK_TYPES:
        task: Any = obj
        state = task._state.lower()
        name = task.get_name()
        # No get_coro() on a finished task (it crashes CPython 3.12.0-3.12.4, gh-122332).
        coro = "..." if state == "finished" else _coro_name(task.get_coro())
        text = f"<Task {state} name={name!r} coro=<{coro}()>>"
    elif cls in _FUTURE_TYPES:
        text = f"<Future {obj._state.lower()}{_callback_names(obj)}>"  # type: ignore[attr-defined]
    elif issubclass(cls, asyncio.Future) and cls.__module__.startswith("asyncio."):
        fut: Any = obj
        extra = ""
        children = getattr(fut, "_children", None)
        if type(children) is list:
            extra = f" children={len(children)}"
        text = f"<{cls.__qualname__} {fut._state.lower()}{extra}>"
    else:
        text = f"<{cls.__module__}.{cls.__qualname__} object at {id(obj):#x}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def _awaits(link: object, value: object) -> tuple[str, str | None] | None:
    """What a frame awaits: the type and qualified name of the next link."""
    if link is None:
        return None
    cls = type(link)
    if cls is _CoroutineType:
        return ("coroutine", link.cr_code.co_qualname)  # type: ignore[attr-defined]
    if cls is _GeneratorType:
        return ("generator", link.gi_code.co_qualname)  # type: ignore[attr-defined]
    if cls is _AsyncGeneratorType:
        return ("async_generator", link.ag_code.co_qualname)  # type: ignore[attr-defined]
    if cls in _OPAQUE_LINKS:
        inner: Any = _opaque_target(link)
        name = _coro_name(inner) if inner is not None else None
        if type(inner) is _AsyncGeneratorType:
            name = inner.ag_code.co_qualname
        return (cls.__qualname__, name)
    if cls is _FUTURE_ITER:
        future: Any = value
        fcls = type(future)
        return (fcls.__qualname__, future.get_name() if fcls in _TASK_TYPES else None)
    return (cls.__qualname__, None)


def _opaque_target(link: object) -> object | None:
    for ref in gc.get_referents(link):
        if type(ref) in (_CoroutineType, _GeneratorType, _AsyncGeneratorType):
            found: object = ref
            return found
    return None


class LocalsSource(Protocol):
    """What the capture needs of a locals renderer (see :mod:`._values`)."""

    def new_budget(self) -> Any:
        """A fresh byte and time budget for one record."""

    def render_locals(self, f_locals: Mapping[str, object], budget: Any = None) -> dict[str, Any]:
        """A frame's locals as JSON-ready values, spending ``budget``."""


# A frame of a chain before its locals are rendered: (skeleton, frame, awaits).
_Place = tuple[Skeleton, types.FrameType, "tuple[str, str | None] | None"]


def _line_at(code: types.CodeType, lasti: int) -> int:
    """The source line of the instruction at ``lasti`` (-1 if it has none)."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line if line is not None else -1
    return -1


class ModuleFilter:
    """Decides, from a module's name, whether its frames and tasks are captured.

    ``include`` (if not empty) lists the modules captured; ``exclude`` those left out even
    if included.  Both are ``fnmatch`` globs on dotted module names (``asyncio.*``).
    """

    __slots__ = ("_exclude", "_include")

    def __init__(self, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> None:
        self._include = include
        self._exclude = exclude

    def allows(self, module: str) -> bool:
        """Whether code from ``module`` is captured."""
        if self._include and not any(fnmatchcase(module, g) for g in self._include):
            return False
        return not any(fnmatchcase(module, g) for g in self._exclude)


# Per code object: the code itself (which keeps its id from being reused while cached)
# and its skeletons by instruction offset, or None if the code's module is left out.
_CodeEntry = tuple[types.CodeType, "dict[int, Skeleton] | None"]


class ChainCapture:
    """Capture the frames of an await chain, given its root coroutine.

    ``renderer`` is ``None`` when locals are off; otherwise its ``render_locals`` is called
    with each frame's locals mapping (cell and free variables included) and one budget per
    record, and must copy what it keeps.

    Everything about a frame that follows from its code object and instruction offset
    (name, file, line, enclosing blocks) is computed once and shared as a *skeleton*, so
    a capture costs a few attribute reads and dict lookups per frame, plus its locals.
    """

    __slots__ = ("_blocks", "_codes", "_filter", "_renderer")

    def __init__(
        self,
        renderer: LocalsSource | None,
        blocks: BlockIndex,
        module_filter: ModuleFilter | None = None,
    ) -> None:
        self._renderer = renderer
        self._blocks = blocks
        self._filter = module_filter or ModuleFilter()
        self._codes: dict[int, _CodeEntry] = {}

    def _entry(self, code: types.CodeType, frame: types.FrameType) -> _CodeEntry:
        module = frame.f_globals.get("__name__")
        allowed = self._filter.allows(module if type(module) is str else "")
        entry: _CodeEntry = (code, {} if allowed else None)
        if len(self._codes) >= 65_536:
            self._codes.clear()
        self._codes[id(code)] = entry
        return entry

    def allows(self, code: types.CodeType, frame: types.FrameType) -> bool:
        """Whether frames of ``code`` (running in ``frame``) are captured."""
        entry = self._codes.get(id(code))
        if entry is None:
            entry = self._entry(code, frame)
        return entry[1] is not None

    def skeleton(self, code: types.CodeType, frame: types.FrameType) -> Skeleton | None:
        """The shared ``(function, file, line, lasti, blocks)`` of a frame where it stands."""
        entry = self._codes.get(id(code))
        if entry is None:
            entry = self._entry(code, frame)
        skeletons = entry[1]
        if skeletons is None:
            return None
        lasti = frame.f_lasti
        found = skeletons.get(lasti)
        if found is None:
            found = self._new_skeleton(code, frame, lasti, skeletons)
        return found

    def skeleton_at(
        self, code: types.CodeType, frame: types.FrameType, lasti: int
    ) -> Skeleton | None:
        """The skeleton of ``code`` at offset ``lasti`` (where ``frame`` stood earlier)."""
        entry = self._codes.get(id(code))
        if entry is None:
            entry = self._entry(code, frame)
        skeletons = entry[1]
        if skeletons is None or lasti < 0:
            return None
        found = skeletons.get(lasti)
        if found is None:
            line = _line_at(code, lasti)
            found = (
                code.co_qualname,
                code.co_filename,
                line,
                lasti,
                self._blocks.blocks_at(code, line),
            )
            skeletons[lasti] = found
        return found

    def _new_skeleton(
        self, code: types.CodeType, frame: types.FrameType, lasti: int, into: dict[int, Skeleton]
    ) -> Skeleton:
        line = frame.f_lineno
        skeleton: Skeleton = (
            code.co_qualname,
            code.co_filename,
            line if line is not None else -1,
            lasti,
            self._blocks.blocks_at(code, line),
        )
        into[lasti] = skeleton
        return skeleton

    def frame_record(
        self, frame: types.FrameType, link: object, value: object
    ) -> FrameRecord | None:
        """Capture one frame, or ``None`` if its module is left out."""
        skeleton = self.skeleton(frame.f_code, frame)
        if skeleton is None:
            return None
        return self._finish([(skeleton, frame, _awaits(link, value))])[0]

    def capture(self, root: object, value: object) -> tuple[FrameRecord, ...]:
        """All frames from ``root`` (a suspended coroutine) down to the awaited object."""
        return self._finish(self._walk(root, value, []))

    def capture_resumed(
        self, root_frame: types.FrameType, link: object, value: object
    ) -> tuple[FrameRecord, ...]:
        """The chain of a task being resumed: its root frame, then the still-suspended links.

        At a root's resume its ``cr_await`` is already cleared, so the caller passes the
        link it saved at the suspend; the frames below have not run since.
        """
        places: list[_Place] = []
        skeleton = self.skeleton(root_frame.f_code, root_frame)
        if skeleton is not None:
            places.append((skeleton, root_frame, _awaits(link, value)))
        return self._finish(self._walk(link, value, places))

    def _finish(self, places: list[_Place]) -> tuple[FrameRecord, ...]:
        """Add the locals to a chain's places: one budget per record, spent root first
        (the application's own frames usually come first; library internals further in)."""
        renderer = self._renderer
        if renderer is None:
            return tuple([(skeleton, None, awaits) for skeleton, _, awaits in places])
        render = renderer.render_locals
        budget = renderer.new_budget()
        if not _FRAME_CACHES_LOCALS:
            return tuple(
                [
                    (skeleton, render(frame.f_locals, budget), awaits)
                    for skeleton, frame, awaits in places
                ]
            )
        out = []
        for skeleton, frame, awaits in places:
            f_locals = frame.f_locals
            out.append((skeleton, render(f_locals, budget), awaits))
            # On 3.12 f_locals is a dict cached on the frame: left filled, it would keep
            # objects alive after the program deleted them.  Empty it, unless someone else
            # holds it (a `locals()` the program kept): the frame, this name, the argument.
            if type(f_locals) is dict and sys.getrefcount(f_locals) <= 3:
                f_locals.clear()
            del f_locals
        return tuple(out)

    def _walk(self, obj: Any, value: object, places: list[_Place]) -> list[_Place]:
        codes = self._codes
        append = places.append
        for _ in range(MAX_DEPTH):
            cls = type(obj)
            # Follow only suspended frames: reading the link of a running one is unsafe
            # (CPython 3.12.1 crashed reading cr_await of an executing coroutine).
            if cls is _CoroutineType:
                if not obj.cr_suspended:
                    break
                frame, link = obj.cr_frame, obj.cr_await
            elif cls is _GeneratorType:
                if not obj.gi_suspended:
                    break
                frame, link = obj.gi_frame, obj.gi_yieldfrom
            elif cls is _AsyncGeneratorType:
                if not obj.ag_suspended:
                    break
                frame, link = obj.ag_frame, obj.ag_await
            elif cls in _OPAQUE_LINKS:
                obj = _opaque_target(obj)
                continue
            else:
                break
            code = frame.f_code
            entry = codes.get(id(code))
            if entry is None:
                entry = self._entry(code, frame)
            skeletons = entry[1]
            if skeletons is not None:
                lasti = frame.f_lasti
                skeleton = skeletons.get(lasti)
                if skeleton is None:
                    skeleton = self._new_skeleton(code, frame, lasti, skeletons)
                append((skeleton, frame, _awaits(link, value)))
            obj = link
        return places
