"""Rendering of captured locals into bounded, redacted JSON values.

Runs in the ``sys.monitoring`` callback on every task switch, on the event loop's thread
(values may change later), so it must be cheap, bounded and must never run user code it
was not allowed to run.

Rules (the limits are :class:`LocalsRenderer` arguments and ``COROSCOPE_*`` settings):

* ``None``, ``bool``, ``float`` and ``int`` (up to 63 bits) stay JSON values; bigger ints
  become decimal strings, or ``"<int of N bits>"`` when that would be long.  Strings are
  cut at ``max_str`` characters (``"...[+N chars]"``); bytes show as a cut ``b'...'``.
* ``list``, ``tuple``, ``set``, ``frozenset``, ``deque``, dict views become JSON arrays,
  ``dict`` (and its stdlib subclasses) JSON objects with string keys: at most
  ``max_items`` items (then ``"[+N more]"`` / ``"[more]": N``), at most ``max_depth``
  levels (deeper containers become ``"<list len=N>"``).  A container met again inside
  itself becomes ``"[cycle: list]"``.  Subclasses of these are read through the base
  type's C methods, never through their own.
* Known-safe types get a short description built here: datetime, decimal, fractions,
  uuid, pathlib, ipaddress, zoneinfo, range, slice, complex, bytearray, memoryview,
  enum members (``"Color.RED"``), exceptions (``"ValueError('bad')"``), functions,
  classes, modules, coroutines and asyncio futures, tasks, handles, events, locks and
  queues (their own ``repr`` is slow: it formats callbacks through ``inspect``).
  Dataclasses and named tuples are rendered field by field as JSON objects (with a
  ``"__type__"`` key; ``repr=False`` fields left out).  Names (locals, keys, fields)
  are cut at ``max(max_str, 64)`` characters; non-string keys become short strings.
* Anything else is ``"<module.Type object at 0x...>"``.  With ``repr_mode="all"`` the
  type's ``__repr__`` is called instead: its result is cut like a string, an exception
  becomes ``"<... repr raised ValueError>"``, and a type whose repr once took longer than
  the time budget is never asked again.  ``all`` trusts reprs to be fast: a repr that
  blocks cannot be interrupted from the thread that called it.
* User code is never triggered by accident: dispatch is on ``type(value)`` by identity
  (``id``), classes are inspected through ``type``'s own descriptors (so metaclass hooks,
  ``__class__`` properties, ``__getattr__``/``__getattribute__``, ``__len__``,
  ``__iter__``, ``__eq__`` and ``__hash__`` of user types are not called), dataclass
  fields are read from the instance ``__dict__`` or slots, never through properties.
* A :class:`Budget` caps the JSON bytes and the time spent on one record (all its frames
  when the caller shares one budget).  What does not fit becomes ``"[budget exceeded]"``
  and the frame's dict gets the key ``"[budget exceeded]"`` saying why and how many
  locals were left out.
* Redaction (see :mod:`coroscope._redact`): a value under a deny-listed name (local,
  dict key, dataclass/named-tuple field, the first item of a ``(name, value)`` pair)
  becomes ``"[redacted]"``; secret-shaped text is redacted inside every string.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from ._redact import (
    DEFAULT_DENY,
    MIN_SCAN,
    REDACTED,
    DenyList,
    NameFilter,
    scrub,
    scrub_cut,
)

if TYPE_CHECKING:
    from ._config import Config

__all__ = [
    "BUDGET_KEY",
    "BUDGET_MARK",
    "DEFAULT_DENY",
    "REDACTED",
    "Budget",
    "LocalsRenderer",
    "RenderLocals",
]

# -- limits (defaults; each is also a COROSCOPE_* setting in _config) -----------------

DEFAULT_MAX_STR: Final = 200
DEFAULT_MAX_ITEMS: Final = 20
DEFAULT_MAX_DEPTH: Final = 3
DEFAULT_MAX_BYTES: Final = 4096
DEFAULT_MAX_MS: Final = 1.0
REPR_MODES: Final = ("safe", "all")

BUDGET_MARK: Final = "[budget exceeded]"
BUDGET_KEY: Final = "[budget exceeded]"
MORE_KEY: Final = "[more]"

# Bytes kept back from every budget for the markers written when it runs out: one
# ``"[budget exceeded]":null`` inside a container and the frame's summary key.
_RESERVE: Final = 96
# Work units (container items) between two looks at the clock.
_CHECK_EVERY: Final = 64
# Names (locals, keys, fields) keep at least this many characters whatever max_str is.
_NAME_MIN: Final = 64
# Bounded caches: distinct names and distinct types seen.
_NAME_CACHE: Final = 4096
_TYPE_CACHE: Final = 1024

_EXCLUDED: Final = 2
_DENIED: Final = 1

_dumps = orjson.dumps
_JSONError = orjson.JSONEncodeError
_now = time.perf_counter_ns

# Class introspection through ``type``'s own descriptors: no metaclass hook can run.
_TYPE_DICT: Callable[[type], Mapping[str, Any]] = type.__dict__["__dict__"].__get__
_TYPE_MRO: Callable[[type], tuple[type, ...]] = type.__dict__["__mro__"].__get__
_TYPE_QUALNAME: Callable[[type], str] = type.__dict__["__qualname__"].__get__
_TYPE_MODULE: Callable[[type], object] = type.__dict__["__module__"].__get__
_EXC_ARGS: Callable[[BaseException], tuple[object, ...]] = BaseException.__dict__["args"].__get__
_MODULE_DICT: Callable[[types.ModuleType], dict[str, object]] = vars(types.ModuleType)[
    "__dict__"
].__get__

_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType

Handler = Callable[[Any, int, "Budget", list[int]], Any]


class Budget:
    """What one record may still spend: JSON bytes and time (``perf_counter_ns`` deadline).

    Create one per record with :meth:`LocalsRenderer.new_budget` and pass it to every
    :meth:`LocalsRenderer.render_locals` call for that record.  ``exceeded`` is ``None``,
    ``"bytes"`` or ``"time"``.
    """

    __slots__ = ("deadline", "exceeded", "left", "work")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_ms: float = DEFAULT_MAX_MS) -> None:
        self.left = max_bytes - _RESERVE
        self.deadline = _now() + int(max_ms * 1_000_000)
        self.work = 0
        self.exceeded: str | None = None


def _exceed(b: Budget, reason: str = "bytes") -> str:
    if b.exceeded is None:
        b.exceeded = reason
    return BUDGET_MARK


def _clock(b: Budget) -> bool:
    """Reset the work count and compare the clock: whether the time budget is spent."""
    b.work = 0
    if _now() > b.deadline:
        b.exceeded = "time"
        return True
    return False


def _out_of_time(b: Budget, units: int) -> bool:
    """Count ``units`` of work; every ``_CHECK_EVERY`` units, compare the clock."""
    work = b.work + units
    if work < _CHECK_EVERY:
        b.work = work
        return False
    return _clock(b)


def _unsurrogate(text: str) -> str:
    """Replace lone surrogates (which orjson refuses) with ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _has(mro: tuple[type, ...], base: type) -> bool:
    """Whether ``base`` is in ``mro``, by identity (no ``__eq__`` of any class runs)."""
    return any(cls is base for cls in mro)


