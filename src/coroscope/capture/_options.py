"""What the capture callbacks record: decided once, before monitoring starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["NEVER", "CaptureOptions"]

NEVER = 2**62  # a threshold no step or wait reaches


class CaptureOptions:
    """What the callbacks record; fixed for the life of an installation."""

    __slots__ = ("log_all", "sample", "slow_await_ns", "slow_step_ns", "task_done")

    def __init__(
        self,
        *,
        mode: str,
        slow_step_ms: float,
        slow_await_ms: float,
        sample: float,
        task_done: bool,
    ) -> None:
        self.log_all = mode in ("all", "recorder")  # the recorder keeps every switch
        self.task_done = task_done
        self.slow_step_ns = int(slow_step_ms * 1e6) if slow_step_ms > 0 else NEVER
        self.slow_await_ns = int(slow_await_ms * 1e6)
        self.sample = sample

    @classmethod
    def from_config(cls, config: Config) -> CaptureOptions:
        """The capture's view of a configuration."""
        return cls(
            mode=config.mode,
            slow_step_ms=config.slow_step_ms,
            slow_await_ms=config.slow_await_ms,
            sample=config.sample,
            task_done=config.task_done,
        )
