"""Rendering of captured locals: bounded, redacted, valid JSON, and no user code run."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import ipaddress
import math
import pathlib
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_redact import SECRET_ALPHABET, filler_st, leaked, secrets_st, shaped

from coroscope._config import DEFAULT_DENY, Config
from coroscope.values import BUDGET_KEY, BUDGET_MARK, REDACTED, Budget, LocalsRenderer
from coroscope.values._redact import DenyList

MAX_BYTES = 4096
# Wall-clock slack for "within the time budget" on a loaded CI machine: the renderer
# looks at the clock every 64 items, so it may overrun its 1 ms by a little work.
SLACK_S = 0.25

# Every hostile hook below records itself here; a render must leave it empty.
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _no_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


def dumps(value: object) -> bytes:
    """orjson bytes of a rendered value (fails the test if orjson refuses it)."""
    return orjson.dumps(value)


def render(value: object, **options: Any) -> Any:
    """Render ``value`` as the only local ``v`` of a frame; check JSON and byte cap."""
    renderer = LocalsRenderer(**options)
    out = renderer.render_locals({"v": value})
    assert len(dumps(out)) <= options.get("max_bytes", MAX_BYTES)
    return out.get("v", out)


# -- the adversarial zoo --------------------------------------------------------------


class RaisingRepr:
    def __repr__(self) -> str:
        CALLS.append("repr")
        raise ValueError("no repr for you")


class SleepingRepr:
    def __repr__(self) -> str:
        CALLS.append("repr")
        time.sleep(0.05)
        return "slept"


class HugeRepr:
    def __repr__(self) -> str:
        CALLS.append("repr")
        return "x" * 10_000_000


class RaisingDunders:
    def __len__(self) -> int:
        CALLS.append("len")
        raise RuntimeError

    def __iter__(self) -> Iterator[int]:
        CALLS.append("iter")
        raise RuntimeError

    def __eq__(self, other: object) -> bool:
        CALLS.append("eq")
        raise RuntimeError

    def __hash__(self) -> int:
        CALLS.append("hash")
        raise RuntimeError

    def __bool__(self) -> bool:
        CALLS.append("bool")
        raise RuntimeError


class RaisingList(list[int]):
    def __len__(self) -> int:
        CALLS.append("len")
        raise RuntimeError

    def __iter__(self) -> Iterator[int]:
        CALLS.append("iter")
        raise RuntimeError

    def __getitem__(self, index: Any) -> Any:
        CALLS.append("getitem")
        raise RuntimeError


class RaisingTuple(tuple[str, ...]):
    def __len__(self) -> int:
        CALLS.append("len")
        raise RuntimeError

    def __iter__(self) -> Iterator[str]:
        CALLS.append("iter")
        raise RuntimeError

    def __getitem__(self, index: Any) -> Any:
        CALLS.append("getitem")
        raise RuntimeError


class RaisingDict(dict[str, int]):
    def __len__(self) -> int:
        CALLS.append("len")
        raise RuntimeError

    def items(self) -> Any:
        CALLS.append("items")
        raise RuntimeError

    def __iter__(self) -> Iterator[str]:
        CALLS.append("iter")
        raise RuntimeError


class ClassProperty:
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        CALLS.append("__class__")
        return int


class HookedMeta(type):
    def __instancecheck__(cls, instance: object) -> bool:
        CALLS.append("instancecheck")
        return True

    def __subclasscheck__(cls, subclass: type) -> bool:
        CALLS.append("subclasscheck")
        return True

    def __hash__(cls) -> int:
        CALLS.append("meta hash")
        return 1

    def __eq__(cls, other: object) -> bool:
        CALLS.append("meta eq")
        return False

    def __getattribute__(cls, name: str) -> Any:
        CALLS.append(f"meta getattribute {name}")
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name: str) -> Any:
        CALLS.append(f"meta getattr {name}")
        raise AttributeError(name)

    def __repr__(cls) -> str:
        CALLS.append("meta repr")
        return "HookedClass"

    def __len__(cls) -> int:
        CALLS.append("meta len")
        return 0

    @property
    def __module__(cls) -> str:  # type: ignore[override]
        CALLS.append("meta module")
        return "hooked"


class HookedClass(metaclass=HookedMeta):
    pass


class LoggingGetattr:
    def __init__(self) -> None:
        self.x = 1

    def __getattr__(self, name: str) -> Any:
        CALLS.append(f"getattr {name}")
        raise AttributeError(name)

    def __getattribute__(self, name: str) -> Any:
        CALLS.append(f"getattribute {name}")
        return object.__getattribute__(self, name)


class HostileKey:
    """Hashable once (to get into a dict), then every hook is recorded."""

    armed = False

    def __hash__(self) -> int:
        if HostileKey.armed:
            CALLS.append("key hash")
        return 7

    def __eq__(self, other: object) -> bool:
        if HostileKey.armed:
            CALLS.append("key eq")
        return self is other

    def __repr__(self) -> str:
        CALLS.append("repr")
        return "HostileKey()"


class StrWithHooks(str):
    def __len__(self) -> int:
        CALLS.append("str len")
        return 0

    def __hash__(self) -> int:
        CALLS.append("str hash")
        return 0

    def lower(self) -> str:  # type: ignore[override]
        CALLS.append("str lower")
        return ""


def nested_list(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def self_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def self_dict() -> dict[str, Any]:
    loop: dict[str, Any] = {"a": 1}
    loop["me"] = loop
    return loop


def hostile_key_dict() -> dict[Any, int]:
    HostileKey.armed = False
    mapping = {HostileKey(): 1, "ok": 2}
    HostileKey.armed = True
    return mapping


ZOO: dict[str, Callable[[], object]] = {
    "repr raises": RaisingRepr,
    "repr sleeps": SleepingRepr,
    "repr returns 10 MB": HugeRepr,
    "10**100000": lambda: 10**100_000,
    "-(10**100000)": lambda: -(10**100_000),
    "list nested 10,000 deep": lambda: nested_list(10_000),
    "self-referencing list": self_list,
    "self-referencing dict": self_dict,
    "len/iter/eq/hash/bool raise": RaisingDunders,
    "list subclass hooks raise": lambda: RaisingList([1, 2]),
    "dict subclass hooks raise": lambda: RaisingDict(a=1),
    "tuple subclass hooks raise": lambda: RaisingTuple(("password", "hunter2")),
    "__class__ property": ClassProperty,
    "metaclass hooks (instance)": HookedClass,
    "metaclass hooks (class)": lambda: HookedClass,
    "__getattr__/__getattribute__ log": LoggingGetattr,
    "dict key with hooks": hostile_key_dict,
    "set of hooked objects": lambda: {HookedClass(), RaisingRepr()},
    "str subclass with hooks": lambda: StrWithHooks("Bearer topsecret"),
    "str subclass as key": lambda: {StrWithHooks("password"): "hunter2"},
    "lone surrogates": lambda: "a\ud800b\udfff" * 50,
    "10 MB str": lambda: "y" * 10_000_000,
    "10 MB bytes": lambda: b"\x00" * 10_000_000,
    "huge dict": lambda: {str(i): i for i in range(100_000)},
    "NaN and infinities": lambda: [math.nan, math.inf, -math.inf],
}


class TestZoo:
    """Hostile values: no exception, valid JSON within the byte cap, in time, no hooks run."""

    @pytest.mark.parametrize("make", ZOO.values(), ids=ZOO.keys())
    def test_safe_mode(self, make: Callable[[], object]) -> None:
        """In the default mode nothing of the value's own code runs at all."""
        value = make()
        CALLS.clear()
        start = time.perf_counter()
        out = LocalsRenderer().render_locals({"v": value, "after": 1})
        elapsed = time.perf_counter() - start
        assert len(dumps(out)) <= MAX_BYTES
        assert elapsed < 0.001 + SLACK_S
        assert CALLS == []
        assert "v" in out

    @pytest.mark.parametrize("make", ZOO.values(), ids=ZOO.keys())
    def test_all_mode(self, make: Callable[[], object]) -> None:
        """With COROSCOPE_REPR=all only ``__repr__`` itself may run, and its result is capped."""
        value = make()
        CALLS.clear()
        out = LocalsRenderer(repr_mode="all").render_locals({"v": value})
        assert len(dumps(out)) <= MAX_BYTES
        assert set(CALLS) <= {"repr"}

    def test_repr_raising_becomes_marker(self) -> None:
        """An exception in a user repr is a marker naming it, never an error."""
        assert "repr raised ValueError" in render(RaisingRepr(), repr_mode="all")

    def test_huge_repr_is_capped(self) -> None:
        """A 10 MB repr is cut (or marked slow), never logged whole."""
        out = render(HugeRepr(), repr_mode="all", max_ms=1000)
        assert out.startswith("x" * 200) and "...[+9999800 chars]" in out

    def test_slow_repr_is_asked_once(self) -> None:
        """A repr that overran the time budget is not called again for its type."""
        renderer = LocalsRenderer(repr_mode="all", max_ms=10)
        first = renderer.render_locals({"v": SleepingRepr()})
        assert "slow repr" in first["v"] and first[BUDGET_KEY].startswith("time")
        start = time.perf_counter()
        second = renderer.render_locals({"v": SleepingRepr()})
        assert time.perf_counter() - start < 0.04
        assert CALLS == ["repr"]
        assert second["v"].startswith("<test_values.SleepingRepr object at 0x")

    def test_huge_int(self) -> None:
        """10**100000 becomes a bit count, without str() (which would raise)."""
        assert render(10**100_000) == "<int of 332193 bits>"
        assert render(-(10**100_000)) == "<-int of 332193 bits>"

    def test_deep_nesting_is_cut(self) -> None:
        """A 10,000-deep list shows its first levels, then a summary."""
        assert render(nested_list(10_000)) == [[["<list len=1>"]]]

    def test_cycles_are_marked(self) -> None:
        """A container met again inside itself is marked, not followed."""
        assert render(self_list()) == [1, "[cycle: list]"]
        assert render(self_dict()) == {"a": 1, "me": "[cycle: dict]"}
        outer: list[Any] = []
        outer.append({"back": outer})
        assert render(outer) == [{"back": "[cycle: list]"}]

    def test_dict_mutated_by_another_thread(self) -> None:
        """A dict changed by another thread during capture never breaks the render."""
        small: dict[str, int] = {"a": 1}
        big: dict[str, int] = {str(i): i for i in range(100)}
        stop = threading.Event()

        def mutate() -> None:
            i = 0
            while not stop.is_set():
                for target in (small, big):
                    target[f"k{i}"] = i
                    target.pop(f"k{i - 3}", None)
                i += 1

        renderer = LocalsRenderer()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        thread = threading.Thread(target=mutate)
        thread.start()
        try:
            for _ in range(2000):
                out = renderer.render_locals({"small": small, "big": big, "n": 1})
                assert len(dumps(out)) <= MAX_BYTES
                assert out["n"] == 1
        finally:
            stop.set()
            thread.join()
            sys.setswitchinterval(interval)


