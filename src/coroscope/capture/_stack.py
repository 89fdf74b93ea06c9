"""What a suspended frame's value stack holds for its enclosing blocks.

A suspended coroutine (or generator, or async generator) keeps its value stack, and its
type's garbage-collector traversal visits it (``gc.get_referents``): after the code object,
the frame's locals, then the stack, then the exception being handled, if any.  The stack
holds, for each active block, outermost first:

* ``with``/``async with``: the bound ``__exit__``/``__aexit__`` of the context manager;
* ``for``/``async for``: the iterator;
* ``except``: the exception that was being handled before (usually ``None``).

:func:`block_items` returns the first two kinds, recognised by type (a bound method named
``__exit__``/``__aexit__``; an object whose type has ``__next__``/``__anext__``), leaving out
every object that is also a local and the object awaited, plus the exception being handled.
The writer matches them to the source's blocks by order and kind, and leaves a block empty
where they do not match (:func:`coroscope.delivery._events.attach_contents`).
"""

from __future__ import annotations

import gc
import types
from typing import Any

__all__ = ["EXCEPT", "block_items", "link_of"]

EXCEPT = "except"
_MethodType = types.MethodType
_TYPE_DICT = type.__dict__["__dict__"].__get__
_TYPE_MRO = type.__dict__["__mro__"].__get__


_MAX_TYPES = 4096
_kinds: dict[type, str | None] = {types.MethodType: None}  # type -> "for", "async for", None


def _kind_of(cls: type) -> str | None:
    """``"async for"`` for an async iterator type, ``"for"`` for an iterator type (read from
    the types' own dicts: no attribute lookup that user code could answer), else ``None``."""
    try:
        return _kinds[cls]
    except KeyError:
        pass
    kind = None
    for base in _TYPE_MRO(cls):
        if base is object:
            continue
        attrs = _TYPE_DICT(base)
        if "__anext__" in attrs:
            kind = "async for"
            break
        if "__next__" in attrs:
            kind = "for"
            break
    if len(_kinds) >= _MAX_TYPES:
        _kinds.clear()
    _kinds[cls] = kind
    return kind


def block_items(
    owner: object, code: types.CodeType, locals_ids: set[int], link: object
) -> tuple[list[tuple[str, object]], BaseException | None]:
    """The block objects on ``owner``'s stack in stack order, as ``(kind, object)``, and the
    exception being handled (``None`` if none)."""
    refs = gc.get_referents(owner)
    start = 0
    for i, ref in enumerate(refs):
        if ref is code:
            start = i + 1
            break
    else:
        return [], None
    items: list[tuple[str, object]] = []
    for ref in refs[start:]:
        if ref is link or id(ref) in locals_ids:
            continue
        cls = type(ref)
        if cls is _MethodType:
            func = ref.__func__
            name = func.__name__ if type(func) is types.FunctionType else None
            if name == "__exit__":
                items.append(("with", ref.__self__))
            elif name == "__aexit__":
                items.append(("async with", ref.__self__))
            continue
        kind = _kind_of(cls)
        if kind is not None:
            items.append((kind, ref))
    handled = None
    last = refs[-1] if len(refs) > start else None
    if last is not None and last is not link and BaseException in _TYPE_MRO(type(last)):
        handled = last
    return items, handled


def link_of(owner: Any) -> object:
    """What a suspended coroutine, generator or async generator awaits."""
    cls = type(owner)
    if cls is types.CoroutineType:
        return owner.cr_await
    if cls is types.GeneratorType:
        return owner.gi_yieldfrom
    if cls is types.AsyncGeneratorType:
        return owner.ag_await
    return None
