"""Correctness after a load run: the database against the locust ledger.

Every run the ledger says was started must exist and end as its workflow and the
decisions taken on it say (completed, failed or cancelled); no run may be left
unfinished; idempotent starts and approvals must have made one run and one
receipt. A sample of runs is inspected with history for the finer points.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import squidie
from squidie.testing import all_runs as every_run

TERMINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass
class Verdict:
    """What the check found: counts, and every problem (empty when all is well)."""

    expected: Counter[str] = field(default_factory=Counter)
    actual: Counter[str] = field(default_factory=Counter)
    runs_in_db: int = 0
    unrecorded: int = 0
    sampled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def read_ledger(path: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Fold the ledger: run id -> its start line updated by later ``expect`` lines,
    plus the ``violation`` lines seen by clients."""
    runs: dict[str, dict[str, Any]] = {}
    violations: list[dict[str, Any]] = []
    if not path.exists():
        return runs, violations
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["event"] == "start":
            runs.setdefault(entry["run_id"], {}).update(entry)
        elif entry["event"] == "expect":
            runs.setdefault(entry["run_id"], {}).update(
                {k: v for k, v in entry.items() if k != "event"}
            )
        elif entry["event"] == "violation":
            violations.append(entry)
    return runs, violations


def all_runs(sq: squidie.Squidie) -> dict[str, Any]:
    """Every run in the database (run id -> RunSummary)."""
    return {r.run_id: r for r in every_run(sq, page_size=1000)}


def verify(sq: squidie.Squidie, ledger: Path, *, sample: int = 60) -> Verdict:
    """Check the database against the ledger; see the module docstring."""
    verdict = Verdict()
    expected, violations = read_ledger(ledger)
    verdict.problems += [f"client saw: {v['what']} (run {v['run_id']})" for v in violations]
    runs = all_runs(sq)
    verdict.runs_in_db = len(runs)
    for run_id, entry in expected.items():
        want = entry.get("expect", "?")
        verdict.expected[want] += 1
        summary = runs.get(run_id)
        if summary is None:
            verdict.problems.append(
                f"run {run_id} ({entry.get('workflow')}) was started but is not in the database"
            )
            continue
        if summary.status != want:
            verdict.problems.append(
                f"run {run_id} ({entry.get('workflow')}, "
                f"via {entry.get('via', 'start')}) is {summary.status}, "
                f"expected {want}"
            )
    for run_id, summary in runs.items():
        verdict.actual[str(summary.status)] += 1
        if run_id not in expected:
            verdict.unrecorded += 1  # e.g. a start whose answer the client never got
        if summary.status not in TERMINAL:
            verdict.problems.append(f"run {run_id} is stuck: {summary.status}")
    _sample(sq, expected, runs, verdict, sample)
    return verdict


def _sample(
    sq: squidie.Squidie,
    expected: dict[str, dict[str, Any]],
    runs: dict[str, Any],
    verdict: Verdict,
    size: int,
) -> None:
    """Inspect a random sample with history: retries counted right, one receipt per key."""
    candidates = [
        r
        for r, e in expected.items()
        if r in runs
        and (
            e.get("workflow") == "flaky_payment"
            or e.get("via") == "approve"
            or e.get("replayed_from")
        )
    ]
    for run_id in random.sample(candidates, min(size, len(candidates))):
        entry = expected[run_id]
        snap = sq.inspect_run(run_id, include_history=True)
        verdict.sampled += 1
        if entry.get("workflow") == "flaky_payment":
            attempts = (snap.steps or [{}])[0].get("attempts")
            want = min(int(entry.get("failures", 0)) + 1, 3)
            if snap.status == entry.get("expect") and attempts != want:
                verdict.problems.append(
                    f"flaky run {run_id}: charge_card made {attempts} attempts, expected {want}"
                )
        if entry.get("via") == "approve":
            keys = [
                c["idempotency_key"]
                for c in snap.command_history or []
                if c["signal_type"] == "approve_run"
            ]
            if keys != [entry.get("key")]:
                verdict.problems.append(
                    f"approval run {run_id}: approve receipts {keys}, "
                    f"expected exactly [{entry.get('key')!r}]"
                )
        if entry.get("replayed_from") and snap.replayed_from_run_id != entry["replayed_from"]:
            verdict.problems.append(f"replay {run_id} is not linked to {entry['replayed_from']}")
