"""A ready, supervised worker loop around ``execute_next``."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from squidie.errors import LeaseLost

log = logging.getLogger("squidie.worker")


class Worker:
    """Runs ``concurrency`` threads that each call ``execute_once`` in a loop.

    Idle threads back off from ``idle_min`` to ``idle_max`` seconds; a step that
    is running when :meth:`stop` is called (or SIGTERM/SIGINT arrives) is
    finished and recorded before the thread exits, so no claim is abandoned
    mid-write.
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
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._execute_once = execute_once
        self.owner_id = owner_id
        self.concurrency = concurrency
        self.idle_min = idle_min
        self.idle_max = idle_max
        self.max_steps = max_steps
        self._on_error = on_error
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.steps_done = 0
        self.errors = 0
        self._threads: list[threading.Thread] = []

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask every thread to finish its current step and exit."""
        self._stop.set()

    def start(self) -> Worker:
        """Start the threads in the background; returns self."""
        for i in range(self.concurrency):
            owner = self.owner_id if self.concurrency == 1 else f"{self.owner_id}-{i + 1}"
            thread = threading.Thread(target=self._loop, args=(owner,), name=f"squidie-{owner}",
                                      daemon=True)
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

    def _handle_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s: signal %s, finishing current steps", self.owner_id, signum)
        self.stop()

    def _count(self) -> bool:
        with self._lock:
            self.steps_done += 1
            return self.max_steps is not None and self.steps_done >= self.max_steps

    def _loop(self, owner: str) -> None:
        idle = self.idle_min
        while not self._stop.is_set():
            try:
                result = self._execute_once(owner)
            except LeaseLost as exc:
                log.warning("worker %s: %s", owner, exc)
                result = True
            except Exception as exc:  # storage down, misconfiguration: report, back off
                self._report(exc)
                self._stop.wait(idle)
                continue
            if result is None:
                self._stop.wait(idle)
                idle = min(idle * 2, self.idle_max)
                continue
            idle = self.idle_min
            if self._count():
                self.stop()

    def _report(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
        if self._on_error is not None:
            self._on_error(exc)
        else:
            log.exception("worker %s: execute_next failed", self.owner_id, exc_info=exc)
