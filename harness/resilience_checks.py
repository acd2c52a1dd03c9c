"""What the resilience scenario must prove at the end, read from the journal and
the step bodies' logs (see :mod:`harness.resilience_workflows`).

- every planned run completed, no other run exists;
- every expected step was applied exactly once and no other step was (a
  rejected review never ships); every manual gate paused and was resolved once;
- every operator control left exactly one command in the run's history, though
  it was retried through a crash and repeated with its idempotency key, and
  approvals carry the decision taken;
- no two executions of one step ever overlapped in time (a stolen claim), and in
  the phases without kills (skewed clock, connection cuts) every step body ran
  exactly once;
- a ``wait`` step's successor never ran before the wait was over;
- across the deploy, every run ended on the version it started with (version 1
  runs on version 1's steps, runs started after it on version 2's), and version 1
  steps ran on workers deployed with version 2 beside it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

import squidie
from harness.resilience_workflows import COOL_OFF_SECONDS
from squidie.journal.schema import journal
from squidie.model import SUCCESS_KINDS, applied_success
from squidie.testing import all_runs

DEPLOYED_OWNER = "v2-"  # owners of the workers started at the deploy begin with it
CLOCK_TOLERANCE = 0.25  # seconds: all workers share one host clock, corrected for skew


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """What one run must end with."""

    applied: frozenset[str]
    gates: frozenset[str] = frozenset()
    control: str | None = None  # resume_run / approve_run / reject_run
    decision: str | None = None  # approval output, for approve/reject
    builtin: frozenset[str] = frozenset()  # applied steps without a body (wait)
    strict: bool = False  # its phase had no kills: each body ran exactly once
    waits: tuple[tuple[str, str], ...] = ()  # (step before the wait, step after it)
    version: str | None = None  # the definition_version its snapshot must show


@dataclass(slots=True)
class Body:
    """One execution of a step body, from the start and end lines it logged."""

    owner: str
    start: float
    end: float | None = None


@dataclass(slots=True)
class Findings:
    """The problems found, and counts worth printing either way."""

    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def read_bodies(body_dir: Path) -> dict[tuple[str, str], list[Body]]:
    """Every body execution, keyed by (run_id, step), ordered by start."""
    open_bodies: dict[tuple[str, str, str], Body] = {}
    bodies: dict[tuple[str, str], list[Body]] = defaultdict(list)
    for path in sorted(body_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by SIGKILL cannot happen (one write), but be lenient
            key = (rec["run_id"], rec["step"])
            claim = (rec["run_id"], rec["step"], str(rec["claim_id"]))
            if rec["event"] == "start":
                body = Body(owner=rec["owner"], start=rec["t"])
                open_bodies[claim] = body
                bodies[key].append(body)
            elif claim in open_bodies:
                open_bodies.pop(claim).end = rec["t"]
    for runs in bodies.values():
        runs.sort(key=lambda b: b.start)
    return bodies


def verify(sq: squidie.Squidie, plan: dict[str, Expect], body_dir: Path) -> Findings:
    """Check every guarantee; returns the problems and a few counts."""
    found = Findings()
    _check_statuses(sq, plan, found)
    _check_journal(sq, plan, found)
    _check_controls(sq, plan, found)
    bodies = read_bodies(body_dir)
    _check_bodies(bodies, plan, found)
    _check_versions(sq, plan, bodies, found)
    return found


def _check_statuses(sq: squidie.Squidie, plan: dict[str, Expect], found: Findings) -> None:
    statuses = {r.run_id: r.status.value for r in all_runs(sq)}
    by_status = Counter(statuses.values())
    if by_status != Counter({"completed": len(plan)}):
        found.problems.append(f"runs by status: {dict(by_status)}, expected {len(plan)} completed")
    unplanned = sorted(set(statuses) - set(plan))
    if unplanned:
        found.problems.append(f"{len(unplanned)} unplanned runs, e.g. {unplanned[:3]}")


def _check_journal(sq: squidie.Squidie, plan: dict[str, Expect], found: Findings) -> None:
    applied: Counter[tuple[str, str]] = Counter()
    paused: Counter[tuple[str, str]] = Counter()
    resolved: Counter[tuple[str, str]] = Counter()
    engine = sq.store.engine  # type: ignore[attr-defined]
    query = select(journal.c.run_id, journal.c.kind, journal.c.data).where(
        journal.c.kind.in_((*SUCCESS_KINDS, "paused", "manual_resolved"))
    )
    with engine.connect() as conn:
        for run_id, kind, data in conn.execute(query):
            key = applied_success(kind, data)
            if key is not None:
                applied[(run_id, key)] += 1
            elif kind == "paused":
                paused[(run_id, data["step"])] += 1
            elif kind == "manual_resolved":
                resolved[(run_id, data["step"])] += 1
    expected = {(r, s) for r, e in plan.items() for s in e.applied}
    gates = {(r, s) for r, e in plan.items() for s in e.gates}
    found.counts["steps applied"] = sum(applied.values())
    found.counts["gates resolved"] = sum(resolved.values())
    _compare(found, "applied", applied, expected)
    _compare(found, "paused", paused, gates)
    _compare(found, "resolved", resolved, gates)


def _compare(
    found: Findings, what: str, seen: Counter[tuple[str, str]], expected: set[tuple[str, str]]
) -> None:
    missing = sorted(expected - set(seen))
    twice = sorted(k for k, n in seen.items() if n > 1)
    extra = sorted(set(seen) - expected)
    if missing:
        found.problems.append(f"{len(missing)} steps never {what}, e.g. {missing[:3]}")
    if twice:
        found.problems.append(f"{len(twice)} steps {what} more than once, e.g. {twice[:3]}")
    if extra:
        found.problems.append(f"{len(extra)} unexpected steps {what}, e.g. {extra[:3]}")


def _check_controls(sq: squidie.Squidie, plan: dict[str, Expect], found: Findings) -> None:
    controlled = {r: e for r, e in plan.items() if e.control}
    for run_id, expect in sorted(controlled.items()):
        snap = sq.inspect_run(run_id, include_history=True)
        history: list[Any] = [
            c if isinstance(c, dict) else c.to_dict() for c in snap.command_history or []
        ]
        controls = [c for c in history if c.get("signal_type") != "start_run"]
        kinds = [c.get("signal_type") for c in controls]
        if kinds != [expect.control]:
            found.problems.append(
                f"{run_id}: command history {kinds}, expected [{expect.control!r}] once"
            )
        if expect.decision is not None:
            decision = (snap.context or {}).get("review", {}).get("decision")
            if decision != expect.decision:
                found.problems.append(
                    f"{run_id}: decision {decision!r}, expected {expect.decision!r}"
                )
    found.counts["operator controls"] = len(controlled)


def _check_bodies(
    bodies: dict[tuple[str, str], list[Body]], plan: dict[str, Expect], found: Findings
) -> None:
    overlapping = []
    for (run_id, step_name), runs in bodies.items():
        if _overlap(runs):
            overlapping.append((run_id, step_name, [b.owner for b in runs]))
    not_once = [
        (run_id, name, [b.owner for b in bodies.get((run_id, name), [])])
        for run_id, expect in plan.items()
        if expect.strict
        for name in sorted(expect.applied - expect.builtin)
        if len(bodies.get((run_id, name), [])) != 1
    ]
    if overlapping:
        found.problems.append(
            f"{len(overlapping)} steps ran twice at once (a live claim was taken over), "
            f"e.g. {overlapping[:3]}"
        )
    if not_once:
        found.problems.append(
            f"{len(not_once)} step bodies in the phases without kills did not run exactly "
            f"once, "
            f"e.g. {not_once[:3]}"
        )
    early = _early_after_wait(bodies, plan)
    if early:
        found.problems.append(
            f"{len(early)} steps ran before their wait was over, e.g. {early[:3]}"
        )
    found.counts["body executions"] = sum(len(r) for r in bodies.values())
    found.counts["steps whose body re-ran (after kills and crashes)"] = sum(
        1 for r in bodies.values() if len(r) > 1
    )
    skewed = sum(1 for r in bodies.values() for b in r if b.owner.startswith("skewed"))
    found.counts["bodies run by the skewed worker"] = skewed
    if not skewed:
        found.problems.append("the skewed worker never ran a step: the skew phase proved nothing")


def _check_versions(
    sq: squidie.Squidie,
    plan: dict[str, Expect],
    bodies: dict[tuple[str, str], list[Body]],
    found: Findings,
) -> None:
    """Each deploy run's snapshot shows the version it started with (its steps were
    checked with the journal), and version 1 steps ran on the deployed workers."""
    versioned = {r: e.version for r, e in sorted(plan.items()) if e.version is not None}
    wrong = []
    for run_id, version in versioned.items():
        shown = sq.inspect_run(run_id).definition_version
        if shown != version:
            wrong.append((run_id, shown))
    if wrong:
        found.problems.append(
            f"{len(wrong)} runs not on the version they started with, e.g. {wrong[:3]}"
        )
    v1_on_v2 = sum(
        1
        for (run_id, _), runs in bodies.items()
        if versioned.get(run_id) == "1"
        for b in runs
        if b.owner.startswith(DEPLOYED_OWNER)
    )
    found.counts["v1 steps run by workers deployed with v2"] = v1_on_v2
    if versioned and not v1_on_v2:
        found.problems.append(
            "no version 1 step ran on a worker deployed with version 2: the deploy proved nothing"
        )


def _overlap(runs: list[Body]) -> bool:
    """Did any two finished executions run at the same time?"""
    latest_end = float("-inf")
    for body in sorted((b for b in runs if b.end is not None), key=lambda b: b.start):
        if body.start < latest_end:
            return True
        latest_end = max(latest_end, body.end or body.start)
    return False


def _early_after_wait(
    bodies: dict[tuple[str, str], list[Body]], plan: dict[str, Expect]
) -> list[tuple[str, str, float]]:
    early = []
    for run_id, expect in plan.items():
        for before, after in expect.waits:
            ends = [b.end for b in bodies.get((run_id, before), []) if b.end is not None]
            starts = [b.start for b in bodies.get((run_id, after), [])]
            if ends and starts:
                gap = min(starts) - max(ends)
                if gap < COOL_OFF_SECONDS - CLOCK_TOLERANCE:
                    early.append((run_id, after, round(gap, 2)))
    return early
