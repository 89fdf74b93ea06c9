"""Text rules of rendered values, and class introspection that runs no user code.

Strings are cut at ``max_str`` characters (``...[+N chars]``) and scrubbed of secret
shapes; names (locals, keys, fields) keep at least :data:`NAME_MIN` characters; every text
is made valid for JSON (lone surrogates, which orjson refuses, become ``?``).

Classes are read through ``type``'s own descriptors, so no metaclass hook, ``__getattr__``
or property of a user class can run.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from ._redact import MIN_SCAN, scrub, scrub_cut

__all__ = [
    "EXC_ARGS",
    "GETSET",
    "MEMBER",
    "MISSING",
    "MODULE_DICT",
    "NAME_MIN",
    "TYPE_DICT",
    "TYPE_MODULE",
    "TYPE_MRO",
    "TYPE_QUALNAME",
    "Texts",
    "callable_name",
    "class_attr",
    "has",
    "int_text",
    "json_size",
    "type_name",
    "unsurrogate",
]

#: Names (locals, keys, fields) keep at least this many characters whatever max_str is.
NAME_MIN: Final = 64

_dumps = orjson.dumps
_JSONError = orjson.JSONEncodeError

# Class introspection through ``type``'s own descriptors: no metaclass hook can run.
TYPE_DICT: Callable[[type], Mapping[str, Any]] = type.__dict__["__dict__"].__get__
TYPE_MRO: Callable[[type], tuple[type, ...]] = type.__dict__["__mro__"].__get__
TYPE_QUALNAME: Callable[[type], str] = type.__dict__["__qualname__"].__get__
TYPE_MODULE: Callable[[type], object] = type.__dict__["__module__"].__get__
EXC_ARGS: Callable[[BaseException], tuple[object, ...]] = BaseException.__dict__["args"].__get__
MODULE_DICT: Callable[[types.ModuleType], dict[str, object]] = vars(types.ModuleType)[
    "__dict__"
].__get__

GETSET: Final = types.GetSetDescriptorType
MEMBER: Final = types.MemberDescriptorType

MISSING: Final = object()


def unsurrogate(text: str) -> str:
    """Replace lone surrogates (which orjson refuses) with ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


def json_size(text: str) -> tuple[str, int]:
    """``text`` made JSON-safe, and its JSON size in bytes (quotes included)."""
    try:
        return text, len(_dumps(text))
    except _JSONError:  # lone surrogates
        text = unsurrogate(text)
        return text, len(_dumps(text))


def has(mro: tuple[type, ...], base: type) -> bool:
    """Whether ``base`` is in ``mro``, by identity (no ``__eq__`` of any class runs)."""
    return any(cls is base for cls in mro)


def type_name(cls: type) -> str:
    """``module.Qualname`` of a class, read without running any hook."""
    qualname = TYPE_QUALNAME(cls)
    try:
        module = TYPE_MODULE(cls)
    except Exception:
        return qualname
    if type(module) is not str or module == "builtins":
        return qualname
    return f"{module}.{qualname}"


def class_attr(mro: tuple[type, ...], name: str) -> object:
    """The first ``name`` in the class dicts along ``mro`` (no descriptor is invoked)."""
    for cls in mro:
        value = TYPE_DICT(cls).get(name, MISSING)
        if value is not MISSING:
            return value
    return MISSING


def int_text(value: int, max_digits: int) -> str:
    """Decimal text of an exact int, or ``<int of N bits>`` when it would be too long."""
    bits = value.bit_length()
    if bits <= min(max_digits, 4000) * 3:  # 3 bits per digit is an upper bound here
        return str(value)
    sign = "-" if value < 0 else ""
    return f"<{sign}int of {bits} bits>"


def callable_name(func: object) -> str:
    """The qualified name of a function or bound method, read without calling it."""
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
    return type_name(cls) + " object"


class Texts:
    """How strings and names are cut and scrubbed, for one set of limits."""

    __slots__ = ("max_str", "name_max")

    def __init__(self, max_str: int) -> None:
        self.max_str = max_str
        self.name_max = max(max_str, NAME_MIN)

    def value(self, text: str) -> str:
        """A string value: ``max_str`` characters kept, scrubbed (a secret cut at the end
        included)."""
        n = len(text)
        if n > self.max_str:
            return scrub_cut(text[: self.max_str]) + f"...[+{n - self.max_str} chars]"
        return scrub(text) if n >= MIN_SCAN else text

    def name(self, text: str) -> str:
        """A name: cut (at least :data:`NAME_MIN` characters kept), scrubbed, JSON-safe."""
        n = len(text)
        if n > self.name_max:
            text = scrub_cut(text[: self.name_max]) + f"...[+{n - self.name_max} chars]"
        elif n >= MIN_SCAN:
            text = scrub(text)
        return json_size(text)[0]

    def of_bytes(self, data: bytes, total: int, prefix: str = "", suffix: str = "") -> str:
        """``b'...'`` of the first ``max_str`` bytes; cut text shows the total size."""
        max_str = self.max_str
        text = prefix + repr(data[:max_str]) + suffix
        if total > max_str or len(text) > max_str:
            return f"{scrub_cut(text[:max_str])}...[{total} bytes]"
        return scrub(text) if len(text) >= MIN_SCAN else text
