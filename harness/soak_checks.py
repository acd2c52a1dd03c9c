"""The soak's verdicts: correctness checks at the end (run outcomes, exactly-once
application, cron windows) and the drift report (first third against last)."""

from __future__ import annotations

import os
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

import squidie
from harness.soak_chart import fmt_ms
from harness.soak_sampling import Sample, percentile
from harness.soak_workflows import (
    BY_PATH,
    CRON_PATHS,
    CRON_WORKFLOWS,
    EXPECTED_STEPS,
    path_of,
)
from squidie.journal.schema import attempts, journal, runs, schedules
from squidie.model import SUCCESS_KINDS, applied_success

if TYPE_CHECKING:
    from harness.soak import Soak


def verify(soak: Soak) -> tuple[list[str], dict[str, Any]]:
    """Correctness after the drain. Returns (problems, facts for the summary)."""
    problems: list[str] = []
    sq = squidie.connect(soak.url)
    engine = sq.store.engine  # type: ignore[attr-defined]
    tracked = soak.producer.runs
    with engine.connect() as conn:
        catalog = {
            r.run_id: r for r in conn.execute(select(runs.c.run_id, runs.c.workflow, runs.c.status))
        }
        applied: dict[str, Counter[str]] = defaultdict(Counter)
        cancelled_at: dict[str, int] = {}
        late_applied: list[str] = []
        facts = conn.execute(
            select(journal.c.run_id, journal.c.revision, journal.c.kind, journal.c.data)
            .where(journal.c.kind.in_([*SUCCESS_KINDS, "run_cancelled"]))
            .order_by(journal.c.run_id, journal.c.revision)
        )
        for run_id, revision, kind, data in facts:
            key = applied_success(kind, data)
            if kind == "run_cancelled":
                cancelled_at[run_id] = revision
            elif key is not None:
                applied[run_id][key] += 1
                if run_id in cancelled_at:
                    late_applied.append(f"{run_id}/{key}")
        live_rows = conn.execute(
            select(func.count())
            .select_from(attempts)
            .where(attempts.c.status.in_(["visible", "claimed", "finished"]))
        ).scalar_one()
        final_cursors = dict(
            conn.execute(select(schedules.c.schedule_id, schedules.c.cursor_at)).all()
        )

    # 1. every run ended as its kind says
    wrong: dict[str, list[str]] = defaultdict(list)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for run_id, t in tracked.items():
        row = catalog.get(run_id)
        status = row.status if row else "missing"
        by_kind[t.kind][status] += 1
        if status != t.expected:
            wrong[t.kind].append(f"{run_id} is {status}, expected {t.expected} {t.note}".strip())
    for kind, items in wrong.items():
        problems.append(f"{len(items)} {kind} run(s) ended wrongly, e.g. {items[:2]}")
    strangers = [r for r in catalog if r not in tracked and catalog[r].workflow not in CRON_PATHS]
    if strangers:
        problems.append(f"{len(strangers)} run(s) nobody started, e.g. {strangers[:3]}")

    # 2. every step applied exactly once (all of them in a run that completed)
    twice, missing, foreign = [], [], []
    for run_id, row in catalog.items():
        expected = EXPECTED_STEPS[BY_PATH[row.workflow]]
        got = applied.get(run_id, Counter())
        twice += [f"{run_id}/{k} x{n}" for k, n in got.items() if n != 1]
        foreign += [f"{run_id}/{k}" for k in got if k not in expected]
        if row.status in ("completed", "failed") and set(got) != expected:
            missing.append(
                f"{run_id} ({row.status}): applied {sorted(got)}, expected {sorted(expected)}"
            )
    steps_applied = sum(sum(c.values()) for c in applied.values())
    if twice:
        problems.append(f"{len(twice)} step(s) applied more than once, e.g. {twice[:3]}")
    if foreign:
        problems.append(f"{len(foreign)} unexpected step(s) applied, e.g. {foreign[:3]}")
    if missing:
        problems.append(f"{len(missing)} ended run(s) with the wrong steps, e.g. {missing[:2]}")
    if late_applied:
        problems.append(
            f"{len(late_applied)} step(s) applied after a cancel, e.g. {late_applied[:3]}"
        )
    if live_rows:
        problems.append(f"{live_rows} live dispatch row(s) left after the drain")

    # 3. cron: one run per delivered window, none missing across the restart
    cron = verify_cron(sq, soak, catalog, final_cursors, problems)
    facts_out = {
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "steps_applied": steps_applied,
        "runs": len(catalog),
        "cron": cron,
    }
    return problems, facts_out


