"""Settings: one home, one name, one default and one line of documentation each.

A setting comes from an explicit argument (API or CLI) first, then from its environment
variable, then from its default.  Every setting is one :class:`Setting` in
:data:`SETTINGS`; its *kind* says how a value is read from text (an environment variable,
``coroscope run -s NAME=VALUE``) and how a typed argument is checked (``install(sample=0.1)``
is checked as a number, never turned into text and parsed back).

A bad environment value is a :class:`ConfigError` naming the variable and what it
accepts; the bootstrap prints it and leaves the process unmonitored.  A bad explicit
argument raises the same error (a ``ValueError``) naming the argument.

The rest of coroscope takes its values from a :class:`Config` and has no defaults of its
own.  This module imports nothing heavy: it runs at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._denylist import DEFAULT_DENY, parse_deny_spec, parse_name_list
from ._setting_kinds import (
    Choice,
    Kind,
    List,
    Number,
    Positive,
    Signal,
    Switch,
    Text,
    await_site_globs,
    module_globs,
    parse_switch,
)
from .sinks._outputs import parse_output

__all__ = [
    "DEFAULT_DENY",
    "SETTINGS",
    "Config",
    "ConfigError",
    "Setting",
    "is_enabled",
    "parse_switch",
]


class ConfigError(ValueError):
    """One or more settings have values coroscope does not accept."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def is_enabled(environ: Mapping[str, str]) -> bool:
    """Whether ``COROSCOPE`` asks for monitoring; raises ``ValueError`` on a bad value."""
    return parse_switch(environ.get("COROSCOPE", ""))


