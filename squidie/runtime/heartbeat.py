"""Renewing a claim's lease in the background while its step runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("squidie.runtime")


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds until stopped or a beat fails.

    ``beat`` returns False when the lease is gone; then :attr:`lost` is set and
    the attempt's result will not be recorded (it fails closed).
    """

    def __init__(
        self, beat: Callable[[], bool], interval: float, *, first: float | None = None
    ) -> None:
        self._beat = beat
        self._interval = interval
        self._first = interval if first is None else min(first, interval)
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="squidie-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        wait = self._first
        while not self._stop.wait(wait):
            wait = self._interval
            try:
                if not self._beat():
                    self.lost.set()
                    return
            except Exception:  # a failed beat is retried on the next tick
                log.warning("heartbeat failed; retrying on the next tick", exc_info=True)


class Kept:
    """A lease kept by the shared :class:`LeaseKeeper` (see :meth:`LeaseKeeper.keep`)."""

    def __init__(
        self,
        keeper: LeaseKeeper,
        beat: Callable[[], bool],
        interval: float,
        first: float | None = None,
    ) -> None:
        self._keeper = keeper
        self.beat = beat
        self.interval = interval
        self.first = interval if first is None else min(first, interval)
        self.lost = threading.Event()

    def __enter__(self) -> Kept:
        self._keeper._add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._keeper._remove(self)


class LeaseKeeper:
    """One background thread renewing the leases of many short steps.

    Starting a :class:`Heartbeat` thread for every step costs more than a short
    step itself; most steps end before their first beat is due. The keeper's
    thread sleeps until the earliest beat is due, so a step that ends first costs
    two lock operations (the thread is woken only for a beat due before it would
    wake anyway). Beats run one after another on that thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[Kept, float] = {}
        self._thread: threading.Thread | None = None
        self._wakes_at = 0.0  # when the sleeping thread wakes by itself (0: awake)
        # How long the thread sleeps with no lease to keep: the interval last asked
        # for, so that steps of one kind, one after another, never wake it early.
        self._idle_wait = 60.0

    def keep(
        self, beat: Callable[[], bool], interval: float, *, first: float | None = None
    ) -> Kept:
        """A context manager renewing with ``beat()`` every ``interval`` seconds (the
        first time after ``first`` seconds, when that is sooner); its ``lost`` is
        set once a beat returns False (the lease is gone)."""
        return Kept(self, beat, interval, first)

    def _add(self, kept: Kept) -> None:
        with self._cond:
            due = self._due[kept] = time.monotonic() + kept.first
            self._idle_wait = kept.interval
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="squidie-leases", daemon=True
                )
                self._thread.start()
            if due < self._wakes_at:  # only a beat due before that needs the thread now
                self._cond.notify()

    def _remove(self, kept: Kept) -> None:
        with self._cond:
            self._due.pop(kept, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [k for k, at in self._due.items() if at <= now]
                if not due:
                    soonest = min(self._due.values(), default=now + self._idle_wait)
                    wait = max(soonest - now, 0.001)
                    self._wakes_at = now + wait
                    self._cond.wait(timeout=wait)
                    self._wakes_at = 0.0
                    continue
                for kept in due:
                    self._due[kept] = now + kept.interval
            for kept in due:
                self._beat(kept)

    def _beat(self, kept: Kept) -> None:
        try:
            if not kept.beat():
                kept.lost.set()
                self._remove(kept)
        except Exception:  # a failed beat is retried on the next tick
            log.warning("lease renewal failed; retrying on the next tick", exc_info=True)


KEEPER = LeaseKeeper()
