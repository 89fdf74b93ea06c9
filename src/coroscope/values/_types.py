"""The type table: which handler renders values of each exact type.

Dispatch is on ``type(value)`` by identity (``id``), so no ``__eq__`` or ``__hash__`` of a
user class runs.  Builtin and known stdlib types are registered once (a stdlib package's
types when it is first seen imported); any other type is classified the first time it is
seen, through ``type``'s own descriptors (no metaclass hook runs), and remembered in a
bounded cache:

* classes, enum members, exceptions: descriptions;
* dataclasses and named tuples: field by field;
* subclasses of builtin containers and scalars: read through the base type's C methods;
* anything else: ``<module.Type object at 0x...>``, or its repr with ``COROSCOPE_REPR=all``.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import sys
import types
from collections.abc import Callable
from itertools import islice
from typing import Any, Final

from ._budget import Budget
from ._containers import MappingHandler, SequenceHandler
from ._core import Handler, ValueRenderer
from ._fields import FieldsHandler, enum_handler
from ._known import (
    BUILTIN_ITERATORS,
    LIBRARY_TYPES,
    CachedText,
    Descriptions,
    ObjectMarker,
    ReprHandler,
    TextHandler,
    class_text,
)
from ._text import (
    GETSET,
    MEMBER,
    MODULE_DICT,
    TYPE_DICT,
    TYPE_MODULE,
    TYPE_MRO,
    TYPE_QUALNAME,
    callable_name,
    class_attr,
    has,
)

__all__ = ["STDLIB", "TypeTable"]

#: Stdlib packages whose value types are rendered specially, registered when imported.
STDLIB: Final = frozenset(
    {"datetime", "zoneinfo", "decimal", "fractions", "uuid", "pathlib", "ipaddress"}
)
_TYPE_CACHE: Final = 1024  # user types remembered; the cache starts over when full
_BASES: Final = (dict, list, tuple, set, frozenset, collections.deque, int, float, str, bytes)


class TypeTable:
    """Handlers by ``id()`` of their type, for one renderer."""

    __slots__ = (
        "_bases",
        "_cache",
        "_handlers",
        "_keep",
        "_registered",
        "_repr_all",
        "_slow_repr",
        "class_handler",
        "known",
        "r",
    )

    def __init__(self, r: ValueRenderer, *, repr_all: bool) -> None:
        self.r = r
        self._repr_all = repr_all
        self._handlers: dict[int, Handler] = {}
        self._keep: list[type] = []  # handlers are keyed by id(): keep those types alive
        self._cache: dict[int, tuple[type, Handler]] = {}
        self._slow_repr: dict[int, type] = {}
        self._registered: set[str] = set()
        self._bases = {id(base) for base in _BASES}
        self.known = Descriptions(r)
        self.class_handler = CachedText(r, class_text)
        self._register_builtins()
        for top in STDLIB:
            if top in sys.modules:
                self._register_stdlib(top)

    # -- lookup -------------------------------------------------------------------------

    def handler(self, cls: type) -> Handler:
        """The handler for values of exactly ``cls`` (classified the first time)."""
        found = self._handlers.get(id(cls))
        if found is not None:
            return found
        return self._classify(cls)

    def _classify(self, cls: type) -> Handler:
        cached = self._cache.get(id(cls))
        if cached is not None and cached[0] is cls:
            return cached[1]
        try:
            handler = self._decide(cls)
        except Exception:
            handler = ObjectMarker(self.r, cls)
        if self._handlers.get(id(cls)) is handler:  # a stdlib type, registered for good
            return handler
        if len(self._cache) >= _TYPE_CACHE:
            for tid in list(self._cache):  # list(): one C call, safe against other threads
                self._handlers.pop(tid, None)
            self._cache.clear()
        # The class is kept alive by the cache, so its id cannot be reused while it
        # stands in the dispatch table.
        self._cache[id(cls)] = (cls, handler)
        self._handlers[id(cls)] = handler
        return handler

    def _decide(self, cls: type) -> Handler:
        r = self.r
        mro = TYPE_MRO(cls)
        if has(mro, type):
            return self.class_handler
        module = TYPE_MODULE(cls)
        top = module.partition(".")[0] if type(module) is str else ""
        if top in STDLIB and top not in self._registered:
            self._register_stdlib(top)
            found = self._handlers.get(id(cls))
            if found is not None:
                return found
        dict_descr = class_attr(mro, "__dict__")
        read_dict = dict_descr.__get__ if type(dict_descr) is GETSET else None
        library = LIBRARY_TYPES.get((module if type(module) is str else "", TYPE_QUALNAME(cls)))
        if library is not None and read_dict is not None:
            describe = getattr(self.known, library)
            read = read_dict
            return TextHandler(r, lambda v: describe(read(v)), safe=False)
        if has(mro, enum.Enum):
            return enum_handler(r, cls, read_dict)
        if has(mro, BaseException):
            return TextHandler(r, self.known.exception, safe=False)
        custom_getattribute = any(
            "__getattribute__" in TYPE_DICT(base) for base in mro if base is not object
        )
        fields = class_attr(mro, "__dataclass_fields__")
        if type(fields) is dict and not custom_getattribute:
            found_fields = [
                (name, -1, slot if type(slot) is MEMBER else None)
                for name, field in fields.items()
                if type(name) is str and _is_field(field)
                for slot in [class_attr(mro, name)]
            ]
            return FieldsHandler(r, cls, found_fields, read_dict)
        if has(mro, tuple):
            names = class_attr(mro, "_fields")
            if type(names) is tuple and all(type(n) is str for n in names):
                return FieldsHandler(r, cls, [(n, i, None) for i, n in enumerate(names)], None)
        for base in mro:
            if id(base) in self._bases:  # by id: hashing a user class could run its metaclass
                return self._via_base(base)
        if self._repr_all:
            return ReprHandler(r, cls, self._slow_repr)
        return ObjectMarker(r, cls)

    def _via_base(self, base: type) -> Handler:
        """Subclasses of builtin types: read through the base type's C slots."""
        r = self.r
        if base is int:
            return lambda v, d, b, p: r.render(int.__int__(v), d, b, p)
        if base is float:
            return lambda v, d, b, p: _float(float.__float__(v), d, b, p)
        if base is str:
            return lambda v, d, b, p: r.string(str.__str__(v), b)
        if base is bytes:
            return lambda v, d, b, p: self._bytes(bytes.__bytes__(v), d, b, p)
        if base is dict:
            return MappingHandler(r, "dict", dict.__len__, dict.items, direct=False)
        slots: Any = base  # its C slots, looked up on a builtin type
        iterate = slots.__iter__
        max_items = r.max_items
        return SequenceHandler(
            r,
            TYPE_QUALNAME(base),
            slots.__len__,
            lambda v: list(islice(iterate(v), max_items)),
            direct=False,
        )

    def _bytes(self, v: bytes, depth: int, b: Budget, path: list[int]) -> Any:
        return self.r.ready(self.r.texts.of_bytes(v, len(v)), b)

    # -- registration -------------------------------------------------------------------

    def add(self, cls: object, handler: Handler) -> None:
        """Register ``handler`` for ``cls`` for good (stdlib classes, looked up by us)."""
        if isinstance(cls, type):
            self._keep.append(cls)
            self._handlers[id(cls)] = handler

    def _text(self, make: Callable[[Any], str], *, safe: bool) -> TextHandler:
        return TextHandler(self.r, make, safe=safe)

    def _register_builtins(self) -> None:
        r = self.r
        known = self.known
        text = self._text
        max_items = r.max_items
        add = self.add
        add(float, _float)
        add(bool, _bool)
        add(bytes, self._bytes)
        add(dict, MappingHandler(r, "dict", len, dict.items, direct=True))
        add(list, SequenceHandler(r, "list", len, lambda v: v[:max_items], direct=True))
        add(tuple, SequenceHandler(r, "tuple", len, lambda v: v[:max_items], direct=True))
        views: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
        for container in (set, frozenset, collections.deque, *views):
            add(
                container,
                SequenceHandler(
                    r,
                    TYPE_QUALNAME(container),
                    len,
                    lambda v: list(islice(v, max_items)),
                    direct=False,
                ),
            )
        for base in (collections.OrderedDict, collections.defaultdict, collections.Counter):
            add(base, self._via_base(dict))
        add(complex, text(repr, safe=True))
        add(range, text(known.range, safe=True))
        for iterator in BUILTIN_ITERATORS:
            add(iterator, text(known.iterator, safe=True))
        add(enumerate, text(known.enumerate, safe=True))
        add(slice, text(known.slice, safe=True))
        add(bytearray, text(known.bytearray, safe=False))
        add(memoryview, text(known.memoryview, safe=False))
        add(type, self.class_handler)
        add(types.FunctionType, text(lambda v: f"<function {v.__qualname__}>", safe=False))
        add(types.MethodType, text(lambda v: f"<bound method {callable_name(v)}>", safe=False))
        add(types.BuiltinFunctionType, text(lambda v: f"<built-in {v.__name__}>", safe=False))
        for kind in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
            add(kind, text(known.code, safe=False))
        add(types.ModuleType, text(known.module, safe=False))
        add(asyncio.Future, text(known.future, safe=False))
        add(asyncio.Task, text(known.task, safe=False))
        py_future = getattr(asyncio.futures, "_PyFuture", None)
        py_task = getattr(asyncio.tasks, "_PyTask", None)
        if py_future is not None:
            add(py_future, text(known.future, safe=False))
        if py_task is not None:
            add(py_task, text(known.task, safe=False))
        add(asyncio.Handle, text(known.handle, safe=False))
        add(asyncio.TimerHandle, text(known.handle, safe=False))
        add(asyncio.Event, text(known.event, safe=True))
        add(asyncio.Lock, text(known.lock, safe=True))
        add(asyncio.Semaphore, text(known.semaphore, safe=True))
        add(asyncio.BoundedSemaphore, text(known.semaphore, safe=True))
        for queue in (asyncio.Queue, asyncio.LifoQueue, asyncio.PriorityQueue):
            add(queue, text(known.queue, safe=True))

    def _register_stdlib(self, top: str) -> None:
        """Register the known types of stdlib package ``top`` once it is imported."""
        self._registered.add(top)
        module = sys.modules.get(top)
        if type(module) is not types.ModuleType:
            return
        ns = MODULE_DICT(module)
        get = ns.get
        add = self.add
        text = self._text
        known = self.known
        if top == "datetime":
            add(get("date"), text(lambda v: v.isoformat(), safe=True))
            add(get("datetime"), text(known.datetime, safe=True))
            add(get("time"), text(known.datetime, safe=True))
            add(get("timedelta"), text(str, safe=True))
            add(get("timezone"), text(str, safe=False))
            tz = get("timezone")
            if isinstance(tz, type):
                known.safe_tz.add(id(tz))
        elif top == "zoneinfo":
            zone = get("ZoneInfo")
            add(zone, text(str, safe=False))
            if isinstance(zone, type):
                known.safe_tz.add(id(zone))
        elif top == "decimal":
            add(get("Decimal"), text(str, safe=True))
        elif top == "fractions":
            add(get("Fraction"), text(known.fraction, safe=True))
        elif top == "uuid":
            add(get("UUID"), text(str, safe=True))
        elif top == "pathlib":
            for name in ("PurePath", "PurePosixPath", "PureWindowsPath", "Path", "PosixPath",
                         "WindowsPath"):  # fmt: skip
                add(get(name), text(str, safe=False))
        elif top == "ipaddress":
            for name in ("IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network",
                         "IPv4Interface", "IPv6Interface"):  # fmt: skip
                add(get(name), text(str, safe=False))


def _float(v: float, depth: int, b: Budget, path: list[int]) -> Any:
    return v if b.charge(25) else b.exceed()


def _bool(v: bool, depth: int, b: Budget, path: list[int]) -> Any:
    return v if b.charge(6) else b.exceed()


def _is_field(field: object) -> bool:
    """A real dataclass field, shown in the dataclass repr."""
    dc: Any = sys.modules.get("dataclasses")  # imported by whoever made the dataclass
    if dc is None or type(field) is not dc.Field:
        return False
    return field._field_type is dc._FIELD and bool(field.repr)  # type: ignore[attr-defined]
