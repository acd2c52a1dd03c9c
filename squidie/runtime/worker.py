"""A ready, supervised worker loop around ``execute_next``."""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

from squidie.errors import InvalidOption, LeaseLost, SchemaTooNew

log = logging.getLogger("squidie.worker")


class Worker:
    """Runs ``concurrency`` threads that each call ``execute_once`` in a loop.

    Idle threads back off from ``idle_min`` to ``idle_max`` seconds. A thread
    whose call fails (database down, misconfiguration) backs off exponentially
    with jitter from ``error_min`` up to ``error_max`` seconds, logging one line
    per back-off step (the traceback only for the first failure in a row). A
    step that is running when :meth:`stop` is called (or SIGTERM/SIGINT
    arrives) is finished and recorded before the thread exits, so no claim is
    abandoned mid-write. When a newer release has upgraded the schema
    (:class:`~squidie.errors.SchemaTooNew`), every thread stops and :meth:`run`
    raises that error: this release can no longer claim or write anything. An
    older schema (:class:`~squidie.errors.SchemaTooOld`: not migrated yet) is
    reported and retried with back-off like any failed call, so workers rolled out
    before the migration start working once it ran.
    """

    def __init__(
        self,
        execute_once: Callable[[str], Any],
        owner_id: str,
        *,
        concurrency: int = 1,
        idle_min: float = 0.05,
        idle_max: float = 1.0,
        max_steps: int | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        error_min: float = 0.1,
        error_max: float = 10.0,
        on_exit: Callable[[str], None] | None = None,
        wait_for_work: Callable[[float, threading.Event], bool] | None = None,
        wake: Callable[[], None] | None = None,
        thread_scope: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not 0 < error_min <= error_max:
            raise ValueError("need 0 < error_min <= error_max")
        self._execute_once = execute_once
        self._on_exit = on_exit  # called with each thread's owner id as it exits
        # Idle threads wait here (woken when work becomes due) instead of sleeping.
        self._wait_for_work = wait_for_work
        self._wake = wake
        # Entered by each thread around its loop (the store's pinned connection).
        self._thread_scope = thread_scope or contextlib.nullcontext
        self.owner_id = owner_id
        self.concurrency = concurrency
        self.idle_min = idle_min
        self.idle_max = idle_max
        self.max_steps = max_steps
        self._on_error = on_error
        self.error_min = error_min
        self.error_max = error_max
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.steps_done = 0
        self.errors = 0
        #: The error that stopped the worker for good (a newer schema), if any.
        self.fatal: SchemaTooNew | None = None
        self._threads: list[threading.Thread] = []

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask every thread to finish its current step and exit."""
        self._stop.set()
        if self._wake is not None:
            self._wake()

    def owner_ids(self) -> list[str]:
        """The owner id of each thread (``owner_id-1``... when there are several)."""
        if self.concurrency == 1:
            return [self.owner_id]
        return [f"{self.owner_id}-{i + 1}" for i in range(self.concurrency)]

    def start(self) -> Worker:
        """Start the threads in the background; returns self."""
        for owner in self.owner_ids():
            thread = threading.Thread(
                target=self._loop, args=(owner,), name=f"squidie-{owner}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the threads to exit."""
        for thread in self._threads:
            thread.join(timeout)

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until stopped; SIGTERM and SIGINT stop the loop cleanly."""
        previous: dict[int, Any] = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._handle_signal)
        try:
            self.start()
            while any(t.is_alive() for t in self._threads):
                self.join(timeout=0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self.fatal is not None:
            raise self.fatal

    def _handle_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s: signal %s, finishing current steps", self.owner_id, signum)
        self.stop()

    def _count(self) -> bool:
        with self._lock:
            self.steps_done += 1
            return self.max_steps is not None and self.steps_done >= self.max_steps

    def _loop(self, owner: str) -> None:
        try:
            with self._thread_scope():
                self._work(owner)
        finally:
            if self._on_exit is not None:
                try:
                    self._on_exit(owner)
                except Exception:  # the database may be down: leases run out anyway
                    log.warning(
                        "worker %s: could not hand back its next step", owner, exc_info=True
                    )

    def _work(self, owner: str) -> None:
        idle = self.idle_min
        failures = 0  # consecutive failed calls of this thread
        while not self._stop.is_set():
            try:
                result = self._execute_once(owner)
            except LeaseLost as exc:
                log.warning("worker %s: %s", owner, exc)
                result = True
            except SchemaTooNew as exc:  # a newer release took over the database
                log.error("worker %s: stopping: %s", owner, exc)
                with self._lock:
                    self.fatal = self.fatal or exc
                self.stop()
                return
            except Exception as exc:  # storage down, misconfiguration: report, back off
                if handed_back(exc):
                    # This worker lacks the run's workflow version (or an action of it):
                    # the attempt went back to a worker that has it. Nothing is wrong
                    # here, so no back-off: go on with the work this worker can do.
                    log.info("worker %s: handed back: %s", owner, exc)
                    continue
                failures += 1
                delay = error_backoff(failures, self.error_min, self.error_max)
                self._report(owner, exc, failures, delay)
                self._stop.wait(delay)
                continue
            if failures:
                log.info("worker %s: working again after %d failed calls", owner, failures)
                failures = 0
            if result is None:
                if self._wait_for_work is not None and self._wait_for_work(idle, self._stop):
                    idle = self.idle_min  # woken: work became due
                    continue
                if self._wait_for_work is None:
                    self._stop.wait(idle)
                idle = min(idle * 2, self.idle_max)
                continue
            idle = self.idle_min
            if self._count():
                self.stop()

    def _report(self, owner: str, exc: BaseException, failures: int, delay: float) -> None:
        with self._lock:
            self.errors += 1
        if self._on_error is not None:
            self._on_error(exc)
        elif failures == 1:
            log.error(
                "worker %s: execute_next failed; retrying in %.2f s", owner, delay, exc_info=exc
            )
        else:
            log.warning(
                "worker %s: execute_next failed %d times in a row (%s: %s); retrying in %.2f s",
                owner,
                failures,
                type(exc).__name__,
                exc,
                delay,
            )


def handed_back(exc: BaseException) -> bool:
    """Whether ``exc`` says a claimed attempt was handed back because this worker does
    not define the run's workflow version or one of its actions."""
    return isinstance(exc, InvalidOption) and exc.details.get("reason") == "definition_unavailable"


def error_backoff(
    failures: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: ``base`` doubled
    per failure, capped at ``cap``, times a jitter in [0.5, 1) so threads and
    processes that failed together do not retry in lockstep."""
    step = min(cap, base * 2.0 ** min(failures - 1, 60))
    return step * (0.5 + rand() / 2)