# -- rendering rules ------------------------------------------------------------------


class TestScalars:
    """Scalars stay JSON values, capped."""

    def test_json_scalars(self) -> None:
        """None, bools, floats, small ints and short strings are kept as they are."""
        values = {"n": None, "t": True, "f": False, "x": 1.5, "i": -7, "s": "hi"}
        assert LocalsRenderer().render_locals(values) == values

    def test_int_edges(self) -> None:
        """Ints of 63 bits are numbers; bigger ones (which orjson refuses) are strings."""
        assert render(2**63 - 1) == 2**63 - 1
        assert render(-(2**63) + 1) == -(2**63) + 1
        assert render(2**64) == str(2**64)
        assert render(10**700) == "<int of 2326 bits>"

    def test_long_string_is_cut(self) -> None:
        """Strings keep max_str characters and say how many were left out."""
        assert render("a" * 1000, max_str=10) == "aaaaaaaaaa...[+990 chars]"

    def test_surrogates_are_replaced(self) -> None:
        """Lone surrogates (refused by orjson) become '?'."""
        assert render("a\ud800b") == "a?b"
        assert render({"k\udc00": "v"}) == {"k?": "v"}

    def test_bytes(self) -> None:
        """Bytes show as a cut b'...' with their total size."""
        assert render(b"ab\x00") == "b'ab\\x00'"
        assert render(b"a" * 500, max_str=8).endswith("...[500 bytes]")
        assert render(bytearray(b"xy")) == "bytearray(b'xy')"
        assert render(memoryview(b"abc")) == "<memoryview nbytes=3 format='B'>"

    def test_scalar_subclasses_use_base_value(self) -> None:
        """int/str/float/bytes subclasses (not enums) are read through the base type."""

        class UserId(int):
            def __repr__(self) -> str:
                CALLS.append("repr")
                return "?"

        values = (UserId(5), StrWithHooks("plain"))
        CALLS.clear()
        assert render(values[0]) == 5
        assert render(values[1]) == "plain"
        assert CALLS == []


