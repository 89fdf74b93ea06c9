"""The record schema: every event name and field key coroscope writes.

Both sides import this module: the runtime that writes records (:mod:`coroscope.delivery`,
:mod:`coroscope.diagnostics`) and the offline tools that read them
(:mod:`coroscope.tools`), so a name changed here changes on both sides at once.  It
imports nothing.

A record is one JSON object.  Every record has the :data:`COMMON` keys.  The other keys
depend on its ``event``; the README's *Records* section documents each one, and the
comments below say which events carry which keys.
"""

from __future__ import annotations

from typing import Final

# -- the logger name every record carries ----------------------------------------------

LOGGER_NAME: Final = "coroscope"

# -- event names -----------------------------------------------------------------------

SUSPEND: Final = "suspend"  # a task gave up the loop
RESUME: Final = "resume"  # a task got the loop back (or an exception was thrown in)
END: Final = "end"  # a task's final step was slow (it returned or raised)
DROPPED: Final = "dropped"  # records lost, with their count and reason
LOOP_BLOCKED: Final = "loop.blocked"  # the watchdog found a loop blocked (while it is)
LOOP_UNBLOCKED: Final = "loop.unblocked"  # ... and the block ended
TASK_STUCK: Final = "task.stuck"  # a task suspended for at least COROSCOPE_STUCK_S
DEADLOCK: Final = "deadlock"  # tasks waiting in a cycle for asyncio locks they hold
TASK_DONE: Final = "task.done"  # a task ended
SNAPSHOT: Final = "snapshot"  # one task of a snapshot
INCIDENT: Final = "incident"  # recorder mode: a trigger fired; the ring's window follows
MODE_CHANGED: Final = "mode.changed"  # the mode was switched at run time
SNAPSHOT_SUMMARY: Final = "snapshot.summary"  # the end of one loop's snapshot
NEVER_AWAITED: Final = "coroutine.never_awaited"  # Python's "never awaited" warning

SWITCH_EVENTS: Final = (SUSPEND, RESUME)

# -- levels ----------------------------------------------------------------------------

INFO: Final = "info"
WARNING: Final = "warning"

# -- keys of every record --------------------------------------------------------------

EVENT: Final = "event"
LEVEL: Final = "level"
LOGGER: Final = "logger"
TIMESTAMP: Final = "timestamp"  # ISO 8601 UTC, microseconds, e.g. 2026-11-25T13:29:05.214532Z
PID: Final = "pid"
THREAD: Final = "thread"
THREAD_ID: Final = "thread_id"
SEQ: Final = "seq"  # record number in the process, from 0, dense
COMMON: Final = (EVENT, LEVEL, LOGGER, TIMESTAMP, PID, THREAD, THREAD_ID, SEQ)

# -- keys of task records (switches, end, task.stuck, task.done, snapshot) --------------

TASK: Final = "task"  # {"name": str, "id": int}
NAME: Final = "name"
ID: Final = "id"
FRAMES: Final = "frames"  # the await chain, root first: a list of frames (below)
AWAITING: Final = "awaiting"  # what the task waits on: {"type", "repr"}
TYPE: Final = "type"
REPR: Final = "repr"
STEP_MS: Final = "step_ms"  # suspend, end: how long the step ran
WAITED_MS: Final = "waited_ms"  # resume: how long the task was suspended (null: unknown)
EXCEPTION: Final = "exception"  # resume: type of an exception thrown in; task.done: raised
SLOW: Final = "slow"  # suspend, end: "step" when the step crossed COROSCOPE_SLOW_STEP_MS
SLOW_STEP: Final = "step"
RESUMED_AT: Final = "resumed_at"  # suspend, end (slow): where the step began: a place
SUSPEND_SEQ: Final = "suspend_seq"  # resume: the seq of the suspend it follows (then no frames)
TRUNCATED: Final = "truncated"  # true when a record was shrunk to fit the size cap
FRAMES_OMITTED: Final = "frames_omitted"  # frames dropped from the middle by shrinking

# -- keys of a frame and of a place ------------------------------------------------------

