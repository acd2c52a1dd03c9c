"""Fuzzing every public entry point with hostile input, on SQLite and PostgreSQL.

Each call must either succeed or raise a typed ``SquidieError`` (never
``RecursionError``, ``UnicodeEncodeError``, ``AssertionError``, ``OverflowError``,
``TypeError``..., and never ``StorageError`` against a healthy database: that
means the input reached the database unchecked). A refused call stores nothing:
every Squidie table has the same row count before and after it. Messages quote
at most a short prefix of the input.

The counts (inputs tried, typed errors, successes, per backend and per entry
point) are printed in pytest's terminal summary and written to
``harness/out/fuzz-counts.json``.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import squidie
from squidie import (
    SquidieError,
    Step,
    StepContext,
    Workflow,
    approval_step,
    cron,
    deadline,
    exponential,
    field,
    log,
    manual,
    pause,
    retry,
    step,
    transition,
    wait,
)
from squidie.cron import Payload, Scheduler
from squidie.journal import schema
from squidie.runtime.signals import Signal
from squidie.testing import FakeClock
from squidie.workflow.quoting import brief

T0 = datetime(2026, 5, 15, 10, 0, 30, tzinfo=UTC)
# Longest message a refusal may carry: problem lists are long, echoes of input are not.
MAX_MESSAGE = 8_000
EXAMPLES = int(os.environ.get("SQUIDIE_FUZZ_EXAMPLES", "30"))  # more to explore
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
COUNTS_FILE = Path(__file__).resolve().parents[2] / "harness" / "out" / "fuzz-counts.json"

# -- workflows under test ----------------------------------------------------------


def _noop(input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {"ok": True}


class FuzzErrand(Workflow):
    """A step, a pause and an approval: every control has something to act on."""

    trigger = manual(
        "go",
        payload={
            "who": field(str, default="Frodo"),
            "n": field(int, default=1),
            "ratio": field(float, default=0.5),
            "flag": field(bool, default=False),
            "tags": field(list, default=[]),
            "meta": field(dict, default={}),
        },
    )
    steps = [
        step("pack", _noop, output="packed"),
        pause("hide"),
        approval_step("council", output="council"),
    ]
    transitions = [
        transition("pack", to="hide"),
        transition("hide", to="council"),
        transition("council", on="ok", to="complete"),
    ]


class FuzzTick(Workflow):
    """A cron workflow for perform(), Payload.cron and the scheduler."""

    trigger = cron("tick", "* * * * *", idempotency="return_existing_run")
    steps = [step("a", _noop)]


ERRAND = f"{__name__}.FuzzErrand"
TICK = f"{__name__}.FuzzTick"
REGISTRY: dict[str, Any] = {"noop": _noop, "off": None}
VALID_SPEC: dict[str, Any] = {
    "name": "fuzz_spec",
    "version": "1",
    "trigger": {
        "name": "go",
        "kind": "manual",
        "payload": {"who": {"type": "str", "default": "Sam"}},
    },
    "steps": [
        {
            "name": "a",
            "action": "noop",
            "output": "a_out",
            "retry": {"max_attempts": 2, "backoff": {"min": 1, "max": 5}},
            "deadline": {"within": 60, "due_soon": 10},
        },
        {"name": "w", "kind": "wait", "duration": 5},
        {"name": "b", "action": "noop", "input": {"x": ["a_out", "ok"]}},
    ],
    "transitions": [
        {"from": "a", "on": "ok", "to": "w"},
        {"from": "w", "on": "ok", "to": "b", "when": {"path": ["who"], "equals": "Sam"}},
        {"from": "w", "on": "ok", "to": "complete"},
    ],
}

# -- hostile values -------------------------------------------------------------------


def _deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _deep_dict(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"k": value}
    return value


BIG = "x" * 10_000_000  # 10 MB
NASTY: list[Any] = [
    None,
    "",
    "\ud800",
    "a\udfffb",
    "emoji \ud83d",
    "nul\x00byte",
    BIG,
    "q" * 201,
    "q" * 5000,
    0,
    -1,
    2**63,
    10**400,
    float("inf"),
    float("-inf"),
    float("nan"),
    -5.0,
    1e300,
    True,
    b"bytes",
    object(),
    [],
    {},
    _deep_list(600),
    _deep_dict(600),
    {1: "x"},
    {"a": {1: "b"}},
    {"a": [{(1, 2): "b"}]},
    {"a": float("nan")},
    datetime(2026, 1, 1),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    datetime(9999, 12, 31, tzinfo=UTC),
    ["x", None],
    ("tuple",),
    "../etc/passwd",
    "a/b",
    "..x",
    "x.",
    ".",
]
nasty = st.one_of(
    st.sampled_from(NASTY), st.text(max_size=20), st.integers(), st.floats(), st.booleans()
)
nasty_dict = st.dictionaries(
    st.one_of(
        st.text(max_size=8), st.sampled_from(["\ud800", "nul\x00", "q" * 300, 1, None, (1, 2)])
    ),
    nasty,
    max_size=3,
)


def maybe(valid: Any) -> st.SearchStrategy[Any]:
    """Mostly ``valid`` (so calls also get through), else something hostile."""
    return st.one_of(st.just(valid), st.just(valid), nasty)


moments = st.one_of(st.none(), st.just(T0), nasty)

# -- the probe: call, classify, count, check nothing partial was stored -----------------


@dataclasses.dataclass
class Tally:
    """What the whole session's fuzzing tried and found (the terminal summary and
    harness/out/fuzz-counts.json): one per session, handed to each test's probe."""

    counts: dict[str, Counter[str]] = dataclasses.field(
        default_factory=lambda: defaultdict(Counter)
    )
    failures: set[str] = dataclasses.field(default_factory=set)


