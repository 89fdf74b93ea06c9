"""Shared by every test: the helpers' directory on the path, and the implementation seam.

Tests of the parts that have two implementations (capture and values: the native core
and its pure-Python reference) use the ``implementation`` fixture, parametrised over the
implementations this installation has, as aio-libs' propcache and multidict do: each such
test runs once per implementation, the native one marked ``native``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers, aggregators

from coroscope import _implementation

IMPLEMENTATIONS = [
    pytest.param(name, marks=pytest.mark.native, id=name)
    if name == _implementation.NATIVE
    else pytest.param(name, id=name)
    for name in _implementation.available()
]


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The implementation installations made in this test run (``COROSCOPE_NO_EXTENSIONS``)."""
    name: str = request.param
    if name == _implementation.PYTHON:
        monkeypatch.setenv("COROSCOPE_NO_EXTENSIONS", "1")
    else:
        monkeypatch.delenv("COROSCOPE_NO_EXTENSIONS", raising=False)
    assert _implementation.selected() == name
    yield name
