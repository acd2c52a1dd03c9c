"""``fork_run``: a new run that reuses what an earlier run recorded before a step
and runs again from that step (say, past a step that failed for a reason since
fixed).

The reused steps are those the original completed, in its journal, before it
first reached ``from_step`` (its taken path); their recorded outputs make up the
fork's starting context, a ``run_forked`` fact marks them completed, and
``from_step`` is scheduled at once. Only steps reached again after that run
again; if one of the original's irreversible (or ``compensatable=False``) steps
that ran is not reused, the fork is refused with ``UnsafeReplay`` unless
``allow_irreversible``. Both runs record the lineage: the fork in its
``run_forked`` fact, the original in an audit event ``forked``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from squidie.errors import IncompatibleDefinition, InvalidOption, SquidieError, UnsafeReplay
from squidie.journal import JournalStore
from squidie.model import (
    Audit,
    ManualResolved,
    OutcomeApplied,
    Paused,
    RunForked,
    RunnableScheduled,
    RunState,
    StepCompleted,
)
from squidie.model.compaction import expand
from squidie.model.facts import decode, with_time
from squidie.runtime.loading import load_state, run_definition
from squidie.runtime.plan import Plan, audit_event
from squidie.runtime.replaying import executed_unsafe_steps
from squidie.runtime.starting import start_run
from squidie.runtime.writing import COMMIT, Commit, write_run
from squidie.workflow.portable_json import copy_json


def reused_outputs(
    store: JournalStore, run_id: str, from_step: str
) -> tuple[list[str], dict[str, Any]]:
    """The steps ``run_id`` completed before it first reached ``from_step``, and the
    context their outputs build (InvalidOption if it never reached ``from_step``)."""
    steps_of: dict[str, str] = {}
    reused: list[str] = []
    context: dict[str, Any] = {}
    stored = store.load(run_id, use_checkpoint=False).facts
    for fact in (
        f for s in stored for f in expand(decode(s.kind, with_time(s.data, s.recorded_at)))
    ):
        if isinstance(fact, RunnableScheduled | Paused) and fact.step == from_step:
            return reused, context
        if isinstance(fact, RunnableScheduled):
            steps_of[fact.key] = fact.step
            continue
        done: tuple[str, Any, str | None] | None = None
        if isinstance(fact, StepCompleted) or (isinstance(fact, OutcomeApplied) and fact.ok):
            done = (steps_of.get(fact.key, fact.key), fact.output, fact.output_key)
        elif isinstance(fact, ManualResolved) and fact.ok:
            done = (fact.step, fact.output, fact.output_key)
        if done is not None:
            step, output, key = done
            reused.append(step)
            if key:
                context[key] = copy_json(output or {})
            else:
                context.update(copy_json(output or {}))
    raise InvalidOption(
        f"run {run_id} never reached step {from_step!r}: nothing to fork from",
        run_id=run_id,
        step=from_step,
    )


def fork(
    store: JournalStore,
    source_id: str,
    *,
    from_step: str,
    run_id: str | None,
    allow_irreversible: bool,
    now: datetime,
) -> RunState:
    """Create the fork (idempotent under ``run_id``) and note it on the original."""
    source = load_state(store, source_id, history=True)
    if source.spec is not None:
        raise UnsafeReplay(
            f"run {source_id} was started from a runtime-authored spec; forking "
            "spec runs is not supported",
            run_id=source_id,
        )
    try:
        compiled = run_definition(source.workflow, source.definition_version, run_id=source_id)
    except SquidieError as exc:
        raise IncompatibleDefinition(
            f"cannot fork run {source_id}: {exc.message}", run_id=source_id
        ) from exc
    if compiled.fingerprint != source.fingerprint:
        raise IncompatibleDefinition(
            f"cannot fork run {source_id}: workflow {source.workflow!r} changed since it "
            "started; migrate it, or start a new run",
            run_id=source_id,
        )
    if not compiled.spec.has_step(from_step):
        raise InvalidOption(f"workflow {source.workflow!r} has no step {from_step!r}")
    reused, context = reused_outputs(store, source_id, from_step)
    unsafe = [
        s for s in executed_unsafe_steps(source, store.list_attempts(source_id)) if s not in reused
    ]
    if unsafe and not allow_irreversible:
        raise UnsafeReplay(
            f"forking run {source_id} from {from_step!r} would run irreversible step(s) "
            f"{unsafe} again; pass allow_irreversible=True to fork anyway",
            run_id=source_id,
            steps=unsafe,
        )
    forked = RunForked(from_run_id=source_id, from_step=from_step, reused_steps=reused)
    state, created = start_run(
        store,
        compiled,
        trigger=None,
        payload=source.input,
        queue=source.queue,
        now=now,
        workflow_id=source.workflow,
        run_id=run_id or str(uuid.uuid4()),
        context=context,
        forked=forked,
    )
    if created:

        def note(plan: Plan) -> Commit:
            plan.add(
                Audit(
                    event=audit_event(
                        "forked",
                        from_step,
                        plan.at,
                        metadata={"fork_run_id": state.run_id, "reused_steps": reused},
                    )
                )
            )
            return COMMIT

        write_run(store, source_id, note, now=now)
    return state
