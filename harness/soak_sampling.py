"""What the soak samples while it runs: process RSS and CPU, backlog, latency,
database size and row counts (one :class:`Sample` per interval)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

import squidie
from harness.soak_workflows import (
    AUTOMATIC,
    CRON_PATHS,
)
from squidie.journal.schema import attempts, runs

TABLES = (
    "squidie_runs",
    "squidie_journal",
    "squidie_checkpoints",
    "squidie_attempts",
    "squidie_commands",
    "squidie_schedules",
)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (psutil when installed, else /proc)."""
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` so far (/proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Sample:
    at: float
    phase: str
    started: int
    statuses: dict[str, int]
    ended_in_interval: int
    backlog: int
    latencies: list[float]
    rss: dict[str, int]
    db_bytes: int
    rows: dict[str, int]
    cron_runs: int
    load_avg: float
    cpu: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        lat = self.latencies
        return {
            "at": round(self.at, 2),
            "phase": self.phase,
            "started": self.started,
            "statuses": self.statuses,
            "ended_in_interval": self.ended_in_interval,
            "backlog": self.backlog,
            "latency_n": len(lat),
            "latency_p50": percentile(lat, 0.5),
            "latency_p95": percentile(lat, 0.95),
            "rss": self.rss,
            "db_bytes": self.db_bytes,
            "rows": self.rows,
            "cron_runs": self.cron_runs,
            "load_avg": self.load_avg,
            "cpu": self.cpu,
        }


class Probe:
    """Reads the database's state for one sample."""

    def __init__(self, url: str) -> None:
        self.sq = squidie.connect(url)
        self.engine = self.sq.store.engine  # type: ignore[attr-defined]
        self.last_wall = datetime.now(UTC)

    def read(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            statuses = dict(
                conn.execute(select(runs.c.status, func.count()).group_by(runs.c.status)).all()
            )
            backlog = conn.execute(
                select(func.count())
                .select_from(attempts)
                .where(attempts.c.status == "visible", attempts.c.due_at <= now)
            ).scalar_one()
            latencies = [
                (t - s).total_seconds()
                for s, t in conn.execute(
                    select(runs.c.started_at, runs.c.terminal_at).where(
                        runs.c.terminal_at > self.last_wall,
                        runs.c.terminal_at <= now,
                        runs.c.status == "completed",
                        runs.c.workflow.in_(AUTOMATIC),
                    )
                )
            ]
            ended = conn.execute(
                select(func.count())
                .select_from(runs)
                .where(runs.c.terminal_at > self.last_wall, runs.c.terminal_at <= now)
            ).scalar_one()
            cron_runs = conn.execute(
                select(func.count())
                .select_from(runs)
                .where(runs.c.workflow.in_(sorted(CRON_PATHS)))
            ).scalar_one()
            db_bytes = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
            rows = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
        self.last_wall = now
        return {
            "statuses": statuses,
            "backlog": backlog,
            "latencies": latencies,
            "ended": ended,
            "cron_runs": cron_runs,
            "db_bytes": int(db_bytes or 0),
            "rows": rows,
        }
