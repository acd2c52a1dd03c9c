"""Renewing a claim's lease in the background while its step runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("squidie.runtime")


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds until stopped or a beat fails.

    ``beat`` returns False when the lease is gone; then :attr:`lost` is set and
    the attempt's result will not be recorded (it fails closed).
    """

    def __init__(self, beat: Callable[[], bool], interval: float) -> None:
        self._beat = beat
        self._interval = interval
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
        while not self._stop.wait(self._interval):
            try:
                if not self._beat():
                    self.lost.set()
                    return
            except Exception:  # a failed beat is retried on the next tick
                log.warning("heartbeat failed; retrying on the next tick", exc_info=True)
