"""Authoring: the DSL, the normalised spec, validation. Pure: no I/O, no storage."""

from squidie.workflow.authored_specs import compile_spec, validate_spec
from squidie.workflow.base import Step, Workflow
from squidie.workflow.compile import CompiledWorkflow
from squidie.workflow.context import StepContext
from squidie.workflow.dsl import (
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
    wait,
)
from squidie.workflow.outcomes import Fail, Retry
from squidie.workflow.payload import validate_payload
from squidie.workflow.spec import COMPLETE, Outcome, StepKind, StepSpec, WorkflowSpec

__all__ = [
    "COMPLETE",
    "CompiledWorkflow",
    "Fail",
    "Outcome",
    "Retry",
    "Step",
    "StepContext",
    "StepKind",
    "StepSpec",
    "Workflow",
    "WorkflowSpec",
    "approval_step",
    "await_children",
    "compile_spec",
    "cron",
    "deadline",
    "exponential",
    "field",
    "log",
    "manual",
    "pause",
    "retry",
    "step",
    "transition",
    "validate_payload",
    "validate_spec",
    "wait",
]
