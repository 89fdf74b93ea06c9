"""What a task or frame waits on, described without calling user code.

Read on the loop thread while the chain is suspended.  asyncio's own ``repr()`` of a
future formats its callbacks through ``inspect`` and costs microseconds; these functions
read the same facts directly from the exact asyncio types, and describe any other object
by its type and identity only.
"""

from __future__ import annotations

import asyncio
import gc
import types
from typing import Any

__all__ = [
    "FUTURE_TYPES",
    "OPAQUE_LINKS",
    "TASK_TYPES",
    "awaited_value",
    "awaits",
    "coro_name",
    "describe_awaitable",
    "is_asyncio_future_type",
    "is_task",
    "opaque_target",
]

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


#: Objects an ``async for`` or ``__await__()`` parks on, whose only link onward is visible
#: through the garbage collector's referents.
OPAQUE_LINKS: frozenset[type] = frozenset(_helper_types())


class _InertLoop:
    # Just enough of a loop to build a Future at import time without touching asyncio's
    # event loop policy.
    def get_debug(self) -> bool:
        return False


def _future_iter_type() -> type:
    future: Any = asyncio.Future(loop=_InertLoop())  # type: ignore[arg-type]
    return type(iter(future))


_FUTURE_ITER = _future_iter_type()  # what `await future` leaves in cr_await
TASK_TYPES: frozenset[type] = frozenset({asyncio.Task, asyncio.tasks._PyTask})  # type: ignore[attr-defined]
FUTURE_TYPES: frozenset[type] = frozenset({asyncio.Future, asyncio.futures._PyFuture})  # type: ignore[attr-defined]


def is_asyncio_future_type(cls: type) -> bool:
    """Whether ``cls`` is asyncio's own future type or a subclass defined in asyncio.

    Decided from the class's own attributes, read through ``type``'s descriptors: no
    metaclass hook of a user class runs.
    """
    mro: tuple[type, ...] = type.__dict__["__mro__"].__get__(cls)
    if not any(base is asyncio.Future or base in FUTURE_TYPES for base in mro):
        return False
    module = type.__dict__["__module__"].__get__(cls)
    return type(module) is str and module.startswith("asyncio.")


def is_task(obj: object) -> bool:
    """Whether ``obj`` is an asyncio task (of a subclass too), decided from its exact type."""
    mro: tuple[type, ...] = type.__dict__["__mro__"].__get__(type(obj))
    return any(base in TASK_TYPES for base in mro)


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


def coro_name(coro: object) -> str:
    """The qualified name of a coroutine or generator, else its type's name."""
    cls = type(coro)
    if cls is _CoroutineType:
        return coro.cr_code.co_qualname  # type: ignore[attr-defined, no-any-return]
    if cls is _GeneratorType:
        return coro.gi_code.co_qualname  # type: ignore[attr-defined, no-any-return]
    return cls.__qualname__


def describe_awaitable(obj: object) -> str:
    """A short, bounded description of what a task waits on, without calling user code."""
    cls = type(obj)
    if obj is None:
        return "None"
    if cls in TASK_TYPES:
        task: Any = obj
        state = task._state.lower()
        name = task.get_name()
        # No get_coro() on a finished task (it crashes CPython 3.12.0-3.12.4, gh-122332).
        coro = "..." if state == "finished" else coro_name(task.get_coro())
        text = f"<Task {state} name={name!r} coro=<{coro}()>>"
    elif cls in FUTURE_TYPES:
        text = f"<Future {obj._state.lower()}{_callback_names(obj)}>"  # type: ignore[attr-defined]
    elif is_asyncio_future_type(cls):
        fut: Any = obj
        extra = ""
        children = getattr(fut, "_children", None)  # asyncio's own class: no user hook
        if type(children) is list:
            extra = f" children={len(children)}"
        text = f"<{cls.__qualname__} {fut._state.lower()}{extra}>"
    else:
        text = f"<{cls.__module__}.{cls.__qualname__} object at {id(obj):#x}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def opaque_target(link: object) -> object | None:
    """The coroutine, generator or async generator behind an opaque helper object."""
    for ref in gc.get_referents(link):
        if type(ref) in (_CoroutineType, _GeneratorType, _AsyncGeneratorType):
            found: object = ref
            return found
    return None


def awaited_value(value: object) -> tuple[str, str | None] | None:
    """What the innermost frame awaits, from what the task handed the loop."""
    if value is None:
        return None
    cls = type(value)
    return (cls.__qualname__, value.get_name() if cls in TASK_TYPES else None)  # type: ignore[attr-defined]


def awaits(link: object, value: object) -> tuple[str, str | None] | None:
    """What a frame awaits: the type and qualified name of the next link of its chain.

    ``link`` is the frame's ``cr_await`` (or ``gi_yieldfrom``, ``ag_await``); ``value`` is
    what the task handed the loop, which names the future at the end of the chain.
    """
    if link is None:
        return None
    cls = type(link)
    if cls is _CoroutineType:
        return ("coroutine", link.cr_code.co_qualname)  # type: ignore[attr-defined]
    if cls is _GeneratorType:
        return ("generator", link.gi_code.co_qualname)  # type: ignore[attr-defined]
    if cls is _AsyncGeneratorType:
        return ("async_generator", link.ag_code.co_qualname)  # type: ignore[attr-defined]
    if cls in OPAQUE_LINKS:
        inner: Any = opaque_target(link)
        name = coro_name(inner) if inner is not None else None
        if type(inner) is _AsyncGeneratorType:
            name = inner.ag_code.co_qualname
        return (cls.__qualname__, name)
    if cls is _FUTURE_ITER:
        future: Any = value
        fcls = type(future)
        return (fcls.__qualname__, future.get_name() if fcls in TASK_TYPES else None)
    return (cls.__qualname__, None)