def verify_cron(
    sq: squidie.Squidie,
    soak: Soak,
    catalog: dict[str, Any],
    final_cursors: dict[str, datetime],
    problems: list[str],
) -> dict[str, Any]:
    from squidie.cron.windows import CronSchedule, iso_z

    delivered: dict[str, Counter[str]] = defaultdict(Counter)
    for _owner, _status, signal_id in soak.deliveries:
        path, _trigger, start = signal_id.split(":", 2)
        delivered[path][start] += 1
    report: dict[str, Any] = {}
    for workflow in CRON_WORKFLOWS:
        path = path_of(workflow)
        trig = workflow.definition().spec.trigger
        schedule_id = f"{path}:{trig.name}"
        windows: Counter[str] = Counter()
        not_completed = []
        for run_id, row in catalog.items():
            if row.workflow != path:
                continue
            snap = sq.inspect_run(run_id)
            windows[snap.context["schedule"]["intended_window"]["start_at"]] += 1
            if row.status != "completed":
                not_completed.append(f"{run_id} is {row.status}")
        first, last = soak.cursors.get(schedule_id), final_cursors.get(schedule_id)
        expected = []
        if first is not None and last is not None:
            sched = CronSchedule(trig.cron, trig.timezone or "Etc/UTC")
            expected = [iso_z(t) for t in sched.between(first, last)]
        name = workflow.__name__
        dup = [w for w, n in windows.items() if n > 1]
        if dup:
            problems.append(f"cron {name}: windows with more than one run: {dup[:3]}")
        if set(windows) != set(delivered[path]):
            problems.append(
                f"cron {name}: runs for windows {sorted(windows)} but windows "
                f"delivered {sorted(delivered[path])}"
            )
        lost = sorted(set(expected) - set(windows))
        if lost:
            problems.append(f"cron {name}: {len(lost)} window(s) due but never run: {lost[:3]}")
        if not_completed:
            problems.append(
                f"cron {name}: {len(not_completed)} run(s) did not complete, "
                f"e.g. {not_completed[:2]}"
            )
        report[name] = {
            "expression": trig.cron,
            "runs": sum(windows.values()),
            "windows_due": len(expected),
            "deliveries": sum(delivered[path].values()),
            "redeliveries": sum(n - 1 for n in delivered[path].values()),
        }
    if soak.scheduler_errors:
        problems.append(f"scheduler errors: {soak.scheduler_errors[:3]}")
    return report


def thirds(samples: list[Sample], end: float) -> tuple[list[Sample], list[Sample]]:
    load = [s for s in samples if s.phase == "load"]
    return ([s for s in load if s.at <= end / 3], [s for s in load if s.at > 2 * end / 3])


