"""Rebuilding a run's state (checkpoint + tail) and finding its definition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from squidie.errors import InvalidOption, WorkflowDefinitionError
from squidie.journal import JournalStore, LoadedRun
from squidie.model import RunState, fold_stored
from squidie.workflow import CompiledWorkflow, Workflow, WorkflowSpec, compile_spec
from squidie.workflow.base import defined_workflow
from squidie.workflow.paths import import_path, workflow_path
from squidie.workflow.quoting import brief
from squidie.workflow.specs import spec_shape

T = TypeVar("T")


def load_state(store: JournalStore, run_id: str, *, history: bool = False) -> RunState:
    """Fold a run from its checkpoint (when valid) and the facts after it.

    With ``history`` the whole journal is folded and finished runnables keep their
    inputs, outputs and attempts (what history views show); that read grows with
    the run. Without it, the cost depends on the run's live work, not its past.
    """
    return fold_loaded(store.load(run_id, use_checkpoint=not history), history=history)


def fold_loaded(loaded: LoadedRun, *, history: bool = False) -> RunState:
    """The state of a loaded run: its checkpoint with the facts after it folded on."""
    state = RunState.from_json(loaded.checkpoint.state) if loaded.checkpoint else None
    if state is not None and loaded.checkpoint is not None:
        state.checkpoint_revision = loaded.checkpoint.revision
    for fact in loaded.facts:
        state = fold_stored(state, fact.kind, fact.data, fact.revision)
        if history:
            state.history = True
    assert state is not None, f"run {loaded.run_id} has no facts"
    return state


_cache: dict[str, CompiledWorkflow] = {}


def resolve_workflow(ref: Any, *, allow_import: bool = True) -> CompiledWorkflow:
    """A workflow class or its dotted path, checked and compiled.

    With ``allow_import=False`` (paths that arrive from outside: signals, cron
    payloads) only workflows already defined in this process are found: a name
    from a message never makes Squidie import, and so run, a module.
    """
    if isinstance(ref, type) and issubclass(ref, Workflow) and hasattr(ref, "__squidie__"):
        return ref.definition()
    if isinstance(ref, str):
        if ref in _cache:
            return _cache[ref]
        local = defined_workflow(ref)
        if local is not None:
            return local.definition()
        if not allow_import:
            raise InvalidOption(
                f"unknown workflow {brief(ref)}: it is not defined in this process; import the "
                "module that defines it first (names from signals and payloads are never "
                "imported)"
            )
        try:
            obj = import_path(ref)
        except ImportError as exc:
            raise InvalidOption(f"unknown workflow {brief(ref)}: cannot import it") from exc
        if isinstance(obj, type) and issubclass(obj, Workflow) and hasattr(obj, "__squidie__"):
            _cache[ref] = obj.definition()
            return _cache[ref]
    raise InvalidOption(f"unknown workflow {brief(ref)}: expected a Workflow subclass or its "
                        "dotted import path")


def workflow_ref(ref: Any) -> str:
    """The dotted path identifying a workflow class or path."""
    if isinstance(ref, type):
        return workflow_path(ref)
    if isinstance(ref, str):
        return ref
    raise InvalidOption(f"workflow must be a Workflow class or a dotted path, got {brief(ref)}")


def definition_for(state: RunState, action_registry: Mapping[str, Any] | None) -> CompiledWorkflow:
    """The definition a run executes under: its stored spec, or its class."""
    if state.spec is not None:
        if action_registry is None:
            raise InvalidOption(
                f"run {state.run_id} was started from a spec; pass action_registry= "
                "to execute_next"
            )
        try:
            return compile_spec(state.spec, action_registry=action_registry)
        except WorkflowDefinitionError as exc:
            # The spec was valid when the run started: what fails now is this worker's
            # registry (an action missing or disabled here). Like a class that cannot be
            # imported, that is this worker's problem, not the run's: the caller hands
            # the attempt back so a worker that holds the action can run it.
            raise InvalidOption(
                f"run {state.run_id} cannot be executed with this worker's action_registry: "
                + "; ".join(exc.problems), problems=exc.problems, run_id=state.run_id,
                reason="definition_unavailable",
            ) from exc
    return resolve_workflow(state.workflow)


def definition_shape(state: RunState) -> WorkflowSpec:
    """The structure (steps, transitions) a run follows, without resolving a spec
    run's actions: for decisions that do not execute steps."""
    if state.spec is not None:
        return spec_shape(state.spec)
    return resolve_workflow(state.workflow).spec
