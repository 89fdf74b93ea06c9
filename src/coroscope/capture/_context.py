"""What ties a task's records to the application's own logs and traces: the values bound
with structlog's ``bind_contextvars(...)`` in the task's context, and OpenTelemetry's current
trace and span ids.

Both are read from the task's :class:`contextvars.Context` (``task.get_context()``) without
importing structlog or OpenTelemetry: a library that is not in ``sys.modules`` has bound
nothing, and the check costs one dictionary lookup.  Reading a context runs no user code:
its items are read as they are, and OpenTelemetry's span context is a tuple read by index.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextvars import Context
from types import CoroutineType, MemberDescriptorType
from typing import Any

from .. import _schema as S
from ._chain import local_value

__all__ = ["ContextReader"]

_STRUCTLOG = "structlog.contextvars"
_STRUCTLOG_PREFIX = "structlog_"  # structlog's prefix of its context variables' names
_OTEL = "opentelemetry.context"
_OTEL_VAR = "current_context"  # opentelemetry.context.contextvars_context's variable
_OTEL_SPAN_KEY = "current-span"  # the start of its key of the current span
_AIOHTTP = "aiohttp.web_protocol"
_TASK_BASES: tuple[Any, ...] = (asyncio.Task, asyncio.tasks._PyTask)  # type: ignore[attr-defined]
MAX_VARS = 256  # context variables looked at per context
_TYPE_DICT = type.__dict__["__dict__"].__get__
_handle_request: list[object] = []  # aiohttp's per-request coroutine code, once found


class ContextReader:
    """Reads a task's bound values (rendered by ``render``, redacted like locals) and its
    OpenTelemetry ids."""

    __slots__ = ("render",)

    def __init__(self, render: Callable[[dict[str, object]], dict[str, Any]] | None) -> None:
        self.render = render  # None when locals are off: then no bound values either

    def fields(self, task: Any) -> dict[str, Any] | None:
        """``{"route": ..., "context": {...}, "trace_id": ..., "span_id": ...}`` as far as
        known, or ``None`` when nothing is bound (the common case costs three dict lookups).
        Never raises: what cannot be read is left out."""
        try:
            return self._fields(task)
        except Exception:
            return None

    def _fields(self, task: Any) -> dict[str, Any] | None:
        modules = sys.modules
        structlog = self.render is not None and _STRUCTLOG in modules
        otel = _OTEL in modules
        route = _aiohttp_route(task) if _AIOHTTP in modules else None
        if not (structlog or otel):
            return {S.ROUTE: route} if route is not None else None
        base = _task_base(task)
        if base is None:
            return None
        ctx: object = base.get_context(task)  # asyncio's own method, even on a subclass
        if type(ctx) is not Context:
            return None
        bound: dict[str, object] = {}
        span: object = None
        for n, (var, value) in enumerate(ctx.items()):
            if n >= MAX_VARS:
                break
            name = var.name
            if structlog and name.startswith(_STRUCTLOG_PREFIX) and value is not Ellipsis:
                bound[name[len(_STRUCTLOG_PREFIX) :]] = value
            elif otel and name == _OTEL_VAR and dict in type(value).__mro__:
                span = _current_span(value)
        out: dict[str, Any] = {}
        if route is not None:
            out[S.ROUTE] = route
        if bound and self.render is not None:
            out[S.CONTEXT] = self.render(bound)
        if span is not None:
            ids = _span_ids(span)
            if ids is not None:
                out[S.TRACE_ID], out[S.SPAN_ID] = ids
        return out or None


def _current_span(otel_context: dict[Any, Any]) -> object:
    for key, value in dict.items(otel_context):
        if type(key) is str and key.startswith(_OTEL_SPAN_KEY):
            return value
    return None


def _span_ids(span: object) -> tuple[str, str] | None:
    """The ids of an OpenTelemetry span, from its span context (a ``tuple`` subclass:
    ``trace_id``, ``span_id``, ...) stored on the span, read without calling its code."""
    if not type(span).__module__.startswith("opentelemetry."):
        return None
    found = _plain_attr(span, "_context")
    if tuple not in type(found).__mro__:
        return None
    span_context: tuple[object, ...] = found  # type: ignore[assignment]
    if tuple.__len__(span_context) < 2:
        return None
    trace_id, span_id = tuple.__getitem__(span_context, 0), tuple.__getitem__(span_context, 1)
    if type(trace_id) is not int or type(span_id) is not int or not trace_id:
        return None
    return f"{trace_id:032x}", f"{span_id:016x}"


def _task_base(task: object) -> Any:
    """asyncio's task class that ``task`` is an instance of (its methods are asyncio's own
    even if a subclass overrides them), or ``None``."""
    mro = type(task).__mro__
    for base in _TASK_BASES:
        if base in mro:
            return base
    return None


def _plain_attr(obj: object, name: str) -> object:
    """An attribute stored on ``obj`` itself (a slot or its instance dict), read without
    running a property or ``__getattr__``; ``None`` if there is none."""
    for base in type(obj).__mro__:
        descr = _TYPE_DICT(base).get(name)
        if type(descr) is MemberDescriptorType:
            try:
                return descr.__get__(obj, type(obj))
            except AttributeError:
                return None
    try:
        attrs = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return attrs.get(name) if type(attrs) is dict else None


def _handle_request_code() -> object:
    if not _handle_request:
        handler = vars(sys.modules[_AIOHTTP]).get("RequestHandler")
        function = _TYPE_DICT(handler).get("_handle_request") if type(handler) is type else None
        _handle_request.append(getattr(function, "__code__", None))
    return _handle_request[0]


def _aiohttp_route(task: Any) -> str | None:
    """``"GET /item/{key}"`` for a task running aiohttp's handling of one request, once
    the request is routed; ``None`` for any other task."""
    base = _task_base(task)
    coro = base.get_coro(task) if base is not None else None
    if type(coro) is not CoroutineType or coro.cr_code is not _handle_request_code():
        return None
    frame = coro.cr_frame
    if frame is None:
        return None
    request = local_value(frame, "request")
    method = _plain_attr(request, "_method")
    route = _plain_attr(_plain_attr(request, "_match_info"), "_route")
    resource = _plain_attr(route, "_resource")
    path = _plain_attr(resource, "_orig_path") or _plain_attr(resource, "_path")
    if type(method) is not str or type(path) is not str:
        return None
    return f"{method[:16]} {path[:200]}"
