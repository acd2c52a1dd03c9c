"""The shared lease keeper: beats come on time for short and long steps alike."""

from __future__ import annotations

import threading
import time

from squidie.runtime.heartbeat import LeaseKeeper


def test_a_short_interval_added_while_the_thread_sleeps_long_still_beats() -> None:
    keeper = LeaseKeeper()
    slow, fast = threading.Event(), threading.Event()
    with keeper.keep(lambda: slow.set() or True, 30.0):
        time.sleep(0.05)  # the keeper's thread now sleeps until the 30 s beat
        with keeper.keep(lambda: fast.set() or True, 0.05):
            assert fast.wait(2.0)  # woken for the earlier beat, not after 30 s
    assert not slow.is_set()


def test_beats_repeat_until_the_step_ends_and_a_lost_lease_is_reported() -> None:
    keeper = LeaseKeeper()
    beats: list[float] = []
    with keeper.keep(lambda: beats.append(time.monotonic()) or True, 0.02):
        time.sleep(0.2)
    ended = len(beats)
    time.sleep(0.1)
    assert ended >= 3 and len(beats) == ended  # no beat after the step ended
    with keeper.keep(lambda: False, 0.02) as kept:
        assert kept.lost.wait(2.0)


def test_steps_one_after_another_do_not_wake_the_thread() -> None:
    # A step that ends before its first beat leaves no lease to keep; the next step
    # of the same kind then needs no early wake-up (a notify costs a thread switch).
    keeper = LeaseKeeper()
    woken: list[int] = []
    notify = keeper._cond.notify

    def counted(n: int = 1) -> None:
        woken.append(n)
        notify(n)

    keeper._cond.notify = counted  # type: ignore[method-assign]
    with keeper.keep(lambda: True, 5.0):
        pass  # the step ends before the keeper's new thread goes to sleep
    time.sleep(0.05)  # it sleeps now, keeping no lease
    for _ in range(20):
        with keeper.keep(lambda: True, 5.0):
            time.sleep(0.005)  # the thread sleeps, on an empty or a later due time
    assert woken == []


def test_a_first_beat_can_come_sooner_than_the_interval() -> None:
    from squidie.runtime.heartbeat import Heartbeat

    keeper = LeaseKeeper()
    kept_beat, thread_beat = threading.Event(), threading.Event()
    started = time.monotonic()
    with keeper.keep(lambda: kept_beat.set() or True, 30.0, first=0.05):
        assert kept_beat.wait(2.0)
    with Heartbeat(lambda: thread_beat.set() or True, 30.0, first=0.05):
        assert thread_beat.wait(2.0)
    assert time.monotonic() - started < 2.0