class TestContainers:
    """Containers: bounded depth and items, counted leftovers, string keys."""

    def test_items_and_more(self) -> None:
        """At most max_items items, then the number left out."""
        assert render(list(range(30)), max_items=3) == [0, 1, 2, "[+27 more]"]
        assert render({str(i): i for i in range(5)}, max_items=2) == {"0": 0, "1": 1, "[more]": 3}

    def test_depth(self) -> None:
        """Levels beyond max_depth are summarised with their length."""
        assert render({"a": [1, (2, 3)]}, max_depth=2) == {"a": [1, "<tuple len=2>"]}

    def test_kinds(self) -> None:
        """Tuples, sets, frozensets, deques and dict views are arrays."""
        assert render((1, "a")) == [1, "a"]
        assert sorted(render({3, 1, 2})) == [1, 2, 3]
        assert render(frozenset({1})) == [1]
        assert render(collections.deque([1, 2], maxlen=5)) == [1, 2]
        assert render({"a": 1}.keys()) == ["a"]
        assert render({"a": 1}.items()) == [["a", 1]]
        assert render(collections.OrderedDict(b=1)) == {"b": 1}
        assert render(collections.Counter("aab")) == {"a": 2, "b": 1}

    def test_non_string_keys(self) -> None:
        """Keys that are not strings become short strings, without hashing them again."""
        out = render({1: "a", (1, "x"): "b", None: "c", 2.5: "d", False: "e"})
        assert out == {"1": "a", "(1, 'x')": "b", "None": "c", "2.5": "d", "False": "e"}
        mapping = hostile_key_dict()
        CALLS.clear()
        out = render(mapping)
        assert CALLS == [] and out["ok"] == 2
        assert any(k.startswith("<test_values.HostileKey object at") for k in out)

    def test_colliding_keys_are_kept_apart(self) -> None:
        """A rendered key equal to another one gets a suffix rather than overwriting it."""
        assert render({1: "int", "1": "str"}) == {"1": "int", "1~": "str"}

    def test_subclass_content_without_its_hooks(self) -> None:
        """A list/dict subclass is rendered through the base type, not its overrides."""
        values = (RaisingList([1, 2]), RaisingDict(a=1), RaisingTuple(("token", "t0k")))
        CALLS.clear()
        assert render(values[0]) == [1, 2]
        assert render(values[1]) == {"a": 1}
        assert render(values[2]) == ["token", REDACTED]
        assert CALLS == []

    def test_named_tuple(self) -> None:
        """A named tuple is an object of its fields; secret field names are redacted."""

        class Login(NamedTuple):
            user: str
            password: str

        assert render(Login("ann", "pw")) == {
            "__type__": "test_values.TestContainers.test_named_tuple.<locals>.Login",
            "user": "ann",
            "password": REDACTED,
        }


