"""Read-only views of runs: snapshots, summaries (and later graphs, explanations)."""

from squidie.read_model.inspecting import inspect_run, snapshot, summary
from squidie.read_model.views import RunSnapshot, RunStatus, RunSummary, StepStatus

__all__ = ["RunSnapshot", "RunStatus", "RunSummary", "StepStatus", "inspect_run", "snapshot",
           "summary"]
