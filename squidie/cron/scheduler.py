"""A ready cron scheduler: due windows per workflow, delivered once, explicit catch-up.

Each tick, for every cron workflow it was given, the scheduler reads the
schedule's durable cursor (``squidie_schedules``), computes the windows that
opened since (in the workflow's timezone, see :mod:`squidie.cron.windows`),
applies the catch-up policy to the ones it missed, delivers the rest oldest
first and advances the cursor after each delivery by compare-and-set.

Exactly one run per window, with several schedulers and across crashes:
delivery comes *before* the cursor moves (a crash re-delivers, never loses),
and every delivery carries the deterministic ``signal_id``
``"{workflow}:{trigger}:{window_start_utc}"`` from which the run id is
derived, so a re-delivery lands on the same run. See
docs/decisions/0004-cron-scheduler.md.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import FrameType
from typing import Any, Protocol

from squidie.cron.cursor import ScheduleCursors
from squidie.cron.executor import Executor
from squidie.cron.payload import build_payload
from squidie.cron.windows import CronSchedule, Window, check_instant, iso_z
from squidie.errors import InvalidOption, InvalidPayload, SquidieError
from squidie.runtime.clock import Clock, aware
from squidie.runtime.loading import resolve_workflow, workflow_ref
from squidie.workflow import validate_payload
from squidie.workflow.identifiers import text_problem
from squidie.workflow.quoting import brief

log = logging.getLogger("squidie.cron.scheduler")
_RACE_RETRIES = 20
_MAX_GRACE = 366 * 86400.0  # a year: beyond it, "now - grace" leaves the schedulable range


class CatchUp(StrEnum):
    """What to do with windows that opened while no scheduler was running."""

    SKIP = "skip"  # drop them
    LATEST = "latest"  # deliver only the most recent one
    ALL = "all"  # deliver them all, oldest first, at most ``max_catch_up``


class _Host(Protocol):
    """What the scheduler needs of a ``Squidie`` instance."""

    store: Any
    clock: Clock

    def perform(
        self, payload: Any, *, queue: str | None = None, now: datetime | None = None
    ) -> Any: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One window handed to ``perform`` (``delivered``) or to an executor (``enqueued``)."""

    workflow: str
    trigger: str
    signal_id: str
    window: Window
    status: str
    late: bool
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (what ``squidie scheduler`` prints)."""
        return {
            "workflow": self.workflow,
            "trigger": self.trigger,
            "signal_id": self.signal_id,
            "intended_window": self.window.to_dict(),
            "status": self.status,
            "late": self.late,
            "run_id": self.run_id,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class TickReport:
    """What one tick did: the deliveries made, and the schedules that failed
    (schedule id -> the exception; the others were not held back by them)."""

    deliveries: list[Delivery] = field(default_factory=list)
    failures: dict[str, Exception] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Entry:
    path: str
    trigger: str
    schedule: CronSchedule
    idempotency: str | None

    @property
    def schedule_id(self) -> str:
        return f"{self.path}:{self.trigger}"


class Scheduler:
    """Delivers the windows of cron workflows to ``sq.perform`` (or a host ``Executor``).

    ``catch_up`` decides what happens to windows that opened more than
    ``grace`` seconds ago without being delivered (after downtime): ``skip``
    drops them, ``latest`` delivers the most recent one (unless a window on
    time supersedes it), ``all`` delivers the ``max_catch_up`` most recent.
    Windows on time are always delivered. A schedule seen for the first time
    starts at that moment: history is not backfilled.
    """

    def __init__(
        self,
        sq: _Host,
        workflows: Iterable[Any],
        *,
        catch_up: CatchUp | str = CatchUp.LATEST,
        max_catch_up: int = 10,
        grace: timedelta | float = 60.0,
        executor: Executor | None = None,
        executor_config: Any = None,
        queue: str | None = None,
        owner_id: str | None = None,
    ) -> None:
        problems: list[str] = []
        try:
            self.catch_up = CatchUp(catch_up)
        except ValueError:
            problems.append(
                f"catch_up must be one of {[c.value for c in CatchUp]}, got {brief(catch_up)}"
            )
        if (
            isinstance(max_catch_up, bool)
            or not isinstance(max_catch_up, int)
            or not 1 <= max_catch_up <= 100_000
        ):
            problems.append(f"max_catch_up must be a positive int, got {brief(max_catch_up)}")
        seconds = grace.total_seconds() if isinstance(grace, timedelta) else grace
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= _MAX_GRACE
        ):
            problems.append(f"grace must be a non-negative duration, got {brief(grace)}")
        for what, value in (("queue", queue), ("owner_id", owner_id)):
            problem = value is not None and text_problem(value, what)
            if problem:
                problems.append(problem)
        if isinstance(workflows, str | bytes) or not isinstance(workflows, Iterable):
            problems.append(f"workflows must be a list of cron workflows, got {brief(workflows)}")
            workflows = ()
        self.entries = [e for e in (_entry(w, executor, problems) for w in workflows) if e]
        if not self.entries and not problems:
            problems.append("give the scheduler at least one cron workflow")
        if problems:
            raise InvalidOption("invalid scheduler options: " + "; ".join(problems))
        self.sq = sq
        self.max_catch_up = max_catch_up
        self.grace = timedelta(seconds=float(seconds))
        self.executor = executor
        self.executor_config = executor_config
        self.queue = queue
        self.owner_id = owner_id or f"scheduler-{socket.gethostname()}-{os.getpid()}"
        self.cursors = ScheduleCursors(sq.store)
        self._stop = threading.Event()

    # -- one pass -----------------------------------------------------------------

    def tick(self, *, now: datetime | None = None) -> list[Delivery]:
        """Deliver every window due at ``now`` (default: the clock); returns the deliveries.

        A schedule that fails (database down, a delivery rejected, an executor
        raising) does not stop the others: their windows are delivered and
        their cursors advanced; the first error is raised after all were tried
        (:meth:`tick_report` returns the failures instead).
        """
        report = self.tick_report(now=now)
        if report.failures:
            raise next(iter(report.failures.values()))
        return report.deliveries

    def tick_report(self, *, now: datetime | None = None) -> TickReport:
        """Like :meth:`tick`, but failures of single schedules are returned, not raised.

        Raises only for a bad ``now`` (naive, or outside the years a schedule
        can be evaluated in), before any cursor is read or written.
        """
        moment = self._moment(now)
        report = TickReport()
        for entry in self.entries:
            try:
                report.deliveries.extend(self._tick_one(entry, moment))
            except Exception as exc:  # one workflow never stops the others' windows
                log.error(
                    "scheduler %s: %s failed: %s",
                    self.owner_id,
                    entry.schedule_id,
                    brief(str(exc), 300),
                    exc_info=not isinstance(exc, SquidieError),
                )
                report.failures[entry.schedule_id] = exc
        return report

    def _moment(self, now: datetime | None) -> datetime:
        what = "now" if now is not None else "clock.now()"
        value = now if now is not None else self.sq.clock.now()
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise InvalidOption(f"{what} must be an aware datetime, got {brief(value)}")
        try:
            moment = aware(value, what)
        except OverflowError as exc:  # year 1 with an offset cannot be expressed in UTC
            raise InvalidOption(f"now is out of range: {brief(now)}") from exc
        return check_instant(moment)

    def _tick_one(self, entry: _Entry, now: datetime) -> list[Delivery]:
        out: list[Delivery] = []
        for _ in range(_RACE_RETRIES):
            cursor = self.cursors.ensure(
                entry.schedule_id, entry.path, entry.trigger, now, self.owner_id
            )
            deliver, last_due = self._plan(entry, cursor, now)
            position, lost = cursor, False
            for start, late in deliver:
                out.append(self._deliver(entry, entry.schedule.window(start), late, now))
                if not self._advance(entry, position, start, now):
                    lost = True
                    break
                position = start
            if lost:
                continue  # another scheduler moved on: re-read and deliver what is left
            if last_due is not None and position < last_due:
                if not self._advance(entry, position, last_due, now):
                    continue
                log.info(
                    "scheduler: %s skipped missed windows through %s (catch_up=%s)",
                    entry.schedule_id,
                    iso_z(last_due),
                    self.catch_up.value,
                )
            return out
        raise SquidieError(
            f"scheduler {self.owner_id} kept losing the cursor race on {entry.schedule_id}"
        )

    def _plan(
        self, entry: _Entry, cursor: datetime, now: datetime
    ) -> tuple[list[tuple[datetime, bool]], datetime | None]:
        """Windows to deliver as (start, late) and the start of the newest due window."""
        sched = entry.schedule
        edge = now - self.grace
        on_time = sched.between(max(cursor, edge), now)
        missed: list[datetime] = []
        if cursor < edge:
            keep = {CatchUp.SKIP: 1, CatchUp.LATEST: 1, CatchUp.ALL: self.max_catch_up}
            missed = sched.latest(cursor, edge, keep[self.catch_up])
        last_due = on_time[-1] if on_time else (missed[-1] if missed else None)
        if self.catch_up is CatchUp.SKIP or (self.catch_up is CatchUp.LATEST and on_time):
            missed = []
        return [(s, True) for s in missed] + [(s, False) for s in on_time], last_due

    def _advance(self, entry: _Entry, expected: datetime, to: datetime, now: datetime) -> bool:
        return self.cursors.advance(entry.schedule_id, expected, to, now, self.owner_id)

    def _deliver(self, entry: _Entry, window: Window, late: bool, now: datetime) -> Delivery:
        signal_id = f"{entry.path}:{entry.trigger}:{iso_z(window.start_at)}"
        if self.executor is not None:
            meta = self.executor.enqueue_cron(
                self.executor_config,
                entry.path,
                entry.trigger,
                signal_id=signal_id,
                intended_window=window.to_dict(),
            )
            return Delivery(
                workflow=entry.path,
                trigger=entry.trigger,
                signal_id=signal_id,
                window=window,
                late=late,
                status="enqueued",
                metadata=dict(meta or {}),
            )
        payload = build_payload(
            entry.path,
            entry.trigger,
            signal_id=signal_id,
            intended_window=window.to_dict(),
            source="scheduler",
        )
        snap = self.sq.perform(payload, queue=self.queue, now=now)
        return Delivery(
            workflow=entry.path,
            trigger=entry.trigger,
            signal_id=signal_id,
            window=window,
            late=late,
            status="delivered",
            run_id=getattr(snap, "run_id", None),
        )

    # -- the loop -------------------------------------------------------------------

    def next_fire(self, now: datetime) -> datetime:
        """The earliest window start after ``now`` over all schedules."""
        return min(e.schedule.next_after(aware(now)) for e in self.entries)

    def run(self, *, interval: float = 10.0, install_signal_handlers: bool = True) -> None:
        """Tick until ``stop()`` or SIGTERM/SIGINT; sleeps at most ``interval`` seconds.

        Errors are logged and the loop goes on (a database that comes back is
        caught up under the catch-up policy).
        """
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not 0 < interval < float("inf")
        ):
            raise InvalidOption(f"interval must be positive, got {brief(interval)}")
        if interval > self.grace.total_seconds():
            raise InvalidOption(
                f"interval ({interval} s) must not exceed grace "
                f"({self.grace.total_seconds()} s): windows on time would "
                "be treated as missed"
            )
        previous: dict[signal.Signals, Any] = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._handle_signal)
        try:
            while not self._stop.is_set():
                self._stop.wait(max(0.05, self._run_once(interval)))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_once(self, interval: float) -> float:
        """One tick of the loop; returns how long to sleep. Never raises: a
        scheduler process must outlive a broken workflow, clock or database."""
        try:
            now = self._moment(None)
            report = self.tick_report(now=now)
            for d in report.deliveries:
                log.info("scheduler: %s %s", d.status, d.signal_id)
            return min(interval, (self.next_fire(now) - now).total_seconds())
        except Exception:
            log.exception("scheduler %s: tick failed", self.owner_id)
            return interval

    def stop(self) -> None:
        """Ask ``run`` to return after the current tick."""
        self._stop.set()

    def _handle_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("scheduler %s: signal %s, stopping", self.owner_id, signum)
        self._stop.set()


def _entry(workflow: Any, executor: Executor | None, problems: list[str]) -> _Entry | None:
    """Check one workflow for scheduling; report problems instead of raising."""
    try:
        path = workflow_ref(workflow)
        compiled = resolve_workflow(path)
    except InvalidOption as exc:
        problems.append(exc.message)
        return None
    trig = compiled.spec.trigger
    if trig.kind != "cron" or trig.cron is None:
        problems.append(f"workflow {brief(path)} is not cron-triggered")
        return None
    if executor is not None and trig.idempotency is None:
        problems.append(
            f"workflow {brief(path)} declares no idempotency: deliveries through an executor "
            "could start it twice; declare cron(..., idempotency='return_existing_run') "
            "or let the scheduler call perform() itself"
        )
    try:
        validate_payload(trig, {})
    except InvalidPayload as exc:
        problems.append(
            f"workflow {brief(path)}: its cron payload fields need defaults "
            f"({'; '.join(exc.problems)})"
        )
    try:
        schedule = CronSchedule(trig.cron, trig.timezone or "Etc/UTC")
    except InvalidOption as exc:
        problems.append(f"workflow {brief(path)}: {exc.message}")
        return None
    return _Entry(path, trig.name, schedule, trig.idempotency)