class Color(enum.Enum):
    RED = 1


class Perm(enum.Flag):
    R = 1
    W = 2


class HookedEnumMeta(enum.EnumType):
    def __getattr__(cls, name: str) -> Any:
        CALLS.append(f"enum meta getattr {name}")
        raise AttributeError(name)

    def __len__(cls) -> int:
        CALLS.append("enum meta len")
        return 0

    def __iter__(cls) -> Iterator[Any]:
        CALLS.append("enum meta iter")
        return iter(())

    def __repr__(cls) -> str:
        CALLS.append("enum meta repr")
        return "?"


class Level(enum.IntEnum, metaclass=HookedEnumMeta):
    LOW = 1

    def __repr__(self) -> str:
        CALLS.append("member repr")
        return "?"


class EvilTz(datetime.tzinfo):
    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
        CALLS.append("utcoffset")
        return datetime.timedelta(0)

    def __repr__(self) -> str:
        CALLS.append("tz repr")
        return "EvilTz()"


class TestKnownTypes:
    """Known-safe types get a short description built without their repr."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (datetime.date(2024, 1, 2), "2024-01-02"),
            (datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.UTC), "2024-01-02T03:04:00+00:00"),
            (datetime.timedelta(seconds=1.5), "0:00:01.500000"),
            (decimal.Decimal("1.10"), "1.10"),
            (fractions.Fraction(1, 3), "1/3"),
            (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
            (pathlib.PurePosixPath("/etc/hosts"), "/etc/hosts"),
            (ipaddress.ip_address("10.0.0.1"), "10.0.0.1"),
            (range(2, 10**30), f"range(2, {10**30}, 1)"),
            (slice(1, None, object()), "slice(1, None, ...)"),
            (1 + 2j, "(1+2j)"),
            (Color.RED, "Color.RED"),
            (Perm.R | Perm.W, "Perm.R|W"),
            (ValueError("bad", 3), "ValueError('bad', 3)"),
            (len, "<built-in len>"),
            (math, "<module math>"),
            (int, "<class int>"),
            (Color, "<class test_values.Color>"),
        ],
    )  # fmt: skip
    def test_descriptions(self, value: object, expected: str) -> None:
        """Each known type has its own compact text."""
        assert render(value) == expected

    def test_user_enum_with_hooked_metaclass(self) -> None:
        """An enum member renders as Class.NAME; metaclass and member hooks do not run."""
        member = Level.LOW
        CALLS.clear()
        assert render(member) == "Level.LOW"
        assert CALLS == []

    def test_foreign_tzinfo_is_not_called(self) -> None:
        """A datetime with a user tzinfo is shown naive plus the tz type, no tz code run."""
        value = datetime.datetime(2024, 1, 2, tzinfo=EvilTz())
        assert render(value) == "2024-01-02T00:00:00 [tz test_values.EvilTz]"
        assert CALLS == []

    def test_exception_args_do_not_recurse(self) -> None:
        """An exception holding itself in its args is described once."""
        error = ValueError("x")
        error.args = (error, RaisingRepr())
        CALLS.clear()
        assert render(error) == (
            "ValueError(<ValueError>, <test_values.RaisingRepr object at "
            + hex(id(error.args[1]))
            + ">)"
        )
        assert CALLS == []

    def test_functions_and_coroutines(self) -> None:
        """Functions, methods and coroutines are named by their qualified name."""

        async def leaf() -> None:
            pass

        coro = leaf()
        try:
            assert (
                render(coro)
                == "<coroutine TestKnownTypes.test_functions_and_coroutines.<locals>.leaf>"
            )
            assert render(leaf).startswith("<function TestKnownTypes.")
            assert render(self.test_functions_and_coroutines).startswith(
                "<bound method TestKnownTypes."
            )
        finally:
            coro.close()

    def test_asyncio_objects(self) -> None:
        """Futures, tasks, handles and sync primitives get a short state, not their repr."""

        async def leaf() -> None:
            await asyncio.sleep(0)

        async def main() -> dict[str, Any]:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(leaf(), name="worker-1")
            failed = loop.create_future()
            failed.set_exception(KeyError("k"))
            failed.exception()  # retrieved: no "never retrieved" warning at exit
            handle = loop.call_later(60, print)
            values = {
                "fut": loop.create_future(),
                "failed": failed,
                "task": task,
                "handle": handle,
                "soon": loop.call_soon(print),
                "event": asyncio.Event(),
                "lock": asyncio.Lock(),
                "sem": asyncio.Semaphore(2),
                "queue": asyncio.Queue(maxsize=3),
            }
            out = LocalsRenderer().render_locals(values)
            handle.cancel()
            values["soon"].cancel()
            await task
            return out

        out = asyncio.run(main())
        assert out["fut"] == "<Future pending>"
        assert out["failed"] == "<Future finished exception=KeyError>"
        assert (
            out["task"]
            == "<Task pending name='worker-1' coro=<TestKnownTypes.test_asyncio_objects.<locals>.leaf()>>"
        )
        assert out["handle"].startswith("<TimerHandle when=") and out["handle"].endswith(
            "callback=print>"
        )
        assert out["soon"] == "<Handle callback=print>"
        assert (out["event"], out["lock"], out["sem"], out["queue"]) == (
            "<Event unset>", "<Lock unlocked>", "<Semaphore value=2>", "<Queue size=0 maxsize=3>",
        )  # fmt: skip

    def test_lazily_imported_stdlib_types(self) -> None:
        """Known types of stdlib modules imported after the renderer was built are found."""
        saved = sys.modules.pop("zoneinfo", None)
        try:
            renderer = LocalsRenderer()  # zoneinfo not imported yet
        finally:
            if saved is not None:
                sys.modules["zoneinfo"] = saved
        import zoneinfo

        try:
            zone = zoneinfo.ZoneInfo("UTC")
        except zoneinfo.ZoneInfoNotFoundError:
            pytest.skip("no time zone data")
        out = renderer.render_locals({"z": zone, "d": datetime.datetime(2024, 1, 1, tzinfo=zone)})
        assert out == {"z": "UTC", "d": "2024-01-01T00:00:00+00:00"}


@dataclasses.dataclass
class Account:
    user: str
    api_key: str
    balance: decimal.Decimal
    notes: list[str] = dataclasses.field(default_factory=list)
    internal: str = dataclasses.field(default="hidden", repr=False)


@dataclasses.dataclass(slots=True, frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass
class WithProperty:
    value: int

    @property
    def computed(self) -> int:
        CALLS.append("property")
        return 1


class Shadowed:
    """A dataclass whose field is a property: the property must not be called."""


@dataclasses.dataclass
class Guarded:
    secret_sauce: str

    def __getattribute__(self, name: str) -> Any:
        CALLS.append(f"getattribute {name}")
        return object.__getattribute__(self, name)


class TestDataclasses:
    """Dataclasses are rendered field by field, within the limits, without properties."""

    def test_fields(self) -> None:
        """Fields in order, secret names redacted, repr=False fields left out."""
        out = render(Account("ann", "sk-1", decimal.Decimal("2.50"), ["vip"]))
        assert out == {
            "__type__": "test_values.Account",
            "user": "ann",
            "api_key": REDACTED,
            "balance": "2.50",
            "notes": ["vip"],
        }

    def test_defaults_of_any_type(self) -> None:
        """Class-level defaults (ints included) never pass for named-tuple positions."""

        @dataclasses.dataclass
        class Settings:
            retries: int = 3
            name: str = "n"
            ratio: float | None = None

        out = LocalsRenderer().render_locals({"s": Settings(retries=5), "after": "kept"})
        assert out["s"] == {
            "__type__": "test_values.TestDataclasses.test_defaults_of_any_type.<locals>.Settings",
            "retries": 5,
            "name": "n",
            "ratio": None,
        }
        assert out["after"] == "kept"

    def test_slots_and_frozen(self) -> None:
        """Slot fields are read through their slot descriptor."""
        assert render(Point(1, 2)) == {"__type__": "test_values.Point", "x": 1, "y": 2}

    def test_properties_are_not_called(self) -> None:
        """Properties (which are not fields) never run."""
        assert render(WithProperty(3)) == {"__type__": "test_values.WithProperty", "value": 3}
        assert CALLS == []

    def test_custom_getattribute_is_not_rendered(self) -> None:
        """A dataclass with its own __getattribute__ is only named, and not called."""
        value = Guarded("x")
        CALLS.clear()
        assert render(value).startswith("<test_values.Guarded object at 0x")
        assert CALLS == []

    def test_depth_and_items(self) -> None:
        """Dataclasses count as a level and show at most max_items fields."""
        assert render([[Point(1, 2)]], max_depth=2)[0][0].startswith("<test_values.Point object")
        assert render(Point(1, 2), max_items=1) == {
            "__type__": "test_values.Point",
            "x": 1,
            "[more]": 1,
        }


class TestRedaction:
    """Names and shapes decide what is hidden."""

    def test_locals_by_name(self) -> None:
        """Deny-listed locals are redacted whatever their type."""
        out = LocalsRenderer().render_locals(
            {"DB_Password": "hunter2", "authHeader": {"a": 1}, "user": "ann", "session_id": 3}
        )
        assert out == {
            "DB_Password": REDACTED,
            "authHeader": REDACTED,
            "user": "ann",
            "session_id": REDACTED,
        }

    def test_keys_at_depth(self) -> None:
        """Dict keys are checked at every level."""
        assert render({"cfg": {"db": {"Pass-Word": "x", "host": "h"}}}, max_depth=4) == {
            "cfg": {"db": {"Pass-Word": REDACTED, "host": "h"}}
        }

    def test_name_value_pairs(self) -> None:
        """A (name, value) tuple is redacted like a dict entry."""
        assert render([("Authorization", "x"), ("Accept", "json")]) == [
            ["Authorization", REDACTED], ["Accept", "json"],
        ]  # fmt: skip

    def test_shapes_in_values_keys_and_reprs(self) -> None:
        """Secret-shaped text is redacted in values, keys, bytes and exception messages."""
        out = render(
            {
                "url": "https://u:pw123456@h/x",
                "Bearer abcdef123456": 1,
                "raw": b"Authorization: Basic dXNlcjpwYXNz",
                "err": ValueError("token=abcdef123456"),
            }
        )
        assert "pw123456" not in str(out) and "abcdef123456" not in str(out)
        assert "dXNlcjpwYXNz" not in str(out)

    def test_exclude(self) -> None:
        """Excluded locals are dropped entirely (exact names and globs)."""
        renderer = LocalsRenderer(exclude=["request", "_tmp*"])
        out = renderer.render_locals({"request": 1, "_tmp_a": 2, "keep": 3})
        assert out == {"keep": 3}

    def test_custom_deny_list(self) -> None:
        """A replaced deny-list hides only its own names."""
        renderer = LocalsRenderer(deny=["tenant"])
        assert renderer.render_locals({"tenant_id": 1, "password": 2}) == {
            "tenant_id": REDACTED, "password": 2,
        }  # fmt: skip
        assert renderer.is_denied("TENANT") and not renderer.is_denied("password")

    def test_from_config(self) -> None:
        """LocalsRenderer.from_config applies every locals setting of a Config."""
        config = Config.from_env(
            {
                "COROSCOPE_REDACT": "tenant",
                "COROSCOPE_LOCALS_EXCLUDE": "skip",
                "COROSCOPE_LOCALS_MAX_STR": "5",
                "COROSCOPE_LOCALS_MAX_ITEMS": "2",
                "COROSCOPE_LOCALS_MAX_DEPTH": "1",
                "COROSCOPE_LOCALS_MAX_BYTES": "300",
                "COROSCOPE_LOCALS_MAX_MS": "2.5",
                "COROSCOPE_REPR": "all",
            }
        )
        renderer = LocalsRenderer.from_config(config)
        assert (renderer.max_str, renderer.max_items, renderer.max_depth, renderer.repr_mode) == (
            5, 2, 1, "all",
        )  # fmt: skip
        out = renderer.render_locals(
            {"tenant": 1, "password": 2, "skip": 3, "s": "abcdefgh", "l": [1, [2], 3]}
        )
        assert out == {
            "tenant": REDACTED, "password": REDACTED, "s": "abcde...[+3 chars]",
            "l": [1, "<list len=1>", "[+1 more]"],
        }  # fmt: skip
        assert config.redact == (*DEFAULT_DENY, "tenant")

    def test_default_config_matches_renderer_defaults(self) -> None:
        """The Config defaults and the LocalsRenderer defaults are the same limits."""
        a = LocalsRenderer.from_config(Config.from_env({}))
        b = LocalsRenderer()
        assert (a.max_str, a.max_items, a.max_depth, a.repr_mode) == (
            b.max_str, b.max_items, b.max_depth, b.repr_mode,
        )  # fmt: skip
        assert a.new_budget().left == b.new_budget().left


class TestBudget:
    """One record's bytes and time are capped; what did not fit is marked."""

    def test_byte_cap(self) -> None:
        """Many big locals stop at max_bytes with a marker saying how many were left out."""
        f_locals = {f"v{i}": "z" * 150 for i in range(100)}
        out = LocalsRenderer(max_bytes=1000).render_locals(f_locals)
        assert len(dumps(out)) <= 1000
        assert out[BUDGET_KEY].startswith("bytes, ")
        shown = [k for k in out if k.startswith("v")]
        assert out[BUDGET_KEY] == f"bytes, {100 - len(shown)} locals left out"

    def test_cut_inside_a_container(self) -> None:
        """A container that does not fit ends with the budget marker."""
        out = LocalsRenderer(max_bytes=400).render_locals({"v": ["w" * 100] * 20})
        assert out["v"][-1] == BUDGET_MARK and len(dumps(out)) <= 400

    def test_shared_budget_across_frames(self) -> None:
        """Frames rendered under one budget share its bytes; later frames are marked."""
        renderer = LocalsRenderer(max_bytes=600)
        budget = renderer.new_budget()
        frames = [
            renderer.render_locals({"s": "q" * 150, "t": "r" * 150}, budget) for _ in range(4)
        ]
        total = sum(len(dumps(f)) for f in frames)
        assert total <= 600 + 60 * 4
        assert frames[-1] == {BUDGET_KEY: "bytes, 2 locals left out"}

    def test_time_budget(self) -> None:
        """Time stops runaway containers, and never cuts a few plain values, however late."""
        renderer = LocalsRenderer(max_ms=0)
        budget = renderer.new_budget()
        time.sleep(0.002)  # a preempted or slow start must not count against the values
        assert renderer.render_locals({"a": 1, "b": 2}, budget) == {"a": 1, "b": 2}
        big = {"v": [list(range(20)) for _ in range(20)]}
        out = renderer.render_locals(big)
        assert BUDGET_MARK in dumps(out).decode()

    def test_budget_object(self) -> None:
        """A Budget holds the bytes left (after the marker reserve) and no verdict yet."""
        budget = Budget(1000, 1.0)
        assert budget.exceeded is None and budget.left < 1000

    def test_limits_are_validated(self) -> None:
        """Nonsense limits are refused when the renderer is built."""
        for bad in ({"max_str": 0}, {"max_items": -1}, {"max_bytes": 10}, {"max_ms": -1},
                    {"repr_mode": "some"}):  # fmt: skip
            with pytest.raises(ValueError):
                LocalsRenderer(**bad)


