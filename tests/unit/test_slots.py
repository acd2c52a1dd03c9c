"""The test tree's ``Slot``: a step reaches its test's objects only while the test
has filled the slot, and nothing one test put there survives into the next."""

from __future__ import annotations

import pytest

from tests.support.slots import Slot

SLOT: Slot[list[str]] = Slot(f"{__name__}.SLOT")


def test_an_empty_slot_says_which_one_it_is() -> None:
    with pytest.raises(LookupError, match=r"test_slots\.SLOT is empty"):
        SLOT.get()


def test_a_filled_slot_gives_back_what_the_test_put_there() -> None:
    mine = SLOT.set(["recorded"])
    assert SLOT.get() is mine


def test_the_root_conftest_empties_it_after_each_test() -> None:
    # Runs after the test above filled it (same module, file order).
    with pytest.raises(LookupError):
        SLOT.get()