def _type_name(cls: type) -> str:
    """``module.Qualname`` of a class, read without running any hook."""
    qualname = _TYPE_QUALNAME(cls)
    try:
        module = _TYPE_MODULE(cls)
    except Exception:
        return qualname
    if type(module) is not str or module == "builtins":
        return qualname
    return f"{module}.{qualname}"


def _class_attr(mro: tuple[type, ...], name: str) -> object:
    """The first ``name`` in the class dicts along ``mro`` (no descriptor is invoked)."""
    for cls in mro:
        value = _TYPE_DICT(cls).get(name, _MISSING)
        if value is not _MISSING:
            return value
    return _MISSING


_MISSING: Final = object()


def _int_text(value: int, max_digits: int) -> str:
    """Decimal text of an exact int, or ``<int of N bits>`` when it would be too long."""
    bits = value.bit_length()
    if bits <= min(max_digits, 4000) * 3:  # 3 bits per digit is an upper bound here
        return str(value)
    sign = "-" if value < 0 else ""
    return f"<{sign}int of {bits} bits>"


def _callable_name(func: object) -> str:
    cls = type(func)
    if cls is types.FunctionType:
        return func.__qualname__  # type: ignore[attr-defined, no-any-return]
    if cls is types.MethodType:
        inner = func.__func__  # type: ignore[attr-defined]
        if type(inner) is types.FunctionType:
            return inner.__qualname__
        return "<bound method>"
    if cls is types.BuiltinFunctionType:
        return func.__name__  # type: ignore[attr-defined, no-any-return]
    return _type_name(cls) + " object"


class RenderLocals(Protocol):
    """``render_locals(f_locals, budget=None) -> dict`` (see :class:`LocalsRenderer`)."""

    def __call__(
        self, f_locals: Mapping[str, object], budget: Budget | None = None, /
    ) -> dict[str, Any]: ...


class LocalsRenderer:
    """Turn a frame's locals into a dict of JSON values, bounded and redacted.

    Everything is decided here, once: the handlers for known types, the limits, the
    redaction and exclusion rules.  Names (locals, dict keys) are classified once and
    cached; types are classified once and cached.

    ``render_locals(f_locals, budget=None)`` renders every local of a frame (a dict or a
    ``FrameLocalsProxy``, iterated once): excluded names are dropped, deny-listed ones
    become ``"[redacted]"``.  Without a ``budget`` the call gets a fresh one of its own;
    to cap a whole record, pass the same :meth:`new_budget` to each of its frames
    (innermost first, so the frame nearest the switch gets the bytes first).  It never
    raises ``Exception``.  It is a plain function stored on the instance (no method
    binding on the hot path).
    """

    render_locals: RenderLocals
    _render: Handler
    _describe: Callable[[object], str]
    _is_denied: Callable[[str], bool]

    __slots__ = (
        "_deny",
        "_describe",
        "_is_denied",
        "_max_bytes",
        "_max_ms",
        "_render",
        "max_depth",
        "max_items",
        "max_str",
        "render_locals",
        "repr_mode",
    )

    def __init__(
        self,
        *,
        deny: Iterable[str] = DEFAULT_DENY,
        exclude: Iterable[str] = (),
        max_str: int = DEFAULT_MAX_STR,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_ms: float = DEFAULT_MAX_MS,
        repr_mode: str = "safe",
    ) -> None:
        if repr_mode not in REPR_MODES:
            raise ValueError(f"repr_mode must be one of {', '.join(REPR_MODES)}")
        for label, limit in (
            ("max_str", max_str),
            ("max_items", max_items),
            ("max_depth", max_depth),
        ):
            if limit <= 0:
                raise ValueError(f"{label} must be greater than 0")
        if not 0 <= max_ms < float("inf"):
            raise ValueError("max_ms must be a number of milliseconds, 0 or more")
        if max_bytes < _RESERVE * 2:
            raise ValueError(f"max_bytes must be at least {_RESERVE * 2}")
        self.max_str = max_str
        self.max_items = max_items
        self.max_depth = max_depth
        self.repr_mode = repr_mode
        self._max_bytes = max_bytes
        self._max_ms = max_ms
        self._deny = DenyList(deny)
        _build(self, NameFilter(exclude))

    @classmethod
    def from_config(cls, config: Config) -> LocalsRenderer:
        """A renderer with the ``COROSCOPE_*`` locals settings of ``config``."""
        return cls(
            deny=config.redact,
            exclude=config.locals_exclude,
            max_str=config.locals_max_str,
            max_items=config.locals_max_items,
            max_depth=config.locals_max_depth,
            max_bytes=config.locals_max_bytes,
            max_ms=config.locals_max_ms,
            repr_mode=config.locals_repr,
        )

    def new_budget(self) -> Budget:
        """A fresh budget for one record, to share between its frames."""
        return Budget(self._max_bytes, self._max_ms)

    def is_denied(self, name: str) -> bool:
        """Whether a value under ``name`` (local, key, field) is redacted."""
        return self._is_denied(name)

    def render_value(self, value: object, budget: Budget | None = None) -> Any:
        """Render one value as a JSON value (``orjson.dumps`` always accepts it)."""
        b = budget if budget is not None else self.new_budget()
        try:
            return self._render(value, 0, b, [])
        except Exception as exc:  # defensive: a bug here must not reach the program
            return f"<render failed: {_TYPE_QUALNAME(type(exc))}>"

    def describe(self, value: object) -> str:
        """A bounded one-line description of ``value`` (for awaited objects and keys)."""
        return self._describe(value)