class TestFrames:
    """Real frame locals, as the capture passes them."""

    def test_frame_locals(self) -> None:
        """A frame's f_locals (a FrameLocalsProxy on 3.13) with cell variables renders."""
        captured = "cell"
        token = "abc"

        def inner() -> Any:
            return captured

        frame = sys._getframe()
        assert token in frame.f_locals.values()
        out = LocalsRenderer().render_locals(frame.f_locals)
        assert out["captured"] == "cell" and out["token"] == REDACTED
        assert out["inner"].startswith("<function TestFrames.test_frame_locals.<locals>.inner")
        assert inner() == "cell"

    def test_render_value_and_describe(self) -> None:
        """render_value gives a JSON value; describe a bounded one-line string."""
        renderer = LocalsRenderer()
        assert renderer.render_value({"a": [1]}) == {"a": [1]}
        assert renderer.describe([1, 2]) == "<list len=2>"
        assert renderer.describe("x" * 1000).endswith("...[+800 chars]")
        assert renderer.describe(RaisingRepr()).startswith("<test_values.RaisingRepr object")
        assert CALLS == []


# -- properties ------------------------------------------------------------------------

_SUBSTRING_ENTRIES = [e for e in DEFAULT_DENY if len(e) > 3]
_WORD_ENTRIES = [e for e in DEFAULT_DENY if len(e) <= 3]
_name_chars = st.text("abcdefghijklmnop0123456789_", max_size=6)


