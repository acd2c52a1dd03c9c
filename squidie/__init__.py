"""Squidie: an embedded durable workflow runtime for Python applications.

Declare workflows as classes, persist runs as append-only journals in your own
database, and drive them from your own workers with ``execute_next``.
"""

import importlib
from typing import Any

from squidie.api import Squidie, configure, connect, mirror
from squidie.errors import (
    ConfigError,
    IncompatibleDefinition,
    InvalidDynamicWork,
    InvalidOption,
    InvalidPayload,
    InvalidSignal,
    InvalidTransition,
    JournalConflict,
    LeaseLost,
    MissingConfig,
    MissingDependency,
    MissingScheduleIdempotencyKey,
    RunIdConflict,
    RunNotFound,
    SquidieError,
    SquidieWarning,
    StorageError,
    UnsafeReplay,
    WorkflowDefinitionError,
)
from squidie.read_model import RunSnapshot, RunStatus, RunSummary, StepStatus
from squidie.read_model.editor import EditorSpec, spec_json_schema
from squidie.workflow import (
    Fail,
    Retry,
    Step,
    StepContext,
    Workflow,
    approval_step,
    await_children,
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
    validate_spec,
    wait,
)
from squidie.workflow.portable_json import register_json_encoder

__version__ = "0.1.0"


# Public names that live in feature modules, imported on first use.
_LAZY = {
    "Signal": "squidie.runtime.signals",
    "SignalType": "squidie.runtime.signals",
    "Scheduler": "squidie.cron",
    "Payload": "squidie.cron",
    "Executor": "squidie.cron",
    "visibility": "squidie.visibility",
    "RunGraph": "squidie.read_model",
    "Explanation": "squidie.read_model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if module.__name__.endswith("." + name) else getattr(module, name)
    found = mirror(name)
    if found is not None:
        return found
    raise AttributeError(f"module 'squidie' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "EditorSpec",
    "Fail",
    "IncompatibleDefinition",
    "InvalidDynamicWork",
    "InvalidOption",
    "InvalidPayload",
    "InvalidSignal",
    "InvalidTransition",
    "JournalConflict",
    "LeaseLost",
    "MissingConfig",
    "MissingDependency",
    "MissingScheduleIdempotencyKey",
    "Retry",
    "RunIdConflict",
    "RunNotFound",
    "RunSnapshot",
    "RunStatus",
    "RunSummary",
    "Squidie",
    "SquidieError",
    "SquidieWarning",
    "Step",
    "StepContext",
    "StepStatus",
    "StorageError",
    "UnsafeReplay",
    "Workflow",
    "WorkflowDefinitionError",
    "approval_step",
    "await_children",
    "configure",
    "connect",
    "cron",
    "deadline",
    "exponential",
    "field",
    "log",
    "manual",
    "pause",
    "register_json_encoder",
    "retry",
    "spec_json_schema",
    "step",
    "transition",
    "validate_spec",
    "wait",
]
