"""Rebuilding a run's state (checkpoint + tail) and finding its definition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from squidie.errors import InvalidOption, WorkflowDefinitionError
from squidie.journal import JournalStore, LoadedRun
from squidie.model import RunState, fold_stored
from squidie.workflow import CompiledWorkflow, Workflow, WorkflowSpec, compile_spec
from squidie.workflow.authored_specs import spec_shape
from squidie.workflow.base import (
    defined_version,
    defined_versions,
    defined_workflow,
    workflow_identity,
)
from squidie.workflow.paths import import_path, workflow_path
from squidie.workflow.quoting import brief

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
        state = fold_stored(state, fact.kind, fact.data, fact.revision, fact.recorded_at)
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
    raise InvalidOption(
        f"unknown workflow {brief(ref)}: expected a Workflow subclass or its dotted import path"
    )


def workflow_ref(ref: Any) -> str:
    """The identity runs of a workflow are catalogued under: a class's ``name`` (its
    dotted path when it sets none); a string as given, or the identity of the class
    defined in this process at that path."""
    if isinstance(ref, type):
        if issubclass(ref, Workflow) and hasattr(ref, "__squidie__"):
            return workflow_identity(ref)
        return workflow_path(ref)
    if isinstance(ref, str):
        local = _defined_at_path(ref)
        return workflow_identity(local) if local is not None else ref
    raise InvalidOption(f"workflow must be a Workflow class or a dotted path, got {brief(ref)}")


def definition_for(state: RunState, action_registry: Mapping[str, Any] | None) -> CompiledWorkflow:
    """The definition a run executes under: its stored spec, or its class."""
    if state.spec is not None:
        if action_registry is None:
            raise InvalidOption(
                f"run {state.run_id} was started from a spec; pass action_registry= to execute_next"
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
                + "; ".join(exc.problems),
                problems=exc.problems,
                run_id=state.run_id,
                reason="definition_unavailable",
            ) from exc
    return run_definition(state.workflow, state.definition_version, run_id=state.run_id)


def _defined_at_path(path: str) -> type[Workflow] | None:
    cls = defined_workflow(path)
    return cls if cls is not None and workflow_path(cls) == path else None


def run_definition(
    workflow: str, version: str | None, *, run_id: str | None = None
) -> CompiledWorkflow:
    """The definition of version ``version`` of ``workflow`` (a run's identity), as
    defined in this process: a class defined under that name and version, or else
    the class importable at that path when it declares that version.

    InvalidOption with ``reason="definition_unavailable"`` (naming the workflow, the
    version, the versions this process does define and the import error, if any)
    when this process does not define it: the caller hands the work back, so a
    worker that defines it can run it.
    """
    import_error = None
    try:
        compiled = resolve_workflow(workflow)
    except InvalidOption as exc:
        import_error = exc.__cause__ or exc
        compiled = None
    if compiled is not None and compiled.spec.version == version:
        return compiled
    cls = defined_version(workflow, version)  # a version defined beside the newest
    if cls is not None:
        return cls.definition()
    available = defined_versions(workflow)
    if compiled is not None and compiled.spec.version not in available:
        available.append(compiled.spec.version)
    detail = {
        "workflow": workflow,
        "version": version,
        "defined_versions": available,
        "import_error": None
        if import_error is None
        else f"{type(import_error).__name__}: {import_error}",
    }
    about = f"run {run_id} " if run_id else ""
    raise InvalidOption(
        f"{about}needs workflow {brief(workflow)} version {brief(version)}, which this "
        f"process does not define (versions defined here: {available or 'none'}"
        + (f"; {detail['import_error']}" if import_error is not None else "")
        + ")",
        reason="definition_unavailable",
        run_id=run_id,
        **detail,
    )


def definition_shape(state: RunState) -> WorkflowSpec:
    """The structure (steps, transitions) a run follows, without resolving a spec
    run's actions: for decisions that do not execute steps."""
    if state.spec is not None:
        return spec_shape(state.spec)
    return run_definition(state.workflow, state.definition_version, run_id=state.run_id).spec
