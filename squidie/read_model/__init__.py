"""Read-only views of runs: snapshots, summaries, graphs and explanations."""

from squidie.read_model.explain import Explanation, Reason
from squidie.read_model.graph import RunGraph
from squidie.read_model.inspecting import inspect_run, snapshot, summary
from squidie.read_model.views import RunSnapshot, RunStatus, RunSummary, StepStatus

__all__ = [
    "Explanation",
    "Reason",
    "RunGraph",
    "RunSnapshot",
    "RunStatus",
    "RunSummary",
    "StepStatus",
    "inspect_run",
    "snapshot",
    "summary",
]