FUNCTION: Final = "function"
FILE: Final = "file"
LINE: Final = "line"
LASTI: Final = "lasti"
BLOCKS: Final = "blocks"  # enclosing blocks, outermost first: {"kind", "line"}
KIND: Final = "kind"
LOCALS: Final = "locals"
AWAITS: Final = "awaits"  # what this frame awaits: {"type", "name"}
PLACE: Final = (FUNCTION, FILE, LINE)  # the keys of a place (resumed_at, stack entries)

# -- dropped ---------------------------------------------------------------------------

COUNT: Final = "count"
REASON: Final = "reason"  # buffer_full, sink_error, rejected, filtered, render_error
REASONS: Final = ("buffer_full", "sink_error", "rejected", "filtered", "render_error")

# -- loop.blocked / loop.unblocked -----------------------------------------------------

BLOCKED_MS: Final = "blocked_ms"
STACK: Final = "stack"  # the loop thread's Python stack, innermost last: places

# -- task.stuck ------------------------------------------------------------------------

SUSPENDED_S: Final = "suspended_s"
IDLE: Final = "idle"  # snapshot: a wait that is idle by design (timer, queue, event, ...)

# -- snapshot / snapshot.summary -------------------------------------------------------

STATE: Final = "state"  # running, pending, cancelling
SNAPSHOT_ID: Final = "snapshot_id"
AWAITS_TASKS: Final = "awaits_tasks"  # ids of the tasks this one waits for
TASKS: Final = "tasks"  # snapshot.summary: how many tasks
BY_STATE: Final = "by_state"

# -- task.done -------------------------------------------------------------------------

AGE_MS: Final = "age_ms"
SWITCHES: Final = "switches"
RUN_MS: Final = "run_ms"
WAIT_MS: Final = "wait_ms"
OUTCOME: Final = "outcome"  # result, exception, cancelled
RESULT: Final = "result"
CANCELLED: Final = "cancelled"
RESULT_TYPE: Final = "result_type"
CANCELLED_AT: Final = "cancelled_at"  # the chain the task was suspended in when cancelled
RAISED_AT: Final = "raised_at"  # watch mode: where a failed task's exception was raised
CONTEXT: Final = "context"  # values bound with structlog's bind_contextvars, rendered like locals
TRACE_ID: Final = "trace_id"  # OpenTelemetry's current trace id (32 hex digits)
SPAN_ID: Final = "span_id"  # OpenTelemetry's current span id (16 hex digits)
ROUTE: Final = "route"  # the route an aiohttp request task serves: "GET /item/{key}"
# A task's asyncio locks held by its active async with blocks; in a frame's blocks: what the
# block holds (the for loop's iterator, the with's manager, the except's exception).
HOLDS: Final = "holds"
WAITS_FOR: Final = "waits_for"  # the asyncio lock a task is blocked acquiring
LOCKS: Final = "locks"  # deadlock: the locks of the cycle
STOOD_S: Final = "stood_s"  # deadlock: how long every task of the cycle has waited, at least
WAITING_S: Final = "waiting_s"  # deadlock: how long this task has waited (null if not known)

# -- coroutine.never_awaited -----------------------------------------------------------

COROUTINE: Final = "coroutine"
CREATED_AT: Final = "created_at"

# -- incident, mode.changed (recorder mode, run-time mode switches) -----------------------

INCIDENT_ID: Final = "incident_id"  # an incident's number; on each record written for it
TRIGGER: Final = "trigger"  # what fired: slow_step, slow_wait, loop.blocked, task.stuck, ...
WINDOW_S: Final = "window_s"  # how far back the ring reached
RECORDS: Final = "records"  # how many of the ring's records follow
SUPPRESSED: Final = "suppressed"  # triggers not written since the last incident (rate limit)
MODE: Final = "mode"  # mode.changed: the mode now
PREVIOUS: Final = "previous"  # mode.changed: the mode before
UNTIL_S: Final = "for_s"  # mode.changed: seconds until the configured mode returns (or null)
