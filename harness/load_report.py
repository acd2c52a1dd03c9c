"""Figures and curves of a load run, from locust's CSV files and the runs' end times."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a locust CSV file (empty when it is missing)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _num(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:  # locust writes "N/A" before the first response
        return 0.0


def last_progress(history: Path) -> dict[str, float] | None:
    """The latest aggregated row of ``*_stats_history.csv``, for progress lines."""
    rows = [r for r in read_csv(history) if r.get("Name") == "Aggregated"]
    if not rows:
        return None
    row = rows[-1]
    return {
        "users": _num(row["User Count"]),
        "rps": _num(row["Requests/s"]),
        "p50": _num(row["50%"]),
        "p95": _num(row["95%"]),
        "requests": _num(row["Total Request Count"]),
        "failures": _num(row["Total Failure Count"]),
    }


def endpoint_table(stats: Path) -> list[dict[str, Any]]:
    """Per-endpoint figures of ``*_stats.csv`` (the ``Aggregated`` row last)."""
    return [
        {
            "name": r["Name"],
            "requests": int(_num(r["Request Count"])),
            "failures": int(_num(r["Failure Count"])),
            "rps": _num(r["Requests/s"]),
            "p50": _num(r["50%"]),
            "p95": _num(r["95%"]),
            "p99": _num(r["99%"]),
        }
        for r in read_csv(stats)
    ]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The endpoint table as fixed-width text."""
    lines = [
        f"{'endpoint':<44} {'reqs':>7} {'fail':>5} {'req/s':>7} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7}"
    ]
    for r in rows:
        lines.append(
            f"{r['name'][:44]:<44} {r['requests']:>7} {r['failures']:>5} "
            f"{r['rps']:>7.1f} {r['p50']:>7.0f} {r['p95']:>7.0f} {r['p99']:>7.0f}"
        )
    return "\n".join(lines)


def load_window(history: Path) -> tuple[float, float] | None:
    """(first, last) wall-clock timestamps of locust's history: when load was applied."""
    stamps = [_num(r["Timestamp"]) for r in read_csv(history) if r.get("Name") == "Aggregated"]
    return (min(stamps), max(stamps)) if stamps else None


def plot(history: Path, terminal_times: Sequence[datetime], started: float, out: Path) -> None:
    """Requests/s, latency percentiles and runs finished over time, into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_csv(history) if r.get("Name") == "Aggregated"]
    t = [_num(r["Timestamp"]) - started for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    top.plot(t, [_num(r["Requests/s"]) for r in rows], label="requests/s")
    top.plot(t, [_num(r["Failures/s"]) for r in rows], label="failures/s", color="tab:red")
    users = top.twinx()
    users.plot(t, [_num(r["User Count"]) for r in rows], color="grey", ls=":", label="users")
    users.set_ylabel("users")
    top.set(title="throughput", ylabel="requests/s")
    top.legend(loc="upper left")
    for pct, colour in (("50%", "tab:green"), ("95%", "tab:orange"), ("99%", "tab:red")):
        middle.plot(t, [_num(r[pct]) for r in rows], label=f"p{pct[:-1]}", color=colour)
    middle.set(title="latency (all endpoints)", ylabel="ms")
    middle.legend(loc="upper left")
    ends = sorted(ts.timestamp() - started for ts in terminal_times)
    bottom.step(ends, range(1, len(ends) + 1), where="post", label="runs finished (cumulative)")
    per_second = _per_second(ends)
    rate = bottom.twinx()
    rate.plot(
        [s + 0.5 for s in range(len(per_second))],
        per_second,
        color="tab:purple",
        alpha=0.6,
        label="runs finished/s",
    )
    rate.set_ylabel("runs/s")
    rate.legend(loc="lower right")
    bottom.set(
        title="runs reaching a terminal status", xlabel="seconds since load start", ylabel="runs"
    )
    bottom.legend(loc="upper left")
    for ax in (top, middle, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _per_second(ends: Sequence[float]) -> list[int]:
    if not ends:
        return []
    buckets = [0] * (int(max(ends)) + 1)
    for end in ends:
        if end >= 0:
            buckets[int(end)] += 1
    return buckets