def _build(r: LocalsRenderer, excluded: NameFilter) -> None:
    """Create the specialised closures of renderer ``r``."""
    max_str = r.max_str
    max_items = r.max_items
    max_depth = r.max_depth
    max_ms = r._max_ms
    max_bytes = r._max_bytes
    max_time_ns = int(max_ms * 1_000_000)
    repr_all = r.repr_mode == "all"
    deny = r._deny
    exclude_any = bool(excluded)

    handlers: dict[int, Handler] = {}
    keep_alive: list[type] = []  # handlers are keyed by id(): keep those types alive
    type_cache: dict[int, tuple[type, Handler]] = {}
    slow_repr: dict[int, type] = {}
    local_codes: dict[str, int] = {}
    key_codes: dict[str, int] = {}
    registered_modules: set[str] = set()

    # -- strings ----------------------------------------------------------------------

    def cut(text: str) -> str:
        """Keep ``max_str`` characters, scrubbed (a secret cut at the end included)."""
        n = len(text)
        if n > max_str:
            return scrub_cut(text[:max_str]) + f"...[+{n - max_str} chars]"
        return scrub(text) if n >= MIN_SCAN else text

    name_max = max(max_str, _NAME_MIN)

    def clean(text: str) -> str:
        """Cut (names get at least ``_NAME_MIN`` characters), scrub, make UTF-8 safe."""
        n = len(text)
        if n > name_max:
            text = scrub_cut(text[:name_max]) + f"...[+{n - name_max} chars]"
        elif n >= MIN_SCAN:
            text = scrub(text)
        try:
            _dumps(text)
        except _JSONError:
            text = _unsurrogate(text)
        return text

    def rbounded(text: str, b: Budget) -> str:
        """Charge an already cut and scrubbed string at its exact JSON size."""
        try:
            cost = len(_dumps(text)) + 1
        except _JSONError:  # lone surrogates: orjson refuses them
            text = _unsurrogate(text)
            cost = len(_dumps(text)) + 1
        if cost > b.left:
            return _exceed(b)
        b.left -= cost
        return text

    def rstr(text: str, b: Budget) -> str:
        n = len(text)
        if n > max_str:
            text = scrub_cut(text[:max_str]) + f"...[+{n - max_str} chars]"
        elif n >= MIN_SCAN:
            text = scrub(text)
        try:
            cost = len(_dumps(text)) + 1
        except _JSONError:  # lone surrogates: orjson refuses them
            text = _unsurrogate(text)
            cost = len(_dumps(text)) + 1
        if cost > b.left:
            return _exceed(b)
        b.left -= cost
        return text

    def rsafe(text: str, b: Budget) -> str:
        """Charge a bounded ASCII text built here (no quote, backslash or secret in it)."""
        cost = len(text) + 3
        if cost > b.left:
            return _exceed(b)
        b.left -= cost
        return text

    def rcharged(text: str, cost: int, b: Budget) -> str:
        """Charge ``text`` whose JSON size (plus separator) ``cost`` is known."""
        if cost > b.left:
            return _exceed(b)
        b.left -= cost
        return text

    # -- names ------------------------------------------------------------------------

    def name_code(name: str, codes: dict[str, int], local: bool) -> tuple[str, int]:
        """Classify a str name: (text to show, cost << 2 | flags); caches clean names."""
        flags = 0
        if deny(name):
            flags |= _DENIED
        if local and exclude_any and excluded(name):
            flags |= _EXCLUDED
        text = clean(name)
        code = ((len(_dumps(text)) + 2) << 2) | flags
        if text is name:
            if len(codes) >= _NAME_CACHE:
                codes.clear()
            codes[name] = code
        return text, code

    def key_text(key: object, level: int = 0) -> str:
        """Text for a non-str dict key; never hashes or compares ``key``."""
        cls = type(key)
        if cls is int:
            return _int_text(key, max_str)  # type: ignore[arg-type]
        if cls is float or cls is bool or key is None:
            return repr(key)
        if cls is str:  # inside a tuple key
            return repr(key[:max_str])  # type: ignore[index]
        if cls is tuple and level < 2:
            items = [key_text(item, level + 1) for item in key[:4]]  # type: ignore[index]
            more = ", ..." if len(key) > 4 else ("," if len(key) == 1 else "")  # type: ignore[arg-type]
            return "(" + ", ".join(items) + more + ")"
        return describe(key)

    def other_key(key: object) -> tuple[str, int]:
        text = clean(key_text(key))
        flags = _DENIED if deny(text) else 0
        return text, ((len(_dumps(text)) + 2) << 2) | flags

    def unique(key: str, out: dict[str, Any]) -> str:
        while key in out:
            key += "~"
        return key

    def is_denied(name: str) -> bool:
        if type(name) is not str:
            return deny(clean(key_text(name)))
        code = key_codes.get(name)
        if code is None:
            code = name_code(name, key_codes, False)[1]
        return bool(code & _DENIED)

    # -- the dispatcher -----------------------------------------------------------------

    def render(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
        if v is None:
            if b.left < 5:
                return _exceed(b)
            b.left -= 5
            return None
        cls = type(v)
        if cls is str:
            return rstr(v, b)
        if cls is int:
            bits = v.bit_length()
            if bits < 64:
                cost = bits // 3 + 3
                if cost > b.left:
                    return _exceed(b)
                b.left -= cost
                return v
            return rsafe(_int_text(v, max_str), b)
        handler = handlers.get(id(cls))
        if handler is None:
            handler = classify(cls)
        return handler(v, depth, b, path)

    def r_float(v: float, depth: int, b: Budget, path: list[int]) -> Any:
        if b.left < 25:
            return _exceed(b)
        b.left -= 25
        return v

    def r_bool(v: bool, depth: int, b: Budget, path: list[int]) -> Any:
        if b.left < 6:
            return _exceed(b)
        b.left -= 6
        return v

    def bytes_text(data: bytes, total: int, prefix: str = "", suffix: str = "") -> str:
        """``b'...'`` of the first ``max_str`` bytes; cut text shows the total size."""
        text = prefix + repr(data[:max_str]) + suffix
        if total > max_str or len(text) > max_str:
            return f"{scrub_cut(text[:max_str])}...[{total} bytes]"
        return scrub(text) if len(text) >= MIN_SCAN else text

    def r_bytes(v: bytes, depth: int, b: Budget, path: list[int]) -> Any:
        return rbounded(bytes_text(v, len(v)), b)

    # -- containers -----------------------------------------------------------------------

    def summary(name: str, n: int, b: Budget) -> str:
        return rsafe(f"<{name} len={n}>", b)

    def dispatch(v: Any, cls: type, depth: int, b: Budget, path: list[int]) -> Any:
        """Render a non-inline value whose type is ``cls`` (from a container loop)."""
        handler = handlers.get(id(cls))
        if handler is None:
            handler = classify(cls)
        return handler(v, depth, b, path)

    def make_sequence(
        name: str, length: Callable[[Any], int], head: Callable[[Any], Any], direct: bool
    ) -> Handler:
        """A JSON array handler; ``direct``: ``v`` itself may be iterated (list, tuple)."""
        pair_check = name == "tuple"
        cycle_text = f"[cycle: {name}]"

        def r_seq(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            try:
                n = length(v)
                if depth >= max_depth:
                    return summary(name, n, b)
                vid = id(v)
                if vid in path:
                    return rsafe(cycle_text, b)
                # Within the cap a list or tuple is iterated as it is (a list iterator
                # copes with changes); otherwise one C call takes a snapshot of the head.
                items = v if direct and n <= max_items else head(v)
            except Exception as exc:
                return rstr(f"<{name}: {_TYPE_QUALNAME(type(exc))} while reading>", b)
            left = b.left - 3
            if left < 0:
                return _exceed(b)
            out: list[Any] = []
            work = b.work + (n if n < max_items else max_items)
            if work < _CHECK_EVERY:
                b.work = work
            elif _clock(b):
                out.append(BUDGET_MARK)
                return out
            if pair_check and n == 2 and type(items[0]) is str:
                # A (name, value) pair: the name decides redaction, like a dict key.
                first: str = items[0]
                code = key_codes.get(first)
                if code is None:
                    code = name_code(first, key_codes, False)[1]
                if code & _DENIED:
                    b.left = left
                    out.append(rstr(first, b))
                    if b.exceeded is None:
                        out.append(rsafe(REDACTED, b))
                    return out
            pushed = False
            over = False
            for item in items:
                # Scalars inline (the common case); anything else through its handler.
                cls = type(item)
                if cls is int:
                    bits = item.bit_length()
                    if bits < 64:
                        cost = bits // 3 + 3
                        if cost > left:
                            over = True
                            break
                        left -= cost
                        out.append(item)
                        continue
                elif cls is str:
                    n_chars = len(item)
                    if n_chars < MIN_SCAN:
                        text = item
                    else:
                        text = scrub(item) if n_chars <= max_str else cut(item)
                    try:
                        cost = len(_dumps(text)) + 1
                    except _JSONError:
                        text = _unsurrogate(text)
                        cost = len(_dumps(text)) + 1
                    if cost > left:
                        over = True
                        break
                    left -= cost
                    out.append(text)
                    continue
                elif item is None or cls is float or cls is bool:
                    if left < 25:
                        over = True
                        break
                    left -= 25
                    out.append(item)
                    continue
                if not pushed:
                    path.append(vid)
                    pushed = True
                b.left = left
                out.append(dispatch(item, cls, depth + 1, b, path))
                left = b.left
                if b.exceeded is not None:
                    break
            else:
                if n > max_items:
                    b.left = left
                    out.append(rsafe(f"[+{n - max_items} more]", b))
                    left = b.left
            b.left = left
            if over:
                out.append(_exceed(b))
            if pushed:
                path.pop()
            return out

        return r_seq

    def make_mapping(
        name: str, length: Callable[[Any], int], items_of: Callable[[Any], Any], direct: bool
    ) -> Handler:
        """A JSON object handler; ``items_of(v)`` is the C items view of the mapping."""
        cycle_text = f"[cycle: {name}]"

        def r_map(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            try:
                n = length(v)
                if depth >= max_depth:
                    return summary(name, n, b)
                vid = id(v)
                if vid in path:
                    return rsafe(cycle_text, b)
                # Within the cap an exact dict is iterated as it is (a change by another
                # thread raises RuntimeError, reported below); otherwise a snapshot.
                if direct and n <= max_items:
                    items = items_of(v)
                else:
                    items = list(islice(items_of(v), max_items))
            except Exception as exc:
                return rstr(f"<{name}: {_TYPE_QUALNAME(type(exc))} while reading>", b)
            left = b.left - 3
            if left < 0:
                return _exceed(b)
            out: dict[str, Any] = {}
            work = b.work + (n if n < max_items else max_items)
            if work < _CHECK_EVERY:
                b.work = work
            elif _clock(b):
                out[BUDGET_KEY] = None
                return out
            pushed = False
            over = False
            odd = False  # a key was rendered differently: later keys may collide
            codes = key_codes
            try:
                for raw_key, value in items:
                    key = raw_key
                    if type(key) is str:
                        code = codes.get(key)
                        if code is None:
                            key, code = name_code(raw_key, codes, False)
                            if key is not raw_key or odd:
                                odd = True
                                while key in out:
                                    key += "~"
                        elif odd and key in out:
                            key = unique(key, out)
                    else:
                        odd = True
                        key, code = other_key(raw_key)
                        while key in out:
                            key += "~"
                    if code & _DENIED:
                        cost = (code >> 2) + 13
                        if cost > left:
                            over = True
                            break
                        left -= cost
                        out[key] = REDACTED
                        continue
                    # Scalars inline (the common case); anything else via its handler.
                    cls = type(value)
                    if cls is int:
                        bits = value.bit_length()
                        if bits < 64:
                            cost = (code >> 2) + bits // 3 + 3
                            if cost > left:
                                over = True
                                break
                            left -= cost
                            out[key] = value
                            continue
                    elif cls is str:
                        n_chars = len(value)
                        if n_chars < MIN_SCAN:
                            text = value
                        else:
                            text = scrub(value) if n_chars <= max_str else cut(value)
                        try:
                            cost = (code >> 2) + len(_dumps(text)) + 1
                        except _JSONError:
                            text = _unsurrogate(text)
                            cost = (code >> 2) + len(_dumps(text)) + 1
                        if cost > left:
                            over = True
                            break
                        left -= cost
                        out[key] = text
                        continue
                    elif value is None or cls is float or cls is bool:
                        cost = (code >> 2) + 25
                        if cost > left:
                            over = True
                            break
                        left -= cost
                        out[key] = value
                        continue
                    cost = code >> 2
                    if cost > left:
                        over = True
                        break
                    if not pushed:
                        path.append(vid)
                        pushed = True
                    b.left = left - cost
                    out[key] = dispatch(value, cls, depth + 1, b, path)
                    left = b.left
                    if b.exceeded is not None:
                        break
                else:
                    if n > max_items:
                        if left < 20:
                            b.left = left
                            _exceed(b)
                        else:
                            left -= 20
                            out[MORE_KEY] = n - max_items
            except RuntimeError:  # changed by another thread while we iterated it
                left = min(left, b.left)
                if left >= 40:
                    left -= 40
                    out["[changed during capture]"] = None
            b.left = left
            if over:
                _exceed(b)
                out[BUDGET_KEY] = None
            if pushed:
                path.pop()
            return out

        return r_map

    def fields_handler(
        cls: type,
        fields: list[tuple[str, int, types.MemberDescriptorType | None]],
        read_dict: Callable[[Any], Any] | None,
    ) -> Handler:
        """Dataclasses and named tuples: a JSON object of fields, names redacted.

        ``fields`` holds ``(name, position, slot)``: a named tuple field is read at its
        ``position`` (``-1`` otherwise); a dataclass field from the instance ``__dict__``,
        else from its ``slot`` descriptor.  Never through a property or ``__getattr__``.
        """
        tname = _type_name(cls)
        type_text = clean(tname)
        marker = object_marker(cls)
        cycle = clean(f"[cycle: {tname}]")
        cycle_cost = len(_dumps(cycle)) + 1
        named = [
            (text, n, deny(n), position, slot, len(_dumps(text)) + 2)
            for n, position, slot in fields
            for text in [clean(n)]
        ]
        n_fields = len(named)
        shown = named[:max_items]
        head_cost = len(_dumps(type_text)) + 14  # {"__type__":...,}

        def r_fields(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            if depth >= max_depth:
                return marker(v, depth, b, path)
            vid = id(v)
            if vid in path:
                return rcharged(cycle, cycle_cost, b)
            try:
                inst = read_dict(v) if read_dict is not None else None
            except Exception:
                inst = None
            if type(inst) is not dict:
                inst = None
            if head_cost > b.left:
                return _exceed(b)
            b.left -= head_cost
            out: dict[str, Any] = {"__type__": type_text}
            if _out_of_time(b, n_fields):
                out[BUDGET_KEY] = None
                return out
            d1 = depth + 1
            path.append(vid)
            for text, field, denied, position, slot, cost in shown:
                if cost > b.left:
                    _exceed(b)
                    out[BUDGET_KEY] = None
                    break
                b.left -= cost
                if denied:
                    out[text] = rsafe(REDACTED, b)
                    continue
                value: object = _MISSING
                if position >= 0:  # named tuple
                    if position < tuple.__len__(v):
                        value = tuple.__getitem__(v, position)
                else:
                    if inst is not None:
                        value = dict.get(inst, field, _MISSING)
                    if value is _MISSING and slot is not None:
                        try:
                            value = slot.__get__(v, cls)
                        except AttributeError:  # an unset slot
                            value = _MISSING
                if value is _MISSING:
                    out[text] = rsafe("<unset>", b)
                else:
                    out[text] = render(value, d1, b, path)
                if b.exceeded is not None:
                    break
            else:
                if n_fields > max_items:
                    if b.left < 20:
                        _exceed(b)
                    else:
                        b.left -= 20
                        out[MORE_KEY] = n_fields - max_items
            path.pop()
            return out

        return r_fields

    # -- other known types --------------------------------------------------------------

    def text_handler(make: Callable[[Any], str], safe: bool) -> Handler:
        """A handler from ``make(v) -> str``; ``safe`` texts need no secret scan."""

        def r_text(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            try:
                text = make(v)
            except Exception as exc:
                return rstr(f"<{_type_name(type(v))}: {_TYPE_QUALNAME(type(exc))}>", b)
            if not safe:
                return rstr(text, b)
            if len(text) > max_str:  # a long Decimal, Fraction or range
                text = text[:max_str] + "..."
            return rsafe(text, b)

        return r_text

    def object_marker(cls: type) -> Handler:
        prefix = clean(f"<{_type_name(cls)} object at ")
        cost = len(_dumps(prefix)) + 20  # + "0x" and up to 16 hex digits, ">" and ","

        def r_object(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            return rcharged(f"{prefix}{id(v):#x}>", cost, b)

        return r_object

    def repr_handler(cls: type) -> Handler:
        """``repr_mode="all"``: call the type's ``__repr__``, timed, capped, contained."""
        marker = object_marker(cls)
        prefix = clean(f"<{_type_name(cls)} object at ")
        cls_id = id(cls)

        def r_repr(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            if cls_id in slow_repr:
                return marker(v, depth, b, path)
            start = _now()
            try:
                text = repr(v)
                if type(text) is not str:
                    text = str.__str__(text)
            except Exception as exc:
                text = f"{prefix}{id(v):#x}: repr raised {_TYPE_QUALNAME(type(exc))}>"
            end = _now()
            if end - start > max_time_ns:
                # Too slow once: never again for this type (bounded; types kept alive).
                if len(slow_repr) >= _TYPE_CACHE:
                    slow_repr.clear()
                slow_repr[cls_id] = cls
                text = f"{prefix}{id(v):#x}: slow repr ({(end - start) // 1000} us)>"
            result = rstr(text, b)
            if end > b.deadline:
                _exceed(b, "time")
            return result

        return r_repr

    def exception_text(v: BaseException) -> str:
        args = _EXC_ARGS(v)
        parts: list[str] = []
        for arg in args[:3]:
            cls = type(arg)
            if cls is str:
                parts.append(repr(arg[:max_str]))  # type: ignore[index]
            elif cls is int:
                parts.append(_int_text(arg, max_str))  # type: ignore[arg-type]
            elif cls is float or cls is bool or arg is None:
                parts.append(repr(arg))
            elif _has(_TYPE_MRO(cls), BaseException):  # no recursion through exceptions
                parts.append(f"<{_type_name(cls)}>")
            else:
                parts.append(describe(arg))
        if len(args) > 3:
            parts.append("...")
        return f"{_type_name(type(v))}({', '.join(parts)})"

    def cached_text(make: Callable[[Any], str]) -> Handler:
        """For practically immortal values (classes, enum members): text made once."""
        texts: dict[int, tuple[object, str, int]] = {}

        def r_cached(v: Any, depth: int, b: Budget, path: list[int]) -> Any:
            hit = texts.get(id(v))
            if hit is None or hit[0] is not v:
                try:
                    text = clean(make(v))
                except Exception as exc:
                    text = clean(f"<{_type_name(type(v))}: {_TYPE_QUALNAME(type(exc))}>")
                hit = (v, text, len(_dumps(text)) + 1)
                if len(texts) >= 256:
                    texts.clear()
                texts[id(v)] = hit
            return rcharged(hit[1], hit[2], b)

        return r_cached

    def enum_handler(cls: type, read_dict: Callable[[Any], Any] | None) -> Handler:
        tname = _TYPE_QUALNAME(cls)

        def member_text(v: Any) -> str:
            inst = read_dict(v) if read_dict is not None else None
            name = dict.get(inst, "_name_") if type(inst) is dict else None
            if type(name) is str:
                return f"{tname}.{name}"
            value = dict.get(inst, "_value_") if type(inst) is dict else None
            if type(value) is int:
                return f"{tname}({_int_text(value, max_str)})"
            return f"<{tname} member>"

        return cached_text(member_text)

    def class_text(v: type) -> str:
        return f"<class {_type_name(v)}>"

    class_handler = cached_text(class_text)

    def future_text(v: Any) -> str:
        state = v._state
        if state == "FINISHED":
            exc = v._exception
            if exc is not None:
                return f"<Future finished exception={_TYPE_QUALNAME(type(exc))}>"
            return f"<Future finished result={_type_name(type(v._result))}>"
        return f"<Future {str(state).lower()}>"

    def task_text(v: Any) -> str:
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
                coro_text = _type_name(type(coro))
        extra = ""
        if state == "FINISHED":
            exc = v._exception
            extra = f" exception={_TYPE_QUALNAME(type(exc))}" if exc is not None else ""
        name_text = name if type(name) is str else "?"
        return f"<Task {str(state).lower()} name={name_text!r} coro=<{coro_text}>{extra}>"

    def handle_text(v: Any) -> str:
        cb = _callable_name(v._callback)
        state = " cancelled" if v._cancelled else ""
        when = v._when if type(v) is asyncio.TimerHandle else None  # type: ignore[attr-defined]
        where = f" when={when:.3f}" if type(when) is float else ""
        return f"<{_TYPE_QUALNAME(type(v))}{state}{where} callback={cb}>"

    def event_text(v: asyncio.Event) -> str:
        return f"<Event {'set' if v._value else 'unset'}>"  # type: ignore[attr-defined]

    def lock_text(v: asyncio.Lock) -> str:
        return f"<Lock {'locked' if v._locked else 'unlocked'}>"  # type: ignore[attr-defined]

    def semaphore_text(v: asyncio.Semaphore) -> str:
        return f"<{_TYPE_QUALNAME(type(v))} value={int(v._value)}>"

    def queue_text(v: asyncio.Queue[Any]) -> str:
        return f"<{_TYPE_QUALNAME(type(v))} size={v.qsize()} maxsize={int(v._maxsize)}>"  # type: ignore[attr-defined]

    def code_text(v: Any) -> str:
        kind = {
            types.CoroutineType: "coroutine",
            types.GeneratorType: "generator",
            types.AsyncGeneratorType: "async_generator",
        }[type(v)]
        return f"<{kind} {v.__qualname__}>"

    def module_text(v: types.ModuleType) -> str:
        name = _MODULE_DICT(v).get("__name__")
        return f"<module {name if type(name) is str else '?'}>"

    def slice_text(v: slice) -> str:
        parts = [
            _int_text(p, max_str) if type(p) is int else ("None" if p is None else "...")
            for p in (v.start, v.stop, v.step)
        ]
        return f"slice({', '.join(parts)})"

    def range_text(v: range) -> str:
        parts = [_int_text(p, max_str) for p in (v.start, v.stop, v.step)]
        return f"range({', '.join(parts)})"

    def bytearray_text(v: bytearray) -> str:
        return bytes_text(bytes(v[:max_str]), len(v), "bytearray(", ")")

    def memoryview_text(v: memoryview) -> str:
        return f"<memoryview nbytes={v.nbytes} format={v.format!r}>"

    def fraction_text(v: Any) -> str:
        return f"{_int_text(v._numerator, max_str)}/{_int_text(v._denominator, max_str)}"

    def datetime_text(v: Any) -> str:
        tz = v.tzinfo
        if tz is None or id(type(tz)) in safe_tz:
            return str(v.isoformat())
        return f"{v.replace(tzinfo=None).isoformat()} [tz {_type_name(type(tz))}]"

    safe_tz: set[int] = set()  # ids of tzinfo types whose utcoffset() is C code

    def add(cls: object, handler: Handler) -> None:
        if isinstance(cls, type):  # stdlib classes only, looked up by us
            keep_alive.append(cls)
            handlers[id(cls)] = handler

    def register_stdlib(top: str) -> None:
        """Register the known types of stdlib package ``top`` once it is imported."""
        registered_modules.add(top)
        module = sys.modules.get(top)
        if type(module) is not types.ModuleType:
            return
        ns = _MODULE_DICT(module)

        def get(name: str) -> object:
            return ns.get(name)

        if top == "datetime":
            add(get("date"), text_handler(lambda v: v.isoformat(), safe=True))
            add(get("datetime"), text_handler(datetime_text, safe=True))
            add(get("time"), text_handler(datetime_text, safe=True))
            add(get("timedelta"), text_handler(str, safe=True))
            add(get("timezone"), text_handler(str, safe=False))
            tz = get("timezone")
            if isinstance(tz, type):
                safe_tz.add(id(tz))
        elif top == "zoneinfo":
            zone = get("ZoneInfo")
            add(zone, text_handler(str, safe=False))
            if isinstance(zone, type):
                safe_tz.add(id(zone))
        elif top == "decimal":
            add(get("Decimal"), text_handler(str, safe=True))
        elif top == "fractions":
            add(get("Fraction"), text_handler(fraction_text, safe=True))
        elif top == "uuid":
            add(get("UUID"), text_handler(str, safe=True))
        elif top == "pathlib":
            for name in (
                "PurePath",
                "PurePosixPath",
                "PureWindowsPath",
                "Path",
                "PosixPath",
                "WindowsPath",
            ):
                add(get(name), text_handler(str, safe=False))
        elif top == "ipaddress":
            for name in (
                "IPv4Address",
                "IPv6Address",
                "IPv4Network",
                "IPv6Network",
                "IPv4Interface",
                "IPv6Interface",
            ):
                add(get(name), text_handler(str, safe=False))

    def classify(cls: type) -> Handler:
        """The handler for a type seen for the first time (then cached by identity)."""
        cached = type_cache.get(id(cls))
        if cached is not None and cached[0] is cls:
            return cached[1]
        try:
            handler = decide(cls)
        except Exception:
            handler = object_marker(cls)
        if handlers.get(id(cls)) is handler:  # a stdlib type, registered for good
            return handler
        if len(type_cache) >= _TYPE_CACHE:
            for tid in list(type_cache):  # list(): one C call, safe against other threads
                handlers.pop(tid, None)
            type_cache.clear()
        # The class is kept alive by type_cache, so its id cannot be reused while it
        # stands in the dispatch table.
        type_cache[id(cls)] = (cls, handler)
        handlers[id(cls)] = handler
        return handler

    def decide(cls: type) -> Handler:
        mro = _TYPE_MRO(cls)
        if _has(mro, type):
            return class_handler
        module = _TYPE_MODULE(cls)
        top = module.partition(".")[0] if type(module) is str else ""
        if top in _STDLIB and top not in registered_modules:
            register_stdlib(top)
            handler = handlers.get(id(cls))
            if handler is not None:
                return handler
        dict_descr = _class_attr(mro, "__dict__")
        read_dict = dict_descr.__get__ if type(dict_descr) is _GETSET else None
        if _has(mro, enum.Enum):
            return enum_handler(cls, read_dict)
        if _has(mro, BaseException):
            return text_handler(exception_text, safe=False)
        custom_getattribute = any(
            "__getattribute__" in _TYPE_DICT(base) for base in mro if base is not object
        )
        fields = _class_attr(mro, "__dataclass_fields__")
        if type(fields) is dict and not custom_getattribute:
            found = [
                (name, -1, slot if type(slot) is _MEMBER else None)
                for name, field in fields.items()
                if type(name) is str and _is_field(field)
                for slot in [_class_attr(mro, name)]
            ]
            return fields_handler(cls, found, read_dict)
        if _has(mro, tuple):
            names = _class_attr(mro, "_fields")
            if type(names) is tuple and all(type(n) is str for n in names):
                return fields_handler(cls, [(n, i, None) for i, n in enumerate(names)], None)
        for base in mro:
            if id(base) in bases:  # by id: hashing a user class could run its metaclass
                return via_base(base)
        return repr_handler(cls) if repr_all else object_marker(cls)

    def _is_field(field: object) -> bool:
        """A real dataclass field, shown in the dataclass repr."""
        if type(field) is not dataclasses.Field:
            return False
        return field._field_type is dataclasses._FIELD and bool(field.repr)  # type: ignore[attr-defined]

    def via_base(base: type) -> Handler:
        """Subclasses of builtin types: read through the base type's C slots."""
        if base is int:
            return lambda v, d, b, p: render(int.__int__(v), d, b, p)
        if base is float:
            return lambda v, d, b, p: r_float(float.__float__(v), d, b, p)
        if base is str:
            return lambda v, d, b, p: rstr(str.__str__(v), b)
        if base is bytes:
            return lambda v, d, b, p: r_bytes(bytes.__bytes__(v), d, b, p)
        if base is dict:
            return make_mapping("dict", dict.__len__, dict.items, False)
        slots: Any = base  # its C slots, looked up on a builtin type
        length = slots.__len__
        iterate = slots.__iter__
        return make_sequence(
            _TYPE_QUALNAME(base), length, lambda v: list(islice(iterate(v), max_items)), False
        )

    bases = {
        id(base)
        for base in (dict, list, tuple, set, frozenset, collections.deque, int, float, str, bytes)
    }

    def describe(value: object) -> str:
        b = Budget(max_str * 4 + _RESERVE * 2, max_ms)
        try:
            out = render(value, max_depth, b, [])
        except Exception as exc:
            return f"<describe failed: {_TYPE_QUALNAME(type(exc))}>"
        if type(out) is str:
            return out
        return _dumps(out).decode()

    # -- render_locals ------------------------------------------------------------------

    fresh_left = max_bytes - _RESERVE - 2
    new_budget = Budget.__new__

    def fresh(left: int) -> Budget:
        b = new_budget(Budget)
        b.left = left
        b.deadline = _now() + max_time_ns
        b.work = 0
        b.exceeded = None
        return b

    def render_locals(
        f_locals: Mapping[str, object], budget: Budget | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        b = budget
        if b is None:
            # The budget object (and its clock) is made only when a value needs more
            # than the inline scalar path below.
            left = fresh_left
        else:
            if b.exceeded is None and _now() > b.deadline:
                b.exceeded = "time"
            if b.exceeded is not None:
                return exhausted(f_locals, b, out, 0)
            left = b.left - 2
        skipped = 0
        over = False
        odd = False  # a name was rendered differently: later names may collide
        codes = local_codes
        raw_name: Any
        value: Any
        path: list[int] = []
        try:
            for raw_name, value in f_locals.items():
                name = raw_name
                if type(name) is str:
                    code = codes.get(name)
                    if code is None:
                        name, code = name_code(raw_name, codes, True)
                        if name is not raw_name or odd:
                            odd = True
                            while name in out:
                                name += "~"
                    elif odd and name in out:
                        name = unique(name, out)
                else:
                    odd = True
                    name, code = other_key(raw_name)
                    while name in out:
                        name += "~"
                if code & 3:
                    if code & _EXCLUDED:
                        skipped += 1
                        continue
                    cost = (code >> 2) + 13
                    if cost > left:
                        over = True
                        break
                    left -= cost
                    out[name] = REDACTED
                    continue
                # Scalars inline (the common case); anything else through its handler.
                cls = type(value)
                if cls is int:
                    bits = value.bit_length()
                    if bits < 64:
                        cost = (code >> 2) + bits // 3 + 3
                        if cost > left:
                            over = True
                            break
                        left -= cost
                        out[name] = value
                        continue
                elif cls is str:
                    n_chars = len(value)
                    if n_chars < MIN_SCAN:
                        text = value
                    else:
                        text = scrub(value) if n_chars <= max_str else cut(value)
                    try:
                        cost = (code >> 2) + len(_dumps(text)) + 1
                    except _JSONError:
                        text = _unsurrogate(text)
                        cost = (code >> 2) + len(_dumps(text)) + 1
                    if cost > left:
                        over = True
                        break
                    left -= cost
                    out[name] = text
                    continue
                elif value is None or cls is float or cls is bool:
                    cost = (code >> 2) + 25
                    if cost > left:
                        over = True
                        break
                    left -= cost
                    out[name] = value
                    continue
                cost = code >> 2
                if cost > left:
                    over = True
                    break
                if b is None:
                    b = fresh(left - cost)
                else:
                    b.left = left - cost
                handler = handlers.get(id(cls))
                if handler is None:
                    handler = classify(cls)
                try:
                    out[name] = handler(value, 0, b, path)
                except Exception as exc:  # a bug for this value: keep the other locals
                    path.clear()
                    out[name] = f"<capture error: {_TYPE_QUALNAME(type(exc))}>"
                left = b.left
                if b.exceeded is not None:
                    break
        except Exception as exc:  # a mapping changed under us, or a bug: never raise
            if b is not None:
                left = min(left, b.left)
            out["[capture error]"] = _TYPE_QUALNAME(type(exc))
        if b is None:
            if not over:
                return out
            b = fresh(left)
        b.left = left
        if over:
            _exceed(b)
        if b.exceeded is not None:
            return exhausted(f_locals, b, out, skipped)
        return out

    def exhausted(
        f_locals: Mapping[str, object], b: Budget, out: dict[str, Any], skipped: int
    ) -> dict[str, Any]:
        """Mark a frame whose budget ran out: why, and how many locals were left out."""
        try:
            left_out = len(f_locals) - len(out) - skipped
        except Exception:
            left_out = -1
        out[BUDGET_KEY] = f"{b.exceeded}, {left_out} locals left out"
        return out

    # -- the table ------------------------------------------------------------------------

    add(float, r_float)
    add(bool, r_bool)
    add(bytes, r_bytes)
    add(dict, make_mapping("dict", len, dict.items, True))
    add(list, make_sequence("list", len, lambda v: v[:max_items], True))
    add(tuple, make_sequence("tuple", len, lambda v: v[:max_items], True))
    views: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
    for container in (set, frozenset, collections.deque, *views):
        add(
            container,
            make_sequence(
                _TYPE_QUALNAME(container), len, lambda v: list(islice(v, max_items)), False
            ),
        )
    for base in (collections.OrderedDict, collections.defaultdict, collections.Counter):
        add(base, via_base(dict))
    add(complex, text_handler(repr, safe=True))
    add(range, text_handler(range_text, safe=True))
    add(slice, text_handler(slice_text, safe=True))
    add(bytearray, text_handler(bytearray_text, safe=False))
    add(memoryview, text_handler(memoryview_text, safe=False))
    add(type, class_handler)
    add(types.FunctionType, text_handler(lambda v: f"<function {v.__qualname__}>", safe=False))
    add(types.MethodType, text_handler(lambda v: f"<bound method {_callable_name(v)}>", safe=False))
    add(types.BuiltinFunctionType, text_handler(lambda v: f"<built-in {v.__name__}>", safe=False))
    for kind in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
        add(kind, text_handler(code_text, safe=False))
    add(types.ModuleType, text_handler(module_text, safe=False))
    add(asyncio.Future, text_handler(future_text, safe=False))
    add(asyncio.Task, text_handler(task_text, safe=False))
    py_future = getattr(asyncio.futures, "_PyFuture", None)
    py_task = getattr(asyncio.tasks, "_PyTask", None)
    if py_future is not None:
        add(py_future, text_handler(future_text, safe=False))
    if py_task is not None:
        add(py_task, text_handler(task_text, safe=False))
    add(asyncio.Handle, text_handler(handle_text, safe=False))
    add(asyncio.TimerHandle, text_handler(handle_text, safe=False))
    add(asyncio.Event, text_handler(event_text, safe=True))
    add(asyncio.Lock, text_handler(lock_text, safe=True))
    add(asyncio.Semaphore, text_handler(semaphore_text, safe=True))
    add(asyncio.BoundedSemaphore, text_handler(semaphore_text, safe=True))
    for queue in (asyncio.Queue, asyncio.LifoQueue, asyncio.PriorityQueue):
        add(queue, text_handler(queue_text, safe=True))
    for top in _STDLIB:
        if top in sys.modules:
            register_stdlib(top)

    r._render = render
    r.render_locals = render_locals
    r._describe = describe
    r._is_denied = is_denied


# Stdlib packages whose value types are rendered specially, registered when imported.
_STDLIB: Final = frozenset(
    {"datetime", "zoneinfo", "decimal", "fractions", "uuid", "pathlib", "ipaddress"}
)
