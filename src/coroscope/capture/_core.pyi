"""Types of the native capture core (``_core.c``); see :mod:`._native`."""

from collections.abc import Callable
from types import CodeType
from typing import Any

class SwitchState:
    resumed_ns: int
    suspended_ns: int
    resumed_lasti: int
    switches: int
    run_ns: int
    wait_ns: int
    suspend_seq: int
    link: object
    value: object

class Switches:
    def __init__(
        self,
        *,
        state_type: type[SwitchState],
        by_frame: dict[Any, object],
        codes: dict[int, object],
        disable: object,
        unawaited_code: CodeType | None,
        on_start: Callable[[CodeType, int], object],
        yielded: Callable[..., object],
        resumed: Callable[..., object],
        on_throw: Callable[[CodeType, int, BaseException], object],
        on_unwind: Callable[[CodeType, int, BaseException], object],
        error: Callable[[BaseException], object],
        slow_step_ns: int,
        slow_await_ns: int,
        log_all: bool,
        send: int,
    ) -> None: ...
    def on_start(self, code: CodeType, offset: int) -> object: ...
    def on_yield(self, code: CodeType, offset: int, value: object) -> object: ...
    def on_resume(self, code: CodeType, offset: int) -> object: ...
    def on_throw(self, code: CodeType, offset: int, exc: BaseException) -> object: ...
    def on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> object: ...
    def set_unawaited_code(self, code: CodeType) -> None: ...
