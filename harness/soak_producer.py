"""The soak's producer: starts the mixed runs at a steady rate and plays the
operator (approves, cancels, replays) for the kinds that need one."""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import squidie
from harness.soak_workflows import (
    KINDS,
    path_of,
)
from squidie.errors import InvalidTransition


@dataclass
class Tracked:
    kind: str
    workflow: str
    expected: str | None
    note: str = ""


@dataclass
class Producer:
    """Starts runs at a steady rate and carries out the delayed controls it planned."""

    url: str
    rate: float
    seed: int = 7
    runs: dict[str, Tracked] = field(default_factory=dict)
    started: Counter[str] = field(default_factory=Counter)
    controls: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lag_max: float = 0.0

    def __post_init__(self) -> None:
        self.sq = squidie.connect(self.url)
        self.rng = random.Random(self.seed)
        self.actions: list[tuple[float, int, str, str, int]] = []
        self.seq = 0
        self.producing = threading.Event()
        self.done = threading.Event()
        self.replay_sources: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._loop, name="soak-producer", daemon=True)
        self.kinds = list(KINDS)
        self.weights = [KINDS[k][1] for k in self.kinds]

    @property
    def total_started(self) -> int:
        return sum(self.started.values())

    def start(self) -> None:
        self.producing.set()
        self.thread.start()

    def stop_producing(self) -> None:
        self.producing.clear()

    def pending_controls(self) -> int:
        return len(self.actions)

    def _later(self, delay: float, action: str, run_id: str, tries: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.actions, (time.monotonic() + delay, self.seq, action, run_id, tries))

    def _loop(self) -> None:
        began = time.monotonic()
        n = 0
        while self.producing.is_set() or self.actions:
            now = time.monotonic()
            while self.actions and self.actions[0][0] <= now:
                _, _, action, run_id, tries = heapq.heappop(self.actions)
                self._guard(self._control, action, run_id, tries)
            if self.producing.is_set():
                due = began + n / self.rate
                if due <= now:
                    self.lag_max = max(self.lag_max, now - due)
                    self._guard(self._start_one, n)
                    n += 1
                    continue
                wake = due
            else:
                wake = now + 0.1
            if self.actions:
                wake = min(wake, self.actions[0][0])
            time.sleep(max(0.0, min(0.1, wake - time.monotonic())))
        self.done.set()

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a soak reports, it does not stop
            self.errors.append(f"{fn.__name__}{args}: {exc!r}")

    def _start_one(self, n: int) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "replay":
            if self._replay():
                return
            kind = "plain"
        workflow, _, expected = KINDS[kind]
        run_id = self.sq.start(workflow, payload={"n": n}).run_id
        self.runs[run_id] = Tracked(kind, path_of(workflow), expected)
        self.started[kind] += 1
        if kind == "approval":
            self._later(1.5 + self.rng.random(), "approve", run_id)
        elif kind == "cancel":
            self._later(0.5 + 2 * self.rng.random(), "cancel", run_id)
        elif kind == "cancel_race":
            self._later(0.2 * self.rng.random(), "cancel_race", run_id)
        elif kind in ("plain", "join"):
            self.replay_sources.append((time.monotonic(), run_id))

    def _replay(self) -> bool:
        """Replay a plain or join run that completed; False when none is ready."""
        for _ in range(3):
            ready = [s for s in self.replay_sources if time.monotonic() - s[0] > 3]
            if not ready:
                return False
            entry = self.rng.choice(ready)
            self.replay_sources.remove(entry)
            source = entry[1]
            if self.sq.inspect_run(source).status != "completed":
                continue
            snap = self.sq.replay(source, metadata={"by": "soak"})
            self.runs[snap.run_id] = Tracked(
                "replay", self.runs[source].workflow, "completed", note=f"replay of {source}"
            )
            self.started["replay"] += 1
            return True
        return False

    def _control(self, action: str, run_id: str, tries: int) -> None:
        attrs = {"actor": "soak-producer"}
        if action == "approve":
            try:
                self.sq.approve(run_id, attrs)
                self.controls["approved"] += 1
            except InvalidTransition:  # not at the gate yet
                self.controls["approve_early"] += 1
                self._later(0.5, action, run_id, tries + 1)
        elif action == "cancel":
            try:
                self.sq.cancel(run_id, attrs)
                self.controls["cancelled"] += 1
            except InvalidTransition as exc:
                self.runs[run_id].note = f"cancel refused: {exc}"
                self.runs[run_id].expected = "cancelled (refused!)"
        elif action == "cancel_race":
            try:
                self.sq.cancel(run_id, attrs)
                self.runs[run_id].expected = "cancelled"
                self.controls["race_cancelled"] += 1
            except InvalidTransition:
                self.runs[run_id].expected = "completed"  # it ended first
                self.controls["race_too_late"] += 1
