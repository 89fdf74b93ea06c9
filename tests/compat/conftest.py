"""Every test here runs once per implementation of the capture core."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _each_implementation(implementation: str) -> str:
    return implementation