class Probe:
    """Calls one entry point and checks the rules of the fuzz suite."""

    def __init__(self, sq: squidie.Squidie, backend: str, tally: Tally) -> None:
        self.sq = sq
        self.backend = backend
        self.tally = tally
        self.tables = [t for t in schema.metadata.sorted_tables]
        self.failures: dict[str, str] = {}

    def rows(self) -> dict[str, int]:
        with self.sq.store.engine.connect() as conn:  # type: ignore[attr-defined]
            return {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in self.tables
            }

    def call(self, entry: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``: success, or a typed refusal that stored nothing.

        Anything else is recorded (and counted) rather than raised, so one test
        explores all its examples and reports every distinct failure at the end
        (:meth:`assert_clean`).
        """
        before = self.rows()
        counts = self.tally.counts[self.backend]
        counts["tried"] += 1
        counts[f"tried:{entry}"] += 1
        try:
            result = fn(*args, **kwargs)
        except SquidieError as exc:
            counts["typed"] += 1
            counts[f"typed:{exc.code}"] += 1
            self._check_refusal(entry, exc, before, args, kwargs)
            return exc
        except Exception as exc:
            counts["generic"] += 1
            self._fail(
                entry,
                f"raised {type(exc).__name__} instead of a SquidieError: {brief(str(exc), 160)}",
                args,
                kwargs,
            )
            return exc
        counts["success"] += 1
        return result

    def _check_refusal(
        self, entry: str, exc: SquidieError, before: dict[str, int], args: Any, kwargs: Any
    ) -> None:
        message = str(exc)
        problems = []
        if exc.code == "storage_error":
            problems.append(
                f"StorageError: the input reached the database unchecked: {brief(message, 160)}"
            )
        if len(message) > MAX_MESSAGE:
            problems.append(
                f"{exc.code} message echoes the input ({len(message)} chars): {brief(message, 120)}"
            )
        after = self.rows()
        if after != before:
            changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
            problems.append(f"refused ({exc.code}) but stored rows {changed}")
        for problem in problems:
            self.tally.counts[self.backend]["bad_refusal"] += 1
            self._fail(entry, problem, args, kwargs)

    def _fail(self, entry: str, problem: str, args: Any, kwargs: Any) -> None:
        key = f"{self.backend} {entry}: {problem.split(':')[0]}"
        self.tally.failures.add(key)
        self.failures.setdefault(
            key, f"{entry}: {problem}\n      e.g. args={brief(args)} kwargs={brief(kwargs, 300)}"
        )

    def assert_clean(self) -> None:
        """Fail listing each distinct failure found (with one example input each)."""
        assert not self.failures, "fuzzing found:\n  " + "\n  ".join(self.failures.values())


@pytest.fixture
def probe(db_url: str, tally: Tally) -> Probe:
    sq = squidie.connect(db_url, clock=FakeClock(T0))
    sq.install()
    return Probe(sq, "postgres" if db_url.startswith("postgresql") else "sqlite", tally)


@pytest.fixture
def paused_run(probe: Probe) -> str:
    """A run of FuzzErrand paused on its pause step."""
    run = probe.sq.start(FuzzErrand, run_id="fuzz-paused")
    probe.sq.execute_next(owner_id="fuzz")
    assert probe.sq.inspect_run(run.run_id).status == "paused"
    return run.run_id


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """The session's tally; its counts go to the terminal summary and harness/out."""
    tally = Tally()

    class Summary:
        def pytest_terminal_summary(self, terminalreporter: Any) -> None:
            if not tally.counts:
                return
            terminalreporter.section("squidie fuzz counts")
            for backend, counts in sorted(tally.counts.items()):
                terminalreporter.write_line(
                    f"{backend}: {counts['tried']} inputs tried, {counts['typed']} typed "
                    f"errors, {counts['success']} successes, {counts['generic']} generic "
                    f"exceptions, {counts['bad_refusal']} bad refusals"
                )
            for failure in sorted(tally.failures):
                terminalreporter.write_line(f"  failing: {failure}")

    request.config.pluginmanager.register(Summary(), "squidie-fuzz-summary")
    yield tally
    if tally.counts:
        COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        COUNTS_FILE.write_text(
            json.dumps(
                {
                    "backends": {
                        b: dict(sorted(c.items())) for b, c in sorted(tally.counts.items())
                    },
                    "failures": sorted(tally.failures),
                },
                indent=2,
            )
            + "\n"
        )


# -- entry points ---------------------------------------------------------------------


def explore(probe: Probe, body: Callable[..., None], **strategies: Any) -> None:
    """Run ``body`` on every example hypothesis draws, then fail listing what broke."""
    FUZZ(given(**strategies)(body))()
    probe.assert_clean()


def test_fuzz_start(probe: Probe) -> None:
    def body(workflow: Any, trigger: Any, payload: Any, run_id: Any, queue: Any, now: Any) -> None:
        probe.call(
            "start", probe.sq.start, workflow, trigger, payload, run_id=run_id, queue=queue, now=now
        )

    explore(
        probe,
        body,
        workflow=st.one_of(st.just(FuzzErrand), st.just(ERRAND), nasty),
        trigger=st.one_of(st.none(), st.just("go"), nasty),
        payload=st.one_of(
            st.none(),
            st.just({"who": "Sam", "n": 2}),
            nasty,
            nasty_dict,
            st.builds(
                lambda k, v: {k: v},
                st.sampled_from(["who", "n", "ratio", "flag", "tags", "meta"]),
                nasty,
            ),
        ),
        run_id=st.one_of(st.none(), st.uuids().map(str), nasty),
        queue=st.one_of(st.none(), st.just("default"), nasty),
        now=moments,
    )


def _mutated_spec(path: tuple[Any, ...], value: Any) -> Any:
    spec = copy.deepcopy(VALID_SPEC)
    if not path:
        return value
    target: Any = spec
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return spec


SPEC_PATHS: list[tuple[Any, ...]] = [
    (),
    ("name",),
    ("version",),
    ("trigger",),
    ("trigger", "name"),
    ("trigger", "kind"),
    ("trigger", "payload"),
    ("trigger", "payload", "who"),
    ("trigger", "payload", "who", "type"),
    ("trigger", "payload", "who", "default"),
    ("trigger", "cron"),
    ("steps",),
    ("steps", 0),
    ("steps", 0, "name"),
    ("steps", 0, "action"),
    ("steps", 0, "input"),
    ("steps", 0, "output"),
    ("steps", 0, "retry"),
    ("steps", 0, "retry", "max_attempts"),
    ("steps", 0, "retry", "backoff"),
    ("steps", 0, "retry", "backoff", "min"),
    ("steps", 0, "deadline"),
    ("steps", 0, "deadline", "within"),
    ("steps", 0, "deadline", "escalation"),
    ("steps", 0, "after"),
    ("steps", 0, "irreversible"),
    ("steps", 0, "compensate"),
    ("steps", 1, "duration"),
    ("steps", 2, "input"),
    ("steps", 2, "input", "x"),
    ("transitions",),
    ("transitions", 0),
    ("transitions", 0, "from"),
    ("transitions", 0, "on"),
    ("transitions", 0, "to"),
    ("transitions", 1, "when"),
    ("transitions", 1, "when", "equals"),
    ("transitions", 1, "when", "path"),
    ("transitions", 0, "recovery"),
]
specs = st.builds(_mutated_spec, st.sampled_from(SPEC_PATHS), nasty)
registries = st.one_of(st.just(REGISTRY), st.just(REGISTRY), nasty)


def test_fuzz_validate_spec(probe: Probe) -> None:
    def body(spec: Any, registry: Any) -> None:
        probe.call("validate_spec", squidie.validate_spec, spec, action_registry=registry)

    explore(probe, body, spec=specs, registry=registries)


def test_fuzz_start_spec(probe: Probe) -> None:
    def body(
        spec: Any, registry: Any, trigger: Any, payload: Any, run_id: Any, queue: Any, now: Any
    ) -> None:
        probe.call(
            "start_spec",
            probe.sq.start_spec,
            spec,
            trigger,
            payload,
            action_registry=registry,
            run_id=run_id,
            queue=queue,
            now=now,
        )

    explore(
        probe,
        body,
        spec=specs,
        registry=registries,
        trigger=st.one_of(st.none(), nasty),
        payload=st.one_of(st.none(), nasty_dict),
        run_id=st.one_of(st.none(), nasty),
        queue=st.one_of(st.none(), nasty),
        now=moments,
    )


attrs = st.one_of(
    st.none(),
    st.just({"actor": "elrond", "comment": "ok"}),
    nasty,
    nasty_dict,
    st.builds(lambda k, v: {k: v}, st.sampled_from(["actor", "comment", "metadata"]), nasty),
)
run_ids = st.one_of(st.just("fuzz-paused"), st.just("missing"), nasty)
keys = st.one_of(st.none(), st.text(max_size=10), nasty)


def test_fuzz_controls(probe: Probe, paused_run: str) -> None:
    def body(
        control: str, run_id: Any, attributes: Any, key: Any, metadata: Any, now: Any, allow: Any
    ) -> None:
        options = {"idempotency_key": key, "metadata": metadata, "now": now}
        if control == "replay":
            probe.call("replay", probe.sq.replay, run_id, allow_irreversible=allow, **options)
        else:
            probe.call(control, getattr(probe.sq, control), run_id, attributes, **options)

    explore(
        probe,
        body,
        control=st.sampled_from(["resume", "approve", "reject", "cancel", "replay"]),
        run_id=run_ids,
        attributes=attrs,
        key=keys,
        metadata=st.one_of(st.none(), st.just({"why": "fuzz"}), nasty, nasty_dict),
        now=moments,
        allow=maybe(False),
    )


def test_fuzz_signals(probe: Probe, paused_run: str) -> None:
    def body(
        kind: str, target: Any, second: Any, key: Any, metadata: Any, occurred: Any, now: Any
    ) -> None:
        options = {"idempotency_key": key, "metadata": metadata, "occurred_at": occurred}
        constructor = getattr(Signal, kind)
        if kind.startswith("start"):
            built = probe.call(f"Signal.{kind}", constructor, target, None, second, **options)
        else:
            built = probe.call(f"Signal.{kind}", constructor, target, second, **options)
        if isinstance(built, Signal):
            probe.call("apply_signal", probe.sq.apply_signal, built, now=now)
            probe.call("apply_signal(dict)", probe.sq.apply_signal, built.to_dict(), now=now)

    explore(
        probe,
        body,
        kind=st.sampled_from(
            [
                "start_run",
                "start_cron",
                "approve_run",
                "reject_run",
                "resume_run",
                "cancel_run",
                "replay_run",
            ]
        ),
        target=st.one_of(st.just("fuzz-paused"), st.just(FuzzErrand), st.just(TICK), nasty),
        second=st.one_of(st.none(), st.just({"actor": "x"}), nasty, nasty_dict),
        key=keys,
        metadata=st.one_of(st.none(), nasty_dict, nasty),
        occurred=moments,
        now=moments,
    )


def test_fuzz_signal_from_dict(probe: Probe, paused_run: str) -> None:
    def body(raw: Any) -> None:
        probe.call("apply_signal(raw)", probe.sq.apply_signal, raw)

    explore(
        probe,
        body,
        raw=st.one_of(
            nasty,
            nasty_dict,
            st.builds(
                lambda k, v: {"type": "approve_run", "payload": {"run_id": "fuzz-paused"}, k: v},
                st.sampled_from(["type", "payload", "metadata", "occurred_at", "idempotency_key"]),
                nasty,
            ),
        ),
    )


def test_fuzz_reads(probe: Probe, paused_run: str) -> None:
    def body(read: str, run_id: Any, history: Any, now: Any) -> None:
        kwargs: dict[str, Any] = {"now": now}
        if read != "explain_run":
            kwargs["include_history"] = history
        probe.call(read, getattr(probe.sq, read), run_id, **kwargs)

    explore(
        probe,
        body,
        read=st.sampled_from(["inspect_run", "explain_run", "inspect_run_graph"]),
        run_id=run_ids,
        history=maybe(True),
        now=moments,
    )


def _cursor(started: str, run_id: str) -> str:
    raw = json.dumps([started, run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSORS = [
    _cursor("2026-01-01", "r"),
    _cursor("2026-01-01T00:00:00+00:00", "\ud800"),
    _cursor("2026-01-01T00:00:00+00:00", "r" * 500),
    _cursor("0001-01-01", "r"),
    _cursor("2026-01-01T00:00:00+00:00", "r"),
    "eyJ4IjoxfQ",
]


def test_fuzz_list_runs(probe: Probe, paused_run: str) -> None:
    def body(status: Any, workflow: Any, limit: Any, cursor: Any, now: Any) -> None:
        probe.call(
            "list_runs",
            probe.sq.list_runs,
            status=status,
            workflow=workflow,
            limit=limit,
            cursor=cursor,
            now=now,
        )

    explore(
        probe,
        body,
        status=st.one_of(st.none(), st.just("paused"), nasty),
        workflow=st.one_of(st.none(), st.just(FuzzErrand), nasty),
        limit=maybe(50),
        cursor=st.one_of(st.none(), nasty, st.sampled_from(CURSORS)),
        now=moments,
    )


def test_fuzz_execute_next(probe: Probe) -> None:
    def body(owner: Any, queue: Any, lease: Any, heartbeat: Any, now: Any, registry: Any) -> None:
        probe.sq.start(FuzzErrand)
        probe.call(
            "execute_next",
            probe.sq.execute_next,
            owner_id=owner,
            queue=queue,
            lease_for=lease,
            heartbeat_interval=heartbeat,
            now=now,
            action_registry=registry,
        )

    explore(
        probe,
        body,
        owner=maybe("fuzz-worker"),
        queue=st.one_of(st.none(), nasty),
        lease=maybe(300),
        heartbeat=st.one_of(st.none(), nasty),
        now=moments,
        registry=st.one_of(st.none(), st.just(REGISTRY), nasty),
    )


def test_fuzz_connect(probe: Probe) -> None:
    def body(url: Any, engine: Any, queue: Any, clock: Any) -> None:
        probe.call("connect", squidie.connect, url, engine=engine, queue=queue, clock=clock)

    explore(
        probe,
        body,
        url=st.one_of(st.none(), nasty),
        engine=st.one_of(st.none(), nasty),
        queue=maybe("default"),
        clock=st.one_of(st.none(), nasty),
    )


windows = st.one_of(
    st.none(),
    nasty,
    nasty_dict,
    st.builds(
        lambda a, b: {"start_at": a, "end_at": b},
        maybe("2026-05-15T10:00:00Z"),
        maybe(datetime(2026, 5, 15, 10, 1, tzinfo=UTC)),
    ),
)


def test_fuzz_cron_perform(probe: Probe) -> None:
    def body(
        workflow: Any, trigger: Any, signal_id: Any, window: Any, queue: Any, now: Any
    ) -> None:
        payload = probe.call(
            "Payload.cron",
            Payload.cron,
            workflow,
            trigger,
            signal_id=signal_id,
            intended_window=window,
        )
        if isinstance(payload, dict):
            probe.call("perform", probe.sq.perform, payload, queue=queue, now=now)

    explore(
        probe,
        body,
        workflow=st.one_of(st.just(FuzzTick), st.just(TICK), nasty),
        trigger=st.one_of(st.none(), st.just("tick"), nasty),
        signal_id=st.one_of(st.none(), st.text(min_size=1, max_size=10), nasty),
        window=windows,
        queue=st.one_of(st.none(), nasty),
        now=moments,
    )


def test_fuzz_perform_raw_payloads(probe: Probe) -> None:
    def body(key: str, value: Any) -> None:
        raw = Payload.cron(FuzzTick, "tick", signal_id="s-1")
        raw[key] = value
        probe.call("perform(raw)", probe.sq.perform, raw)

    explore(
        probe,
        body,
        key=st.sampled_from(
            [
                "kind",
                "version",
                "workflow",
                "trigger",
                "signal_id",
                "intended_window",
                "source",
                "extra",
            ]
        ),
        value=nasty,
    )


def test_fuzz_start_cron_signal(probe: Probe) -> None:
    def body(workflow: Any, trigger: Any, payload: Any, key: Any) -> None:
        built = probe.call(
            "Signal.start_cron",
            Signal.start_cron,
            workflow or FuzzTick,
            trigger,
            payload,
            idempotency_key=key,
        )
        if isinstance(built, Signal):
            probe.call("apply_signal(start_cron)", probe.sq.apply_signal, built)

    explore(
        probe,
        body,
        workflow=st.one_of(st.none(), nasty),
        trigger=st.one_of(st.none(), nasty),
        payload=st.one_of(st.none(), nasty_dict),
        key=st.one_of(st.none(), nasty),
    )


def test_fuzz_scheduler(probe: Probe) -> None:
    def body(
        workflows: Any,
        catch_up: Any,
        max_catch_up: Any,
        grace: Any,
        queue: Any,
        owner: Any,
        now: Any,
    ) -> None:
        sched = probe.call(
            "Scheduler",
            Scheduler,
            probe.sq,
            workflows,
            catch_up=catch_up,
            max_catch_up=max_catch_up,
            grace=grace,
            queue=queue,
            owner_id=owner,
        )
        if isinstance(sched, Scheduler):
            probe.call("Scheduler.tick", sched.tick, now=now)

    explore(
        probe,
        body,
        workflows=st.one_of(
            st.just([TICK]), st.just([FuzzTick]), nasty, st.lists(nasty, max_size=2)
        ),
        catch_up=maybe("latest"),
        max_catch_up=maybe(10),
        grace=maybe(60.0),
        queue=st.one_of(st.none(), nasty),
        owner=st.one_of(st.none(), nasty),
        now=moments,
    )


def _define(name: Any, trigger: Any, steps: Any, transitions: Any) -> type[Workflow]:
    return type(
        "FuzzDefined",
        (Workflow,),
        {"name": name, "trigger": trigger, "steps": steps, "transitions": transitions},
    )


class _Act(Step):
    def run(self, input: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        return {}


dsl_steps = st.one_of(
    st.builds(
        step,
        maybe("a"),
        maybe(_Act),
        input=st.one_of(st.none(), nasty),
        output=st.one_of(st.none(), nasty),
        after=st.one_of(st.none(), nasty),
        irreversible=maybe(False),
        compensatable=st.one_of(st.none(), nasty),
        compensate=st.one_of(st.none(), st.just(_noop), nasty),
    ),
    st.builds(
        lambda n, m, b: step(n, _Act, retry=retry(m, exponential(b, 60))),
        maybe("a"),
        maybe(3),
        maybe(1),
    ),
    st.builds(
        lambda w, s, e: step("a", _Act, deadline=deadline(w, s, escalation=e)),
        maybe(60),
        maybe(0),
        maybe("diagnostic"),
    ),
    st.builds(wait, maybe("a"), maybe(5)),
    st.builds(log, maybe("a"), maybe("hello"), maybe("info")),
    st.builds(pause, nasty),
    st.builds(approval_step, nasty),
)
dsl_triggers = st.one_of(
    st.builds(
        manual,
        maybe("go"),
        st.one_of(
            st.none(), nasty, st.builds(lambda t, d: {"f": field(t, default=d)}, maybe(str), nasty)
        ),
    ),
    st.builds(
        cron,
        maybe("tick"),
        maybe("0 0 30 2 *"),
        timezone=maybe("Etc/UTC"),
        idempotency=st.one_of(st.none(), nasty),
    ),
    nasty,
)
dsl_transitions = st.one_of(
    st.none(),
    st.just([]),
    nasty,
    st.lists(
        st.builds(
            transition,
            maybe("a"),
            on=maybe("ok"),
            to=maybe("complete"),
            recovery=st.one_of(st.none(), nasty),
            when=st.one_of(
                st.none(), nasty, st.builds(lambda v: {"path": ["x"], "equals": v}, nasty)
            ),
        ),
        max_size=2,
    ),
)


def test_fuzz_dsl(probe: Probe) -> None:
    def body(name: Any, trigger: Any, steps: Any, transitions: Any) -> None:
        probe.call("Workflow(DSL)", _define, name, trigger, steps, transitions)

    explore(
        probe,
        body,
        name=st.one_of(st.none(), nasty),
        trigger=dsl_triggers,
        steps=st.one_of(st.lists(dsl_steps, min_size=1, max_size=2), nasty),
        transitions=dsl_transitions,
    )


# -- regressions for what the fuzzing found (explicit, so they never depend on luck) ----

HOSTILE_IDS = ["\ud800", "a\udfffb", "a\x00b", "r" * 201, BIG, 5, None, ["r"], b"r"]


@pytest.mark.parametrize("run_id", HOSTILE_IDS, ids=lambda v: brief(v, 12))
def test_hostile_run_ids_are_refused_alike_by_reads(
    probe: Probe, paused_run: str, run_id: Any
) -> None:
    for read in (probe.sq.inspect_run, probe.sq.explain_run, probe.sq.inspect_run_graph):
        with pytest.raises(squidie.InvalidOption) as info:
            read(run_id)
        assert len(str(info.value)) < 500


@pytest.mark.parametrize("option", ["run_id", "queue", "trigger"])
@pytest.mark.parametrize("value", [*HOSTILE_IDS[:5], ""], ids=lambda v: brief(v, 12))
def test_hostile_ids_on_start_are_refused_and_store_nothing(
    probe: Probe, option: str, value: Any
) -> None:
    if value is None or (option == "run_id" and value == ""):
        return  # None means "the default" here
    kwargs: dict[str, Any] = {option: value}
    trigger = kwargs.pop("trigger", None)
    before = probe.rows()
    with pytest.raises(squidie.InvalidOption) as info:
        probe.sq.start(FuzzErrand, trigger, **kwargs)
    assert len(str(info.value)) < 500
    assert probe.rows() == before


@pytest.mark.parametrize(
    "workflow",
    [".x", "..x.Y", "a\x00b.C", "\ud800.C", "w" * 10_000_000, "no_such_module.Flow"],
    ids=lambda v: brief(v, 12),
)
def test_unimportable_workflow_paths_are_invalid_options(probe: Probe, workflow: str) -> None:
    with pytest.raises(squidie.InvalidOption) as info:
        probe.sq.start(workflow)
    assert len(str(info.value)) < 500


@pytest.mark.parametrize(
    "now",
    [
        datetime(1, 1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(2026, 1, 1),
    ],
    ids=str,
)
def test_out_of_range_now_is_an_invalid_option_everywhere(
    probe: Probe, paused_run: str, now: datetime
) -> None:
    before = probe.rows()
    calls: list[Callable[[], Any]] = [
        lambda: probe.sq.start(FuzzErrand, now=now),
        lambda: probe.sq.inspect_run(paused_run, now=now),
        lambda: probe.sq.explain_run(paused_run, now=now),
        lambda: probe.sq.inspect_run_graph(paused_run, now=now),
        lambda: probe.sq.list_runs(now=now),
        lambda: probe.sq.perform(Payload.cron(FuzzTick, "tick", signal_id="s"), now=now),
    ]
    for call in calls:
        with pytest.raises(squidie.InvalidOption):
            call()
    assert probe.rows() == before


@pytest.mark.parametrize(
    "cursor", [*CURSORS[:4], "x" * 10_000_000, "\ud800"], ids=lambda v: brief(v, 12)
)
def test_forged_list_cursors_are_invalid_options(
    probe: Probe, paused_run: str, cursor: str
) -> None:
    with pytest.raises(squidie.InvalidOption) as info:
        probe.sq.list_runs(cursor=cursor)
    assert len(str(info.value)) < 500


@pytest.mark.parametrize("signal_id", ["\ud800", "a\x00b", "s" * 501])
def test_cron_signal_ids_that_cannot_be_stored_are_refused(probe: Probe, signal_id: str) -> None:
    with pytest.raises(squidie.InvalidOption):
        Payload.cron(FuzzTick, "tick", signal_id=signal_id)
    raw = Payload.cron(FuzzTick, "tick", signal_id="ok")
    raw["signal_id"] = signal_id
    with pytest.raises(squidie.InvalidSignal):
        probe.sq.perform(raw)
    assert probe.sq.list_runs() == []


@pytest.mark.parametrize(
    "start_at",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        "0001-01-01T00:00:00+05:00",
        datetime(1, 1, 1, tzinfo=UTC),
        "9999-12-31T23:00:00+00:00",
    ],
)
def test_cron_windows_out_of_range_are_typed_errors(probe: Probe, start_at: Any) -> None:
    with pytest.raises(squidie.InvalidOption, match="between the years"):
        Payload.cron(FuzzTick, "tick", intended_window={"start_at": start_at})
    raw = Payload.cron(FuzzTick, "tick", signal_id="ok")
    raw["intended_window"] = {"start_at": str(start_at)}
    with pytest.raises(squidie.InvalidSignal):
        probe.sq.perform(raw)


@pytest.mark.parametrize(
    "meta",
    [{"a": {1: "b"}}, {"a": [{(1, 2): "b"}]}, {"a": _deep_dict(600)}],
    ids=["int-key", "tuple-key", "600-deep"],
)
def test_nested_non_string_keys_and_deep_values_are_refused_not_coerced(
    probe: Probe, meta: Any
) -> None:
    before = probe.rows()
    with pytest.raises(squidie.InvalidPayload):
        probe.sq.start(FuzzErrand, payload={"meta": meta})
    spec = _mutated_spec(("transitions", 1, "when", "equals"), meta)
    with pytest.raises(squidie.WorkflowDefinitionError):
        probe.sq.start_spec(spec, action_registry=REGISTRY)
    assert probe.rows() == before


@pytest.mark.parametrize(
    "queue",
    ["\ud800", "a\x00b", "q" * 201, 10**400, float("nan"), {"a": 1}, ["q"], ""],
    ids=lambda v: brief(v, 12),
)
def test_execute_next_refuses_queues_no_backend_can_store(probe: Probe, queue: Any) -> None:
    probe.sq.start(FuzzErrand)
    before = probe.rows()
    with pytest.raises(squidie.InvalidOption):
        probe.sq.execute_next(owner_id="w", queue=queue)
    with pytest.raises(squidie.InvalidOption):
        probe.sq.worker("w", queue=queue)
    assert probe.rows() == before
