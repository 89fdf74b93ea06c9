"""Values: a frame's locals to bounded, redacted JSON, on the loop thread.

Values are rendered at capture time (a suspended frame's locals cannot change, but the
objects they refer to can), so rendering must be cheap, bounded and must never run user
code it was not allowed to run.  The pieces, in the order a value meets them:

* :mod:`._renderer` -- :class:`LocalsRenderer`, the entry point: one frame's locals;
* :mod:`._core` -- the dispatcher: plain values inline, others through the type table;
* :mod:`._types` -- the type table: which handler renders each exact type;
* :mod:`._containers`, :mod:`._fields`, :mod:`._known` -- the handlers;
* :mod:`._budget` -- the per-record byte and time budget;
* :mod:`._text`, :mod:`._redact` -- cutting, scrubbing and redaction of text.

Rules (the limits are ``COROSCOPE_LOCALS_*`` settings):

* ``None``, ``bool``, ``float`` and ``int`` (up to 63 bits) stay JSON values; bigger ints
  become decimal strings, or ``"<int of N bits>"`` when that would be long.  Strings are
  cut at ``max_str`` characters (``"...[+N chars]"``); bytes show as a cut ``b'...'``.
* Containers become JSON arrays and objects, bounded in items and depth, with cycles
  marked.  Known-safe types get a short description; dataclasses and named tuples are
  rendered field by field; anything else is ``"<module.Type object at 0x...>"`` (or its
  capped ``__repr__`` with ``COROSCOPE_REPR=all``).
* User code is never triggered by accident: dispatch is on ``type(value)`` by identity,
  classes are inspected through ``type``'s own descriptors, containers are read through
  the base type's C methods, dataclass fields from the instance ``__dict__`` or slots.
* A :class:`Budget` caps the JSON bytes and the time spent on one record; what does not
  fit becomes ``"[budget exceeded]"``, and the frame says why and how many locals were
  left out.
* Redaction: a value under a deny-listed name (local, dict key, field, the first item of a
  ``(name, value)`` pair) becomes ``"[redacted]"``; secret-shaped text is redacted inside
  every string.
"""

from __future__ import annotations

from ._budget import BUDGET_KEY, BUDGET_MARK, MORE_KEY, Budget
from ._redact import REDACTED
from ._renderer import REPR_MODES, LocalsRenderer

__all__ = [
    "BUDGET_KEY",
    "BUDGET_MARK",
    "MORE_KEY",
    "REDACTED",
    "REPR_MODES",
    "Budget",
    "LocalsRenderer",
]