@st.composite
def deny_names(draw: st.DrawFn) -> str:
    """A deny-listed name in any case, with `_`/`-` inside and a prefix and suffix."""
    if draw(st.booleans()):
        entry = draw(st.sampled_from(_SUBSTRING_ENTRIES))
        chars = [c.upper() if draw(st.booleans()) else c for c in entry]
        body = "".join(c + draw(st.sampled_from(["", "", "_", "-"])) for c in chars)
        return draw(_name_chars) + body + draw(_name_chars)
    entry = draw(st.sampled_from(_WORD_ENTRIES))
    word = draw(st.sampled_from([entry, entry.upper(), entry.title()]))
    sep = draw(st.sampled_from(["_", "-", "."]))
    prefix = draw(st.sampled_from(["", "user" + sep, "x" + sep]))
    suffix = draw(st.sampled_from(["", sep + "2", sep + "value"]))
    return prefix + word + suffix


_DENY = DenyList()
ordinary_keys = st.text("abcdefghijklmnop", min_size=1, max_size=4).filter(lambda k: not _DENY(k))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), filler_st, st.binary(max_size=40),
    st.integers(min_value=2**62, max_value=2**70),
)  # fmt: skip


@st.composite
def values_with_secrets(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """Frame locals holding secrets under deny-listed names and in secret-shaped strings."""
    planted: list[str] = []

    def secret_value() -> object:
        secret = draw(secrets_st)
        planted.append(secret)
        kind = draw(st.integers(0, 5))
        if kind == 0:
            return secret
        if kind == 1:
            return [secret, 1]
        if kind == 2:
            return {"inner": secret}
        if kind == 3:
            return secret.encode()
        if kind == 4:
            return ValueError(secret)
        return ("x", secret)

    def shaped_value() -> str:
        secret = draw(secrets_st)
        planted.append(secret)
        return shaped(secret, draw(st.integers(0, 9)), draw(filler_st), draw(filler_st) * 8)

    def tree(depth: int) -> object:
        choice = draw(st.integers(0, 6 if depth < 5 else 2))
        if choice <= 1:
            return draw(scalars)
        if choice == 2:
            return shaped_value()
        if choice in (3, 4):
            mapping: dict[object, object] = {}
            for _ in range(draw(st.integers(0, 4))):
                mapping[draw(ordinary_keys)] = tree(depth + 1)
            if draw(st.booleans()):
                mapping[draw(deny_names())] = secret_value()
            if draw(st.booleans()):
                mapping[shaped_value()] = 1
            return mapping
        if choice == 5:
            return [tree(depth + 1) for _ in range(draw(st.integers(0, 4)))]
        fields = [(draw(deny_names()).replace("-", "_").replace(".", "_"), str)]
        if not fields[0][0].isidentifier():
            fields = [("pin", str)]
        cls = dataclasses.make_dataclass("Planted", fields)
        return cls(secret_value())

    f_locals: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 6))):
        f_locals[draw(ordinary_keys)] = tree(0)
    f_locals[draw(deny_names())] = secret_value()
    return f_locals, planted


