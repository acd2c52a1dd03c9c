"""The soak's picture: latency, RSS and backlog over time with restarts marked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.soak_sampling import percentile

if TYPE_CHECKING:
    from harness.soak import Soak


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def chart(soak: Soak, path: Path) -> None:
    """Throughput, latency, backlog and RSS over time, with the restarts marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ss = soak.samples
    xs = [s.at for s in ss]
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    thr, lat, back, mem = axes
    prev_t, prev_started = 0.0, 0
    started_rate, ended_rate = [], []
    for s in ss:
        dt = max(s.at - prev_t, 1e-9)
        started_rate.append((s.started - prev_started) / dt)
        ended_rate.append(s.ended_in_interval / dt)
        prev_t, prev_started = s.at, s.started
    thr.plot(xs, started_rate, label="started/s")
    thr.plot(xs, ended_rate, label="ended/s")
    thr.set(ylabel="runs/s", title="soak: throughput")
    lat.plot(xs, [1000 * (percentile(s.latencies, 0.5) or float("nan")) for s in ss], label="p50")
    lat.plot(xs, [1000 * (percentile(s.latencies, 0.95) or float("nan")) for s in ss], label="p95")
    lat.set(ylabel="ms", title="end-to-end latency (start -> terminal; automatic kinds)")
    back.plot(xs, [s.backlog for s in ss], label="visible & due attempts")
    back.set(ylabel="rows", title="backlog")
    for proc in sorted({k for s in ss for k in s.rss}):
        mem.plot(
            xs, [s.rss[proc] / 2**20 if proc in s.rss else float("nan") for s in ss], label=proc
        )
    mem.set(ylabel="MB", xlabel="seconds", title="RSS")
    for ax in axes:
        for at, kind, _ in soak.events:
            color = {"worker": "orange", "scheduler": "purple", "drain": "grey"}.get(kind)
            if color:
                ax.axvline(at, color=color, alpha=0.5, linestyle="--" if kind == "drain" else "-")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
