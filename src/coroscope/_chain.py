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
import types
from collections.abc import Callable, Mapping
from typing import Any

from ._blocks import BlockIndex
from ._record import Block, FrameRecord

__all__ = ["ChainCapture", "describe_awaitable", "MAX_DEPTH"]

MAX_DEPTH = 64
MAX_REPR = 200

_CoroutineType = types.CoroutineType
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
        text = f"<Task {state} name={name!r} coro=<{_coro_name(task.get_coro())}()>>"
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


RenderLocals = Callable[[Mapping[str, object]], dict[str, Any]]


class ChainCapture:
    """Capture the frames of an await chain, given its root coroutine.

    ``render_locals`` is ``None`` when locals are off; otherwise it is called with a copy
    of each frame's locals (cell and free variables included).
    """

    __slots__ = ("_blocks", "_render_locals")

    def __init__(self, render_locals: RenderLocals | None, blocks: BlockIndex) -> None:
        self._render_locals = render_locals
        self._blocks = blocks

    def frame_record(self, frame: types.FrameType, link: object, value: object) -> FrameRecord:
        """Capture one frame: location, locals, enclosing blocks and what it awaits."""
        code = frame.f_code
        line = frame.f_lineno
        render = self._render_locals
        local_values = render(dict(frame.f_locals)) if render is not None else None
        blocks: tuple[Block, ...] = self._blocks.blocks_at(code, line)
        return (
            code.co_qualname,
            code.co_filename,
            line if line is not None else -1,
            frame.f_lasti,
            local_values,
            blocks,
            _awaits(link, value),
        )

    def capture(self, root: object, value: object) -> tuple[FrameRecord, ...]:
        """All frames from ``root`` (a suspended coroutine) down to the awaited object."""
        frames: list[FrameRecord] = []
        obj: Any = root
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
            if frame is None:
                break
            frames.append(self.frame_record(frame, link, value))
            obj = link
        return tuple(frames)