class TestProperties:
    """Hypothesis: for any generated frame, no secret leaks and the output is valid JSON."""

    @given(case=values_with_secrets(), max_str=st.sampled_from([16, 60, 200]))
    @settings(
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    def test_secrets_never_leak(self, case: tuple[dict[str, Any], list[str]], max_str: int) -> None:
        """Planted secrets never appear in the output bytes, under any string cap."""
        f_locals, planted = case
        out = LocalsRenderer(max_str=max_str, max_depth=6).render_locals(f_locals)
        text = dumps(out).decode()
        assert len(text.encode()) <= MAX_BYTES
        for secret in planted:
            assert not leaked(secret, text), (secret, text)

    @given(value=st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
           | st.dictionaries(st.one_of(filler_st, st.integers(), st.none()), inner, max_size=5)
           | st.tuples(inner, inner) | st.frozensets(st.integers(), max_size=5)),
           max_bytes=st.integers(192, 2000))  # fmt: skip
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_always_valid_json_within_cap(self, value: object, max_bytes: int) -> None:
        """Rendering never raises and always yields JSON no longer than max_bytes."""
        renderer = LocalsRenderer(max_bytes=max_bytes)
        out = renderer.render_locals({"v": value, "w": [value, value]})
        assert len(dumps(out)) <= max_bytes
        assert isinstance(renderer.describe(value), str)


