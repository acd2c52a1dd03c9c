"""Per-test state for workflows defined at module level.

A workflow is a class at module level and its steps are plain functions, so the
only way a step reaches something of the test's (a list it records into, the
Squidie it starts children on, a switch the test flips) is through its module.
A :class:`Slot` is that place, and it holds nothing between tests: the test (or
its fixture) fills it with a fresh value, ``tests/conftest.py`` empties every slot
after each test, and a step that runs while its slot is empty fails saying so,
instead of writing into what an earlier test left behind. A worker process
started by a test fills the slots its workflows use for its own lifetime.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")

_EMPTY: Any = object()


class Slot(Generic[T]):
    """One test's value for the steps of a module-level workflow."""

    _every: ClassVar[weakref.WeakSet[Slot[Any]]] = weakref.WeakSet()

    def __init__(self, what: str) -> None:
        self.what = what
        self._value: T = _EMPTY
        Slot._every.add(self)

    def set(self, value: T) -> T:
        """Fill the slot for the rest of this test (or worker process); returns ``value``."""
        self._value = value
        return value

    def get(self) -> T:
        """The value the running test put here."""
        if self._value is _EMPTY:
            raise LookupError(f"{self.what} is empty: the test must set() it before it runs")
        return self._value

    def empty(self) -> None:
        self._value = _EMPTY

    @classmethod
    def empty_all(cls) -> None:
        """Empty every slot (the root conftest does, after each test)."""
        for slot in list(cls._every):
            slot.empty()