class Setting:
    """One setting: its :class:`Config` field, variable, default, kind and documentation."""

    __slots__ = ("default", "doc", "env", "field", "kind")

    def __init__(self, field: str, env: str, default: Any, kind: Kind, doc: str) -> None:
        self.field = field
        self.env = env
        self.default = default
        self.kind = kind
        self.doc = doc

    def parse(self, raw: str) -> Any:
        """The value of the setting written as text; raises ``ValueError``."""
        return self.kind.from_text(raw)

    def check(self, value: object) -> Any:
        """A typed value given as an argument, checked; raises ``ValueError``."""
        return self.kind.from_value(value)

    def __repr__(self) -> str:
        return f"Setting({self.field!r}, {self.env!r}, default={self.default!r})"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "output",
        "COROSCOPE_OUTPUT",
        "stderr",
        Text(parse_output),
        "Where records go: `stderr`, `stdout`, a file path (appended to), "
        "`syslog+tcp://HOST:PORT`, `syslog+udp://HOST:PORT`, `tcp://HOST:PORT` (JSON lines) or "
        "`otlp+http://HOST:PORT[/PATH]`.",
    ),
    Setting(
        "locals",
        "COROSCOPE_LOCALS",
        "safe",
        Choice("safe", "off"),
        "`safe`: bounded, redacted locals per frame; `off`: no locals at all.",
    ),
    Setting(
        "buffer_size",
        "COROSCOPE_BUFFER",
        65_536,
        Number("", low=1, integer=True),
        "Records held in memory for the writer; when full, new records are dropped and counted.",
    ),
    Setting(
        "flush_timeout",
        "COROSCOPE_FLUSH_TIMEOUT",
        2.0,
        Number("seconds"),
        "Seconds the process may spend at exit writing what is still buffered.",
    ),
    # capture
    Setting(
        "mode",
        "COROSCOPE_MODE",
        "all",
        Choice("all", "slow", "watch", "recorder"),
        "`all`: log every switch; `slow`: only steps or waits that cross the thresholds below; "
        "`watch`: no task switch is followed at all (blocked loops, stuck tasks, snapshots, "
        "never-awaited coroutines and tasks that fail); `recorder`: every switch is kept in "
        "memory and written only when an incident is triggered.",
    ),
    Setting(
        "recorder_seconds",
        "COROSCOPE_RECORDER_SECONDS",
        10.0,
        Positive("seconds"),
        "In `recorder` mode, how far back the in-memory ring reaches.",
    ),
    Setting(
        "recorder_bytes",
        "COROSCOPE_RECORDER_BYTES",
        33_554_432,
        Number("bytes", low=65_536, integer=True),
        "In `recorder` mode, the ring's memory bound (estimated per record); the oldest "
        "records go first.",
    ),
    Setting(
        "dump_signal",
        "COROSCOPE_DUMP_SIGNAL",
        "USR2",
        Signal(),
        "In `recorder` mode, the signal that writes an incident (`USR1`, `USR2`, or `off`); "
        "installed only if the signal has no handler yet.",
    ),
    Setting(
        "control",
        "COROSCOPE_CONTROL",
        "",
        Text(),
        "Path of a Unix socket (owner-only) that accepts `coroscope ctl` commands: mode, "
        "dump, snapshot; empty: no control channel.",
    ),
    Setting(
        "slow_step_ms",
        "COROSCOPE_SLOW_STEP_MS",
        100.0,
        Number("milliseconds"),
        "A step (resume to next suspend, or to the task's end) this long is slow: logged at "
        "`warning` in any mode; 0 turns it off.",
    ),
    Setting(
        "slow_await_ms",
        "COROSCOPE_SLOW_AWAIT_MS",
        1000.0,
        Number("milliseconds"),
        "In `slow` mode, a wait this long is logged (as its `resume`, with the chain).",
    ),
    Setting(
        "sample",
        "COROSCOPE_SAMPLE",
        1.0,
        Number("", high=1),
        "Fraction of tasks captured, decided once per task, so a sampled task's history is whole.",
    ),
    Setting(
        "include",
        "COROSCOPE_INCLUDE",
        (),
        List(module_globs, "comma-separated module globs, e.g. myapp,myapp.*"),
        "Module globs; if set, only tasks and frames of matching modules are captured.",
    ),
    Setting(
        "exclude",
        "COROSCOPE_EXCLUDE",
        ("asyncio", "asyncio.*"),
        List(module_globs, "comma-separated module globs, e.g. asyncio.*,aiohttp"),
        "Module globs left out: their frames are dropped from chains, their tasks not captured.",
    ),
    # delivery
    Setting(
        "max_record_bytes",
        "COROSCOPE_MAX_RECORD_BYTES",
        8192,
        Number("bytes", low=1024, integer=True),
        "Longest record in bytes (a syslog message counts its header); longer ones are shrunk "
        "(locals first) and marked `truncated: true`, never split.",
    ),
    Setting(
        "service",
        "COROSCOPE_SERVICE",
        "",
        Text(),
        "Service name for aggregators (syslog APP-NAME, OTLP `service.name`); "
        "empty means `OTEL_SERVICE_NAME`.",
    ),
    Setting(
        "net_timeout",
        "COROSCOPE_NET_TIMEOUT",
        2.0,
        Positive("seconds"),
        "Seconds a network output may take to connect or to accept a batch before the attempt "
        "fails and is retried with backoff.",
    ),
    Setting(
        "resend_bytes",
        "COROSCOPE_RESEND_BYTES",
        8 << 20,
        Number("bytes", integer=True),
        "Bytes of the latest records sent over TCP that are sent again after a reconnect "
        "(at-least-once); 0 for at-most-once, no duplicates.",
    ),
    # locals rendering
    Setting(
        "locals_repr",
        "COROSCOPE_REPR",
        "safe",
        Choice("safe", "all"),
        "`safe`: descriptions only for known-safe types, `<module.Type object at 0x...>` for "
        "others; `all`: call every `__repr__` (capped, errors become markers, a type whose "
        "repr once overran `COROSCOPE_LOCALS_MAX_MS` is not asked again).",
    ),
    Setting(
        "redact",
        "COROSCOPE_REDACT",
        DEFAULT_DENY,
        List(parse_deny_spec, "comma-separated names; a leading '=' replaces the list"),
        "Comma-separated names added to the built-in deny-list (matched in locals, dict keys "
        "and fields, case, `_`, `-`, `.` and spaces ignored); a leading `=` replaces the list.",
    ),
    Setting(
        "locals_exclude",
        "COROSCOPE_LOCALS_EXCLUDE",
        (),
        List(parse_name_list, "comma-separated local names or globs"),
        "Comma-separated local names (exact, or globs with `*`, `?`, `[...]`) never captured.",
    ),
    Setting(
        "locals_max_str",
        "COROSCOPE_LOCALS_MAX_STR",
        200,
        Number("", low=1, integer=True),
        "Characters kept of a string, repr or key; the rest is counted as `...[+N chars]`.",
    ),
    Setting(
        "locals_max_items",
        "COROSCOPE_LOCALS_MAX_ITEMS",
        20,
        Number("", low=1, integer=True),
        "Items shown per container or dataclass; the rest is counted (`[+N more]`).",
    ),
    Setting(
        "locals_max_depth",
        "COROSCOPE_LOCALS_MAX_DEPTH",
        3,
        Number("", low=1, integer=True),
        "Container levels expanded; deeper ones are summarised as `<list len=N>`.",
    ),
    Setting(
        "locals_max_bytes",
        "COROSCOPE_LOCALS_MAX_BYTES",
        4096,
        Number("bytes", low=192, integer=True),
        "JSON bytes of locals per record; what does not fit is marked `[budget exceeded]`.",
    ),
    Setting(
        "locals_max_ms",
        "COROSCOPE_LOCALS_MAX_MS",
        1.0,
        Number("milliseconds"),
        "CPU milliseconds one record's locals may take; checked after every 64 items of "
        "containers and after each `__repr__` call, never for a few plain values; then marked.",
    ),
    # diagnostics
    Setting(
        "blocked_ms",
        "COROSCOPE_BLOCKED_MS",
        500.0,
        Number("milliseconds"),
        "A loop that has not run its callbacks for this long is reported as `loop.blocked` "
        "(with the loop thread's stack) while it is blocked; 0 turns the watchdog off.",
    ),
    Setting(
        "stuck_s",
        "COROSCOPE_STUCK_S",
        30.0,
        Number("seconds"),
        "Tasks suspended this long are reported (`task.stuck`, with chain and locals), again "
        "each time the wait doubles; timer and idle waits never are; 0 turns it off.",
    ),
    Setting(
        "stuck_ignore",
        "COROSCOPE_STUCK_IGNORE",
        (),
        List(await_site_globs, "comma-separated await-site globs, e.g. myapp.poll*,*/worker.py:*"),
        "Await sites never reported stuck: globs matched against `module.function` and "
        "`file:line` of each frame of a task's chain.",
    ),
    Setting(
        "snapshot_signal",
        "COROSCOPE_SNAPSHOT_SIGNAL",
        "USR1",
        Signal(),
        "Signal that dumps a `snapshot` of every task (`USR1`, `USR2`, or `off`); installed only "
        "if the signal has no handler yet.",
    ),
    Setting(
        "task_done",
        "COROSCOPE_TASK_DONE",
        True,
        Switch(),
        "Log a `task.done` record when a task ends (outcome, age, switches, run and wait time).",
    ),
    Setting(
        "unawaited",
        "COROSCOPE_UNAWAITED",
        True,
        Switch(),
        "Log a `coroutine.never_awaited` record for each coroutine that is never awaited.",
    ),
)

_BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}


class Config:
    """Every setting coroscope has, resolved once before monitoring starts (immutable).

    ``Config(**values)`` takes already-checked values (defaults for the others); use
    :meth:`from_env` to read and check values from arguments and the environment.
    """

    __slots__ = (
        "blocked_ms",
        "buffer_size",
        "control",
        "dump_signal",
        "exclude",
        "flush_timeout",
        "include",
        "locals",
        "locals_exclude",
        "locals_max_bytes",
        "locals_max_depth",
        "locals_max_items",
        "locals_max_ms",
        "locals_max_str",
        "locals_repr",
        "max_record_bytes",
        "mode",
        "net_timeout",
        "output",
        "recorder_bytes",
        "recorder_seconds",
        "redact",
        "resend_bytes",
        "sample",
        "service",
        "slow_await_ms",
        "slow_step_ms",
        "snapshot_signal",
        "stuck_ignore",
        "stuck_s",
        "task_done",
        "unawaited",
    )

    output: str
    locals: str
    buffer_size: int
    flush_timeout: float
    mode: str
    recorder_seconds: float
    recorder_bytes: int
    dump_signal: str
    control: str
    slow_step_ms: float
    slow_await_ms: float
    sample: float
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    max_record_bytes: int
    service: str
    net_timeout: float
    resend_bytes: int
    locals_repr: str
    redact: tuple[str, ...]
    locals_exclude: tuple[str, ...]
    locals_max_str: int
    locals_max_items: int
    locals_max_depth: int
    locals_max_bytes: int
    locals_max_ms: float
    blocked_ms: float
    stuck_s: float
    stuck_ignore: tuple[str, ...]
    snapshot_signal: str
    task_done: bool
    unawaited: bool

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - _BY_FIELD.keys())
        if unknown:
            raise TypeError(f"unknown coroscope setting(s): {', '.join(unknown)}")
        for setting in SETTINGS:
            object.__setattr__(self, setting.field, values.get(setting.field, setting.default))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Config is immutable; use replace()")

    def __eq__(self, other: object) -> bool:
        if type(other) is not Config:
            return NotImplemented
        return all(getattr(self, s.field) == getattr(other, s.field) for s in SETTINGS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, s.field) for s in SETTINGS))

    def __repr__(self) -> str:
        changed = [
            f"{s.field}={getattr(self, s.field)!r}"
            for s in SETTINGS
            if getattr(self, s.field) != s.default
        ]
        return f"Config({', '.join(changed)})"

    def as_dict(self) -> dict[str, Any]:
        """Every setting by field name."""
        return {s.field: getattr(self, s.field) for s in SETTINGS}

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` (checked like explicit arguments)."""
        values = self.as_dict()
        values.update(_checked(changes))
        return Config(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Config:
        """Build a config from explicit ``overrides`` (not ``None``), then ``environ``.

        Raises :class:`ConfigError` listing every bad value, each naming its variable (or
        argument), and ``TypeError`` for an unknown setting.
        """
        explicit = _checked(overrides)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for setting in SETTINGS:
            if setting.field in explicit:
                continue
            raw = environ.get(setting.env)
            if raw is None:
                continue
            try:
                values[setting.field] = setting.parse(raw)
            except ValueError as exc:
                problems.append(f"{setting.env}={raw!r} is not valid ({exc})")
        if problems:
            raise ConfigError(problems)
        values.update(explicit)
        return cls(**values)

    @staticmethod
    def sources(environ: Mapping[str, str], **overrides: Any) -> dict[str, str]:
        """Where each setting's value comes from: ``argument``, ``$VARIABLE`` or ``default``."""
        out = {}
        for setting in SETTINGS:
            if overrides.get(setting.field) is not None:
                out[setting.field] = "argument"
            elif setting.env in environ:
                out[setting.field] = f"${setting.env}"
            else:
                out[setting.field] = "default"
        return out


def _checked(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Explicit arguments (``None`` means not given), each checked by its setting's kind."""
    unknown = sorted(set(overrides) - _BY_FIELD.keys())
    if unknown:
        raise TypeError(f"unknown coroscope setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field, value in overrides.items():
        if value is None:
            continue
        try:
            values[field] = _BY_FIELD[field].check(value)
        except ValueError as exc:
            problems.append(f"{field}={value!r} is not valid ({exc})")
    if problems:
        raise ConfigError(problems)
    return values