def test_secret_alphabet_is_distinct() -> None:
    """The property tests rely on secrets sharing no letter with filler or markers."""
    markers = "".join([REDACTED, BUDGET_MARK, "[more]", "<int of bits>", "test_values.Planted"])
    assert not set(SECRET_ALPHABET) & set(markers)


def test_types_module_is_untouched() -> None:
    """Rendering does not register anything globally (renderers are independent)."""
    a = LocalsRenderer(deny=["only"])
    LocalsRenderer()
    assert a.is_denied("only") and not a.is_denied("password")
    assert isinstance(types.ModuleType, type)


class TestRequestObjects:
    """Servers' request objects: method and path from plain attributes, no query string."""

    def test_aiohttp_request(self) -> None:
        test_utils = pytest.importorskip("aiohttp.test_utils")
        request = test_utils.make_mocked_request("POST", "/orders/42?token=abc")
        assert render(request) == "<aiohttp Request POST /orders/42>"

    def test_starlette_request(self) -> None:
        requests = pytest.importorskip("starlette.requests")
        scope = {"type": "http", "method": "GET", "path": "/users/7", "query_string": b"k=v"}
        assert render(requests.Request(scope)) == "<starlette Request GET /users/7>"

    def test_no_property_is_called(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The description reads the instance dict: aiohttp's own properties are not run."""
        web_request = pytest.importorskip("aiohttp.web_request")
        test_utils = pytest.importorskip("aiohttp.test_utils")
        request = test_utils.make_mocked_request("GET", "/x")

        def boom(self: object) -> str:
            raise AssertionError("called")

        monkeypatch.setattr(web_request.BaseRequest, "method", property(boom))
        monkeypatch.setattr(web_request.BaseRequest, "path", property(boom))
        assert render(request) == "<aiohttp Request GET /x>"
