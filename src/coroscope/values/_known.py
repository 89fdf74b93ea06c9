"""Handlers of single values shown as text: known-safe types, markers and reprs.

Known-safe types get a short description built here from their plain attributes, never by
calling their own ``__repr__``: datetime, decimal, fractions, uuid, pathlib, ipaddress,
zoneinfo, range, slice, complex, bytearray, memoryview, exceptions, functions, classes,
modules, coroutines, and asyncio futures, tasks, handles, events, locks and queues (their
own ``repr`` is slow: it formats callbacks through ``inspect``).

Anything else is ``"<module.Type object at 0x...>"`` (:class:`ObjectMarker`), or, with
``COROSCOPE_REPR=all``, its type's ``__repr__`` (:class:`ReprHandler`).
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Callable
from typing import Any, Final

from ._budget import Budget
from ._core import ValueRenderer
from ._text import (
    EXC_ARGS,
    GETSET,
    MODULE_DICT,
    TYPE_MRO,
    TYPE_QUALNAME,
    callable_name,
    class_attr,
    has,
    int_text,
    json_size,
    type_name,
)

__all__ = [
    "BUILTIN_ITERATORS",
    "LIBRARY_TYPES",
    "CachedText",
    "Descriptions",
    "ObjectMarker",
    "ReprHandler",
    "TextHandler",
]

#: Builtin iterators whose position can be read without running user code.
_ITERATOR_SAMPLES: tuple[object, ...] = (
    iter([]),
    iter(()),
    iter(range(0)),
    iter(range(2**64, 2**64 + 1)),
    iter({}),
    iter({}.values()),
    iter({}.items()),
    iter(set()),
    iter(""),
    iter(b""),
    reversed([]),
)
BUILTIN_ITERATORS: Final[frozenset[type]] = frozenset(type(it) for it in _ITERATOR_SAMPLES)

#: Request objects of common servers, described from their instance dict's plain values
#: (never their properties or methods): (module, qualified name) -> Descriptions method.
LIBRARY_TYPES: Final = {
    ("aiohttp.web_request", "Request"): "aiohttp_request",
    ("aiohttp.web_request", "BaseRequest"): "aiohttp_request",
    ("starlette.requests", "Request"): "starlette_request",
}

_TYPE_CACHE: Final = 1024  # types remembered as slow to repr
_now = time.perf_counter_ns


class TextHandler:
    """A value shown as ``make(value)``; ``safe`` texts need no secret scan."""

    __slots__ = ("make", "r", "safe")

    def __init__(self, r: ValueRenderer, make: Callable[[Any], str], *, safe: bool) -> None:
        self.r = r
        self.make = make
        self.safe = safe

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        r = self.r
        try:
            text = self.make(v)
        except Exception as exc:
            return r.string(f"<{type_name(type(v))}: {TYPE_QUALNAME(type(exc))}>", b)
        if not self.safe:
            return r.string(text, b)
        if len(text) > r.texts.max_str:  # a long Decimal, Fraction or range
            text = text[: r.texts.max_str] + "..."
        return r.plain_text(text, b)


class ObjectMarker:
    """``<module.Type object at 0x...>``: the type and identity, nothing else."""

    __slots__ = ("cost", "prefix", "r")

    def __init__(self, r: ValueRenderer, cls: type) -> None:
        self.r = r
        self.prefix = r.texts.name(f"<{type_name(cls)} object at ")
        self.cost = json_size(self.prefix)[1] + 20  # + "0x", 16 hex digits, ">" and ","

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        return self.r.charged(f"{self.prefix}{id(v):#x}>", self.cost, b)


class ReprHandler:
    """``COROSCOPE_REPR=all``: the type's ``__repr__``, timed, capped and contained.

    A type whose repr once took longer than the time budget is never asked again (its
    values become markers); ``slow`` is that bounded set, shared by the renderer.
    """

    __slots__ = ("cls", "limit_ns", "marker", "prefix", "r", "slow")

    def __init__(self, r: ValueRenderer, cls: type, slow: dict[int, type]) -> None:
        self.r = r
        self.cls = cls
        self.marker = ObjectMarker(r, cls)
        self.prefix = self.marker.prefix
        self.slow = slow
        self.limit_ns = int(r.max_ms * 1_000_000)

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        if id(self.cls) in self.slow:
            return self.marker(v, depth, b, path)
        start = _now()
        try:
            text = repr(v)
            if type(text) is not str:
                text = str.__str__(text)
        except Exception as exc:
            text = f"{self.prefix}{id(v):#x}: repr raised {TYPE_QUALNAME(type(exc))}>"
        took = _now() - start
        if took > self.limit_ns:
            # Too slow once: never again for this type (bounded; types kept alive).
            if len(self.slow) >= _TYPE_CACHE:
                self.slow.clear()
            self.slow[id(self.cls)] = self.cls
            text = f"{self.prefix}{id(v):#x}: slow repr ({took // 1000} us)>"
        result = self.r.string(text, b)
        b.timed(took)
        return result


class CachedText:
    """Practically immortal values (classes, enum members): the text is made once."""

    __slots__ = ("make", "r", "texts")

    def __init__(self, r: ValueRenderer, make: Callable[[Any], str]) -> None:
        self.r = r
        self.make = make
        self.texts: dict[int, tuple[object, str, int]] = {}

    def __call__(self, v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        hit = self.texts.get(id(v))
        if hit is None or hit[0] is not v:
            names = self.r.texts
            try:
                text = names.name(self.make(v))
            except Exception as exc:
                text = names.name(f"<{type_name(type(v))}: {TYPE_QUALNAME(type(exc))}>")
            hit = (v, text, json_size(text)[1] + 1)
            if len(self.texts) >= 256:
                self.texts.clear()
            self.texts[id(v)] = hit
        return self.r.charged(hit[1], hit[2], b)


def class_text(v: type) -> str:
    """``<class module.Name>``."""
    return f"<class {type_name(v)}>"


class Descriptions:
    """The text of each known type, for one renderer's limits."""

    __slots__ = ("r", "safe_tz")

    def __init__(self, r: ValueRenderer) -> None:
        self.r = r
        self.safe_tz: set[int] = set()  # ids of tzinfo types whose utcoffset() is C code

    # -- exceptions and callables ----------------------------------------------------------

    def exception(self, v: BaseException) -> str:
        max_str = self.r.texts.max_str
        args = EXC_ARGS(v)
        parts: list[str] = []
        for arg in args[:3]:
            cls = type(arg)
            if cls is str:
                parts.append(repr(arg[:max_str]))  # type: ignore[index]
            elif cls is int:
                parts.append(int_text(arg, max_str))  # type: ignore[arg-type]
            elif cls is float or cls is bool or arg is None:
                parts.append(repr(arg))
            elif has(TYPE_MRO(cls), BaseException):  # no recursion through exceptions
                parts.append(f"<{type_name(cls)}>")
            else:
                parts.append(self.r.describe(arg))
        if len(args) > 3:
            parts.append("...")
        return f"{type_name(type(v))}({', '.join(parts)})"

    @staticmethod
    def code(v: Any) -> str:
        kind = {
            types.CoroutineType: "coroutine",
            types.GeneratorType: "generator",
            types.AsyncGeneratorType: "async_generator",
        }[type(v)]
        return f"<{kind} {v.__qualname__}>"

    @staticmethod
    def module(v: types.ModuleType) -> str:
        name = MODULE_DICT(v).get("__name__")
        return f"<module {name if type(name) is str else '?'}>"

    # -- asyncio ---------------------------------------------------------------------------

    @staticmethod
    def future(v: Any) -> str:
        state = v._state
        if state == "FINISHED":
            exc = v._exception
            if exc is not None:
                return f"<Future finished exception={TYPE_QUALNAME(type(exc))}>"
            return f"<Future finished result={type_name(type(v._result))}>"
        return f"<Future {str(state).lower()}>"

    @staticmethod
    def task(v: Any) -> str:
        state = v._state
        name = v.get_name()
        if state == "FINISHED":
            # Never get_coro() on a finished task: on CPython 3.12.0-3.12.4 it crashes the
            # interpreter for a task that completed eagerly (gh-122332).
            coro_text = "..."
        else:
            coro = v.get_coro()
            if type(coro) is types.CoroutineType:
                coro_text = coro.__qualname__ + "()"
            else:
                coro_text = type_name(type(coro))
        extra = ""
        if state == "FINISHED":
            exc = v._exception
            extra = f" exception={TYPE_QUALNAME(type(exc))}" if exc is not None else ""
        name_text = name if type(name) is str else "?"
        return f"<Task {str(state).lower()} name={name_text!r} coro=<{coro_text}>{extra}>"

    @staticmethod
    def handle(v: Any) -> str:
        cb = callable_name(v._callback)
        state = " cancelled" if v._cancelled else ""
        when = v._when if type(v) is asyncio.TimerHandle else None  # type: ignore[attr-defined]
        where = f" when={when:.3f}" if type(when) is float else ""
        return f"<{TYPE_QUALNAME(type(v))}{state}{where} callback={cb}>"

    @staticmethod
    def event(v: asyncio.Event) -> str:
        return f"<Event {'set' if v._value else 'unset'}>"  # type: ignore[attr-defined]

    @staticmethod
    def lock(v: asyncio.Lock) -> str:
        return f"<Lock {'locked' if v._locked else 'unlocked'}>"  # type: ignore[attr-defined]

    @staticmethod
    def semaphore(v: asyncio.Semaphore) -> str:
        return f"<{TYPE_QUALNAME(type(v))} value={int(v._value)}>"

    @staticmethod
    def queue(v: asyncio.Queue[Any]) -> str:
        return f"<{TYPE_QUALNAME(type(v))} size={v.qsize()} maxsize={int(v._maxsize)}>"  # type: ignore[attr-defined]

    # -- servers' request objects (from their instance dict) ----------------------------------

    def aiohttp_request(self, attrs: dict[str, Any]) -> str:
        """``<aiohttp Request GET /path>``: the method, and the path without its query."""
        method = attrs.get("_method")
        message = attrs.get("_message")
        path: object = None
        if message is not None:
            cls = type(message)
            if tuple in TYPE_MRO(cls):  # the pure-Python parser's named tuple
                path = tuple.__getitem__(message, 1) if tuple.__len__(message) > 1 else None
            else:  # the C parser's message: a read-only C attribute
                descr = class_attr(TYPE_MRO(cls), "path")
                path = descr.__get__(message) if type(descr) is GETSET else None
        return self._request("aiohttp Request", method, path)

    def starlette_request(self, attrs: dict[str, Any]) -> str:
        """``<starlette Request GET /path>``, from its ASGI scope."""
        scope = attrs.get("scope")
        if type(scope) is not dict:
            return "<starlette Request>"
        return self._request("starlette Request", scope.get("method"), scope.get("path"))

    def _request(self, what: str, method: object, path: object) -> str:
        max_str = self.r.texts.max_str
        method_text = method[:16] if type(method) is str else "?"
        path_text = path.partition("?")[0][:max_str] if type(path) is str else "?"
        return f"<{what} {method_text} {path_text}>"

    # -- builtin iterators: how far a `for` loop got ----------------------------------------

    @staticmethod
    def iterator(v: Any) -> str:
        """``<list_iterator index=3 remaining=7>``: from the iterator's own C methods
        (``__reduce__`` gives its position, ``__length_hint__`` what is left), which run no
        user code for these builtin types."""
        parts = [TYPE_QUALNAME(type(v))]
        cls: Any = type(v)
        reduced = cls.__reduce__(v)
        if type(reduced) is tuple and len(reduced) == 3 and type(reduced[2]) is int:
            parts.append(f"index={reduced[2]}")
        hint = cls.__length_hint__(v)
        if type(hint) is int:
            parts.append(f"remaining={hint}")
        return f"<{' '.join(parts)}>"

    def enumerate(self, v: Any) -> str:
        """``<enumerate count=2 of <list_iterator index=2 remaining=1>>``."""
        reduced = enumerate.__reduce__(v)
        args = reduced[1] if type(reduced) is tuple and len(reduced) >= 2 else ()
        count = args[1] if type(args) is tuple and len(args) == 2 else None
        inner = args[0] if type(args) is tuple and args else None
        inner_text = (
            self.iterator(inner) if type(inner) in BUILTIN_ITERATORS else type_name(type(inner))
        )
        count_text = f"count={count} " if type(count) is int else ""
        return f"<enumerate {count_text}of {inner_text}>"

    # -- numbers, ranges, buffers ------------------------------------------------------------

    def slice(self, v: slice) -> str:
        max_str = self.r.texts.max_str
        parts = [
            int_text(p, max_str) if type(p) is int else ("None" if p is None else "...")
            for p in (v.start, v.stop, v.step)
        ]
        return f"slice({', '.join(parts)})"

    def range(self, v: range) -> str:
        max_str = self.r.texts.max_str
        parts = [int_text(p, max_str) for p in (v.start, v.stop, v.step)]
        return f"range({', '.join(parts)})"

    def bytearray(self, v: bytearray) -> str:
        return self.r.texts.of_bytes(bytes(v[: self.r.texts.max_str]), len(v), "bytearray(", ")")

    @staticmethod
    def memoryview(v: memoryview) -> str:
        return f"<memoryview nbytes={v.nbytes} format={v.format!r}>"

    def fraction(self, v: Any) -> str:
        max_str = self.r.texts.max_str
        return f"{int_text(v._numerator, max_str)}/{int_text(v._denominator, max_str)}"

    def datetime(self, v: Any) -> str:
        tz = v.tzinfo
        if tz is None or id(type(tz)) in self.safe_tz:
            return str(v.isoformat())
        return f"{v.replace(tzinfo=None).isoformat()} [tz {type_name(type(tz))}]"