def drift(soak: Soak) -> list[str]:
    """First third vs last third of the load phase: a verdict per measure."""
    first, last = thirds(soak.samples, soak.args.duration)
    if not first or not last:
        return ["too few samples to judge drift (run longer or sample more often)"]
    lines = []

    def judge(
        name: str,
        a: float | None,
        b: float | None,
        unit: str,
        scale: float,
        ratio: float,
        floor: float,
    ) -> None:
        if a is None or b is None:
            lines.append(f"{name:<22} n/a")
            return
        grew = b > a * ratio and b - a > floor
        verdict = "DRIFT" if grew else "stable"
        change = f"{(b - a) / a * 100:+.0f}%" if a else f"{b - a:+.1f}"
        lines.append(
            f"{name:<22} {a * scale:9.1f} -> {b * scale:9.1f} {unit:<4} ({change:>6})  {verdict}"
        )

    def lat(group: list[Sample], q: float) -> float | None:
        return percentile([x for s in group for x in s.latencies], q)

    def mean(values: list[float]) -> float | None:
        return statistics.fmean(values) if values else None

    judge("latency p50", lat(first, 0.5), lat(last, 0.5), "ms", 1000, 1.5, 0.02)
    judge("latency p95", lat(first, 0.95), lat(last, 0.95), "ms", 1000, 1.5, 0.05)
    judge(
        "backlog (mean)",
        mean([s.backlog for s in first]),
        mean([s.backlog for s in last]),
        "rows",
        1,
        2.0,
        5,
    )
    for proc in ("worker-1", "scheduler", "harness"):
        judge(
            f"RSS {proc}",
            mean([s.rss[proc] for s in first if proc in s.rss]),
            mean([s.rss[proc] for s in last if proc in s.rss]),
            "MB",
            1 / 2**20,
            1.2,
            10 * 2**20,
        )
    lines.append(
        f"{'(host load average)':<22} {mean([s.load_avg for s in first]) or 0:9.1f} -> "
        f"{mean([s.load_avg for s in last]) or 0:9.1f}       context: other processes "
        "on this machine move latency too"
    )
    return lines


def summary(soak: Soak, facts: dict[str, Any], drained: bool) -> list[str]:
    p = soak.producer
    load = [s for s in soak.samples if s.phase == "load"]
    lat = [x for s in soak.samples for x in s.latencies]
    last = soak.samples[-1]
    runs_total = max(facts["runs"], 1)
    restarts = sum(1 for _, k, _ in soak.events if k == "worker")
    out = [
        f"duration {soak.args.duration:.0f} s of load at {soak.args.rate:g} runs/s "
        f"(producer lag max {p.lag_max * 1000:.0f} ms), drain "
        f"{'complete' if drained else 'TIMED OUT'} at {last.at:.1f} s",
        f"runs started {p.total_started} "
        f"({', '.join(f'{k} {n}' for k, n in sorted(p.started.items()))}) "
        f"+ {facts['runs'] - len(p.runs)} cron",
        f"ended by status {dict(sorted(last.statuses.items()))}",
        "by kind: " + "; ".join(f"{k} {dict(v)}" for k, v in facts["by_kind"].items()),
        f"controls {dict(sorted(p.controls.items()))}",
        f"steps applied {facts['steps_applied']} "
        f"({facts['steps_applied'] / max(last.at, 1e-9):.1f}/s over the whole run)",
        f"latency (automatic kinds, n={len(lat)}): p50 {fmt_ms(percentile(lat, 0.5))}, "
        f"p95 {fmt_ms(percentile(lat, 0.95))}, p99 {fmt_ms(percentile(lat, 0.99))}, "
        f"max {fmt_ms(max(lat) if lat else None)}",
        f"backlog max {max(s.backlog for s in soak.samples)} "
        f"(load-phase mean {statistics.fmean([s.backlog for s in load]) if load else 0:.1f})",
        f"restarts: {restarts} worker(s), {soak.scheduler_count - 1} scheduler; worker exit codes "
        f"{sorted(set(c for o, c in soak.exit_codes.items() if o.startswith('worker')), key=str)}",
        f"database {last.db_bytes / 2**20:.1f} MB "
        f"(+{(last.db_bytes - soak.samples[0].db_bytes) / 2**10 / runs_total:.1f} kB/run since "
        f"the first sample); rows {last.rows}",
        "cron: "
        + "; ".join(
            f"{k} ({v['expression']}): {v['runs']} runs, {v['windows_due']} "
            f"windows due, {v['deliveries']} deliveries"
            for k, v in facts["cron"].items()
        ),
    ]
    loads = [s.load_avg for s in soak.samples]
    out.append(
        f"CPU: cron scheduler processes ~{soak.scheduler_cpu:.1f} s, harness "
        f"(producer + sampler) {last.cpu.get('harness', 0):.1f} s; host load average "
        f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} CPUs"
    )
    if p.errors:
        out.append(f"producer errors {len(p.errors)}, e.g. {p.errors[:2]}")
    return out
