"""The resilience chart: completed runs over time, the disruptions marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.resilience_worker import SKEW

# Chart colours per kind of disruption (events without a kind are not drawn); the
# kinds in SPANS are shaded from the event that opens them to the one that closes them.
COLOURS = {
    "worker": "orange",
    "postgres": "red",
    "operator": "tab:blue",
    "skew": "tab:green",
    "cut": "purple",
    "deploy": "tab:brown",
}
SPANS = {
    "operator": "operator controls, retried until accepted",
    "skew": f"a worker {SKEW:g} s fast",
}


def chart(scenario: Any, path: Path) -> None:
    """Completed runs over time with the disruptions drawn as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    if scenario.samples:
        xs, ys, planned = zip(*scenario.samples, strict=True)
        ax.plot(xs, ys, label="completed runs")
        ax.step(
            xs, planned, where="post", linestyle="--", color="grey", alpha=0.6, label="runs started"
        )
    open_spans: dict[str, float] = {}
    last_label: dict[str, float] = {}
    for at, what, kind in scenario.events:
        if kind in SPANS:  # drawn from the event that opens it to the one that closes it
            if kind not in open_spans:
                open_spans[kind] = at
            else:
                ax.axvspan(
                    open_spans.pop(kind), at, color=COLOURS[kind], alpha=0.15, label=SPANS[kind]
                )
            continue
        if kind is None:
            continue
        ax.axvline(at, color=COLOURS[kind], alpha=0.6)
        if at - last_label.get(kind, -10.0) > 1.0:  # one label for a burst of cuts
            words = what.replace("the PostgreSQL postmaster", "postgres").split()
            label = "cut conns" if kind == "cut" else " ".join(words[:2]).rstrip(":")
            ax.text(
                at,
                0.03,
                f" {label}",
                rotation=90,
                fontsize=8,
                va="bottom",
                transform=ax.get_xaxis_transform(),
            )
            last_label[kind] = at
    ax.set(xlabel="seconds", ylabel="runs", title="resilience: progress through disruptions")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
