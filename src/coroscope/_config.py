"""Settings: one home, one name, one default and one line of documentation each.

A setting comes from an explicit argument (API or CLI) first, then from its environment
variable, then from its default.  A bad environment value is a :class:`ConfigError`
naming the variable and what it accepts; the bootstrap prints it and leaves the process
unmonitored.  A bad explicit argument raises the same error (a ``ValueError``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._outputs import parse_output
from ._redact import DEFAULT_DENY, parse_deny_spec, parse_name_list  # locals rendering

__all__ = ["Config", "ConfigError", "SETTINGS", "Setting", "is_enabled", "parse_switch"]

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"", "0", "false", "off", "no"})


class ConfigError(ValueError):
    """One or more settings have values coroscope does not accept."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_switch(raw: str) -> bool:
    """Parse an on/off value: ``1``/``true``/``on``/``yes`` or ``0``/``false``/``off``/``no``."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("accepted: 1, true, on, yes (enable) or 0, false, off, no (disable)")


def is_enabled(environ: Mapping[str, str]) -> bool:
    """Whether ``COROSCOPE`` asks for monitoring; raises ``ValueError`` on a bad value."""
    return parse_switch(environ.get("COROSCOPE", ""))


def _parse_output(raw: str) -> str:
    value = raw.strip()
    parse_output(value)  # raises ValueError naming the accepted forms
    return value


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("accepted: " + ", ".join(choices))
        return value

    return parse


def _parse_positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError("accepted: a whole number greater than 0") from None
    if value <= 0:
        raise ValueError("accepted: a whole number greater than 0")
    return value


def _parse_seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("accepted: a number of seconds, 0 or more") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("accepted: a number of seconds, 0 or more")
    return value


def _parse_milliseconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("accepted: a number of milliseconds, 0 or more") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("accepted: a number of milliseconds, 0 or more")
    return value


def _parse_fraction(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("accepted: a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise ValueError("accepted: a number from 0 to 1")
    return value


def _parse_globs(raw: str) -> tuple[str, ...]:
    globs = tuple(part.strip() for part in raw.split(",") if part.strip())
    for glob in globs:
        if any(c.isspace() for c in glob):
            raise ValueError("accepted: comma-separated module globs, e.g. asyncio.*,aiohttp")
    return globs


# delivery
def _parse_int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"accepted: a whole number of bytes, {minimum} or more") from None
        if value < minimum:
            raise ValueError(f"accepted: a whole number of bytes, {minimum} or more")
        return value

    return parse


def _parse_positive_seconds(raw: str) -> float:
    value = _parse_seconds(raw)
    if value <= 0:
        raise ValueError("accepted: a number of seconds greater than 0")
    return value


def _parse_name(raw: str) -> str:
    return raw.strip()


# end of delivery parsers


def _parse_signal(raw: str) -> str:
    value = raw.strip().upper().removeprefix("SIG")
    if value in ("OFF", "0", "NO", "FALSE", ""):
        return "off"
    if value not in ("USR1", "USR2"):
        raise ValueError("accepted: USR1, USR2 or off")
    return value


@dataclass(frozen=True)
class Setting:
    """How one :class:`Config` field is read from the environment and documented."""

    field: str
    env: str
    parse: Callable[[str], Any]
    doc: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "output",
        "COROSCOPE_OUTPUT",
        _parse_output,
        "Where records go: `stderr`, `stdout`, a file path (appended to), "
        "`syslog+tcp://HOST:PORT`, `syslog+udp://HOST:PORT`, `tcp://HOST:PORT` (JSON lines) or "
        "`otlp+http://HOST:PORT[/PATH]`.",
    ),
    Setting(
        "locals",
        "COROSCOPE_LOCALS",
        _parse_choice("safe", "off"),
        "`safe`: bounded, redacted locals per frame; `off`: no locals at all.",
    ),
    Setting(
        "buffer_size",
        "COROSCOPE_BUFFER",
        _parse_positive_int,
        "Records held in memory for the writer; when full, new records are dropped and counted.",
    ),
    Setting(
        "flush_timeout",
        "COROSCOPE_FLUSH_TIMEOUT",
        _parse_seconds,
        "Seconds the process may spend at exit writing what is still buffered.",
    ),
    # capture
    Setting(
        "mode",
        "COROSCOPE_MODE",
        _parse_choice("all", "slow"),
        "`all`: log every switch; `slow`: only steps or waits that cross the thresholds below.",
    ),
    Setting(
        "slow_step_ms",
        "COROSCOPE_SLOW_STEP_MS",
        _parse_milliseconds,
        "A step (resume to next suspend) this long is slow: logged at `warning` in any mode.",
    ),
    Setting(
        "slow_await_ms",
        "COROSCOPE_SLOW_AWAIT_MS",
        _parse_milliseconds,
        "In `slow` mode, a wait this long is logged (as its `resume`, with the chain).",
    ),
    Setting(
        "sample",
        "COROSCOPE_SAMPLE",
        _parse_fraction,
        "Fraction of tasks captured, decided once per task, so a sampled task's history is whole.",
    ),
    Setting(
        "include",
        "COROSCOPE_INCLUDE",
        _parse_globs,
        "Module globs; if set, only tasks and frames of matching modules are captured.",
    ),
    Setting(
        "exclude",
        "COROSCOPE_EXCLUDE",
        _parse_globs,
        "Module globs left out: their frames are dropped from chains, their tasks not captured.",
    ),
    # delivery
    Setting(
        "max_record_bytes",
        "COROSCOPE_MAX_RECORD_BYTES",
        _parse_int_at_least(1024),
        "Longest record in bytes (a syslog message counts its header); longer ones are shrunk "
        "(locals first) and marked `truncated: true`, never split.",
    ),
    Setting(
        "service",
        "COROSCOPE_SERVICE",
        _parse_name,
        "Service name for aggregators (syslog APP-NAME, OTLP `service.name`); "
        "empty means `OTEL_SERVICE_NAME`.",
    ),
    Setting(
        "net_timeout",
        "COROSCOPE_NET_TIMEOUT",
        _parse_positive_seconds,
        "Seconds a network output may take to connect or to accept a batch before the attempt "
        "fails and is retried with backoff.",
    ),
    Setting(
        "resend_bytes",
        "COROSCOPE_RESEND_BYTES",
        _parse_int_at_least(0),
        "Bytes of the latest records sent over TCP that are sent again after a reconnect "
        "(at-least-once); 0 for at-most-once, no duplicates.",
    ),
    # locals rendering
    Setting(
        "locals_repr",
        "COROSCOPE_REPR",
        _parse_choice("safe", "all"),
        "`safe`: descriptions only for known-safe types, `<module.Type object at 0x...>` for "
        "others; `all`: call every `__repr__` (capped, errors become markers, a type whose "
        "repr once overran `COROSCOPE_LOCALS_MAX_MS` is not asked again).",
    ),
    Setting(
        "redact",
        "COROSCOPE_REDACT",
        parse_deny_spec,
        "Comma-separated names added to the built-in deny-list (matched in locals, dict keys "
        "and fields, case, `_`, `-`, `.` and spaces ignored); a leading `=` replaces the list.",
    ),
    Setting(
        "locals_exclude",
        "COROSCOPE_LOCALS_EXCLUDE",
        parse_name_list,
        "Comma-separated local names (exact, or globs with `*`, `?`, `[...]`) never captured.",
    ),
    Setting(
        "locals_max_str",
        "COROSCOPE_LOCALS_MAX_STR",
        _parse_positive_int,
        "Characters kept of a string, repr or key; the rest is counted as `...[+N chars]`.",
    ),
    Setting(
        "locals_max_items",
        "COROSCOPE_LOCALS_MAX_ITEMS",
        _parse_positive_int,
        "Items shown per container or dataclass; the rest is counted (`[+N more]`).",
    ),
    Setting(
        "locals_max_depth",
        "COROSCOPE_LOCALS_MAX_DEPTH",
        _parse_positive_int,
        "Container levels expanded; deeper ones are summarised as `<list len=N>`.",
    ),
    Setting(
        "locals_max_bytes",
        "COROSCOPE_LOCALS_MAX_BYTES",
        _parse_int_at_least(192),
        "JSON bytes of locals per record; what does not fit is marked `[budget exceeded]`.",
    ),
    Setting(
        "locals_max_ms",
        "COROSCOPE_LOCALS_MAX_MS",
        _parse_milliseconds,
        "Milliseconds one record's locals may take (checked every 64 items); then marked.",
    ),
    # diagnostics
    Setting(
        "blocked_ms",
        "COROSCOPE_BLOCKED_MS",
        _parse_milliseconds,
        "A loop that has not run its callbacks for this long is reported as `loop.blocked` "
        "(with the loop thread's stack) while it is blocked; 0 turns the watchdog off.",
    ),
    Setting(
        "stuck_s",
        "COROSCOPE_STUCK_S",
        _parse_seconds,
        "Tasks suspended this long are reported (`task.stuck`, with chain and locals) every "
        "this many seconds while they stay suspended; 0 turns it off.",
    ),
    Setting(
        "snapshot_signal",
        "COROSCOPE_SNAPSHOT_SIGNAL",
        _parse_signal,
        "Signal that dumps a `snapshot` of every task (`USR1`, `USR2`, or `off`); installed only "
        "if the signal has no handler yet.",
    ),
    Setting(
        "task_done",
        "COROSCOPE_TASK_DONE",
        parse_switch,
        "Log a `task.done` record when a task ends (outcome, age, switches, run and wait time).",
    ),
    Setting(
        "unawaited",
        "COROSCOPE_UNAWAITED",
        parse_switch,
        "Log a `coroutine.never_awaited` record for each coroutine that is never awaited.",
    ),
)


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting coroscope has, resolved once before monitoring starts."""

    output: str = "stderr"
    locals: str = "safe"
    buffer_size: int = 65_536
    flush_timeout: float = 2.0
    # capture
    mode: str = "all"
    slow_step_ms: float = 100.0
    slow_await_ms: float = 1000.0
    sample: float = 1.0
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ("asyncio", "asyncio.*")
    # delivery
    max_record_bytes: int = 8192
    service: str = ""
    net_timeout: float = 2.0
    resend_bytes: int = 8 << 20
    # locals rendering
    locals_repr: str = "safe"
    redact: tuple[str, ...] = DEFAULT_DENY
    locals_exclude: tuple[str, ...] = ()
    locals_max_str: int = 200
    locals_max_items: int = 20
    locals_max_depth: int = 3
    locals_max_bytes: int = 4096
    locals_max_ms: float = 1.0
    # diagnostics
    blocked_ms: float = 500.0
    stuck_s: float = 30.0
    snapshot_signal: str = "USR1"
    task_done: bool = True
    unawaited: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Config:
        """Build a config from explicit ``overrides`` (not ``None``), then ``environ``.

        Raises :class:`ConfigError` listing every bad value, each naming its variable.
        """
        values: dict[str, Any] = {}
        problems: list[str] = []
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise TypeError(f"unknown coroscope setting(s): {', '.join(unknown)}")
        for setting in SETTINGS:
            explicit = overrides.get(setting.field)
            if explicit is not None:
                if isinstance(explicit, list | tuple | set | frozenset):
                    explicit = ",".join(str(item) for item in explicit)
                try:
                    values[setting.field] = setting.parse(str(explicit))
                except ValueError as exc:
                    problems.append(f"{setting.field}={explicit!r} is not valid ({exc})")
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
        return cls(**values)
