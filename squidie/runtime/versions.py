"""Workflow versions side by side: a worker's report that it lacks a run's version.

A worker that claims an attempt of a run whose workflow version it does not define
hands the attempt back (another worker may define it). Before it does, it records
a ``definition_unavailable`` fact, once per distinct report, so ``explain_run``
can say which workflow and version are missing and why (the import error) instead
of "waiting for a worker".
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from squidie.errors import InvalidOption, SquidieError
from squidie.journal import JournalStore
from squidie.model import DefinitionUnavailable, RunState
from squidie.runtime.plan import Plan
from squidie.runtime.writing import COMMIT, Commit, write_run

log = logging.getLogger("squidie.runtime")
UNAVAILABLE = "definition_unavailable"


def unavailable_fact(
    state: RunState, exc: InvalidOption, owner_id: str
) -> DefinitionUnavailable | None:
    """The fact a worker records for ``exc``, or None when ``exc`` is another problem
    (spec runs lacking an action keep their own explanation: the actions required)."""
    details: dict[str, Any] = exc.details
    if details.get("reason") != UNAVAILABLE or state.spec is not None:
        return None
    defined = details.get("defined_versions")
    return DefinitionUnavailable(
        workflow=str(details.get("workflow") or state.workflow),
        version=details.get("version", state.definition_version),
        message=exc.message[:2000],
        import_error=_short(details.get("import_error")),
        defined_versions=list(defined) if isinstance(defined, list) else None,
        owner_id=owner_id,
    )


def note_unavailable(
    store: JournalStore, state: RunState, exc: InvalidOption, owner_id: str, now: datetime
) -> None:
    """Record that this worker cannot run ``state``'s definition (best effort: the
    attempt is handed back whether or not the note is stored). Nothing is written
    when the run already carries the same report."""
    fact = unavailable_fact(state, exc, owner_id)
    if fact is None or state.terminal or _same(state.definition_unavailable, fact):
        return

    def note_unless_noted(plan: Plan) -> Commit | None:
        if plan.state.terminal or _same(plan.state.definition_unavailable, fact):
            return None
        plan.add(fact)
        return COMMIT

    try:
        write_run(store, state.run_id, note_unless_noted, now=now, state=state)
    except SquidieError as error:  # the hand-back matters; the note is a courtesy
        log.warning("could not record definition_unavailable for run %s: %s", state.run_id, error)


def _same(known: dict[str, Any] | None, fact: DefinitionUnavailable) -> bool:
    return known is not None and all(
        known.get(k) == getattr(fact, k)
        for k in ("workflow", "version", "import_error", "defined_versions")
    )


def _short(text: Any) -> str | None:
    return None if text is None else str(text)[:2000]
