"""``Squidie.migrate_run`` (move a live run onto another version of its workflow) and
``Squidie.fork_run`` (run again from a step, reusing what came before)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from squidie.api.checks import check_id
from squidie.errors import InvalidOption
from squidie.journal import JournalStore
from squidie.model import RunState
from squidie.read_model import RunSnapshot
from squidie.runtime.forking import fork
from squidie.runtime.loading import resolve_workflow, workflow_ref
from squidie.runtime.migrating import migrate
from squidie.workflow.quoting import brief


class MigrationMixin:
    """``migrate_run`` and ``fork_run``; mixed into :class:`squidie.Squidie`."""

    store: JournalStore

    def _now(self, now: datetime | None) -> datetime:  # provided by Squidie
        raise NotImplementedError

    def _snapshot(
        self, state: RunState, include_history: bool = False, now: datetime | None = None
    ) -> RunSnapshot:  # provided by Squidie
        raise NotImplementedError

    def migrate_run(
        self,
        run_id: str,
        to: Any,
        *,
        step_map: Mapping[str, str] | None = None,
        actor: str | None = None,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Move a live run (e.g. one paused at an approval) onto workflow class ``to``
        (typically a new version of its workflow); it executes on ``to`` from here on.

        Every step the run completed and every step it is at must map onto a step of
        ``to`` of the same kind, by name or through ``step_map`` (old name -> new
        name). Otherwise ``IncompatibleDefinition`` lists every problem and nothing
        is written. ``InvalidTransition`` when the run has ended. The journal gets a
        ``run_migrated`` fact and the audit trail a ``migrated`` event.
        """
        check_id(run_id, "run_id")
        if actor is not None:
            check_id(actor, "actor")
        renames = dict(step_map or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in renames.items()):
            raise InvalidOption(
                f"step_map must map step names to step names, got {brief(step_map)}"
            )
        compiled = resolve_workflow(to)
        moment = self._now(now)
        state = migrate(
            self.store,
            run_id,
            compiled,
            workflow_ref(to),
            step_map=renames,
            actor=actor,
            now=moment,
        )
        return self._snapshot(state, now=moment)

    def fork_run(
        self,
        run_id: str,
        *,
        from_step: str,
        new_run_id: str | None = None,
        allow_irreversible: bool = False,
        now: datetime | None = None,
    ) -> RunSnapshot:
        """Start a new run that reuses the recorded outputs of the steps ``run_id``
        completed before it first reached ``from_step`` and runs again from there
        (say, past a step that failed). Lineage: the fork's snapshot has
        ``forked_from_run_id`` and ``forked_from_step``; the original's audit trail
        a ``forked`` event. ``UnsafeReplay`` when an irreversible step that ran
        would run again (unless ``allow_irreversible``); ``IncompatibleDefinition``
        when the run's definition changed since it started. ``new_run_id`` makes
        the fork idempotent (CONTRACT §9 calls it ``run_id=``)."""
        check_id(run_id, "run_id")
        check_id(from_step, "from_step")
        if new_run_id is not None:
            check_id(new_run_id, "new_run_id")
        if not isinstance(allow_irreversible, bool):
            raise InvalidOption("allow_irreversible must be a bool")
        moment = self._now(now)
        state = fork(
            self.store,
            run_id,
            from_step=from_step,
            run_id=new_run_id,
            allow_irreversible=allow_irreversible,
            now=moment,
        )
        return self._snapshot(state, now=moment)
