"""A plan: facts decided against a run's state, folded as they are added so each
decision sees the effect of the previous one, then committed in one write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from squidie.events import committed
from squidie.journal import (
    AttemptRecord,
    CommandReceipt,
    Fence,
    Grant,
    JournalStore,
    NewAttempt,
    NewFact,
    RunWrite,
)
from squidie.journal.stored_values import unpadded_b64
from squidie.model import (
    Fact,
    RunnableScheduled,
    RunState,
    UnknownFact,
    encode,
    fold,
    kind_of,
)
from squidie.model.compaction import compact
from squidie.runtime.clock import iso, parse_iso

# Work that must happen around the commit instead of inside one write (a saga
# calls compensations between durable intent and result facts). It receives the
# plan, the store and the fence, and returns the final revision.
Deferred = Callable[["Plan", JournalStore, Fence | None], int]

CHECKPOINT_EVERY = 16  # facts between checkpoints (a step usually writes two)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTerms:
    """The lease of the claim a plan is written under: how long it lasts and how often
    it is renewed. Deferred work that outlives a step (saga compensations) renews it
    the way the step did."""

    lease_for: float
    heartbeat_interval: float | None = None
    owner_id: str | None = None  # who holds the claim (named when its lease is lost)


class Plan:
    """Facts to append to one run, with the state they lead to."""

    def __init__(
        self, state: RunState, now: datetime, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.state = state
        self.now = now
        # Where later writes of deferred work (sagas) take their time from.
        self.clock: Callable[[], datetime] = clock or (lambda: now)
        self.at = iso(now)
        self.base_revision = state.revision
        self.base_status = state.status
        self.base_terminal = state.terminal
        self.facts: list[Fact] = []
        self.deferred: Deferred | None = None
        # Set by the executor when the plan is committed under a claim.
        self.lease: LeaseTerms | None = None
        # Attempts this write claims for the worker that scheduled them (by id).
        self.grants: dict[str, Grant] = {}
        # Waiting attempts of this run the write makes due (steps held for dynamic work).
        self.wake: tuple[str, tuple[str, ...]] | None = None

    def add(self, fact: Fact) -> None:
        """Decide one fact and fold it into the working state (a fact without a time
        happens at the plan's moment)."""
        if fact.at is None and not isinstance(fact, UnknownFact):
            fact = replace(fact, at=self.at)
        fold(self.state, fact, self.state.revision + 1)
        self.facts.append(fact)

    def scheduled(self) -> list[RunnableScheduled]:
        """The attempts this plan scheduled, in order."""
        return [f for f in self.facts if isinstance(f, RunnableScheduled)]

    def new_attempts(self) -> list[NewAttempt]:
        """Dispatch rows for every runnable this plan scheduled."""
        run_id = self.state.run_id
        out = []
        for f in self.scheduled():
            number = attempt_id(run_id, f.key, f.attempt)
            out.append(
                NewAttempt(
                    attempt_id=number,
                    runnable_key=f.key,
                    step=f.step,
                    attempt_number=f.attempt,
                    visible_at=parse_iso(f.visible_at),
                    grant=self.grants.get(number),
                )
            )
        return out

    def stored_facts(self) -> list[NewFact]:
        """The facts as the journal stores them: compacted (a successful attempt with
        its application and route is one fact), then encoded."""
        return [stored_fact(f, self.at) for f in compact(self.facts)]

    def commit(
        self,
        store: JournalStore,
        *,
        fence: Fence | None = None,
        checkpoint: bool = True,
        command: CommandReceipt | None = None,
    ) -> int:
        """Write facts, checkpoint, catalog status, new attempts and (when given) the
        command receipt atomically. A plan that leaves a saga to run is not committed
        here: :func:`squidie.runtime.writing.write_run` runs the saga instead."""
        if self.deferred is not None:
            raise AssertionError("a plan with a saga to run is driven by write_run")
        state = self.state
        facts = self.stored_facts()
        # Folding counted the facts before compaction; the journal numbers stored ones.
        state.revision = self.base_revision + len(facts)
        became_terminal = state.terminal and not self.base_terminal
        snapshot = facts and checkpoint and not state.history and checkpoint_due(state)
        revision = store.write(
            RunWrite(
                run_id=state.run_id,
                expected_revision=self.base_revision,
                now=self.now,
                facts=facts,
                status=state.status if (self.facts or state.status != self.base_status) else None,
                terminal_at=self.now if became_terminal else None,
                checkpoint=state.to_json() if snapshot else None,
                fence=fence,
                new_attempts=self.new_attempts(),
                withdraw_live_attempts=became_terminal,
                command=command,
                queue=state.queue,
                wake=parent_wake(state) if became_terminal else self.wake,
            )
        )
        if snapshot:
            state.checkpoint_revision = revision
        committed(state, self.facts)  # events, now that the write is durable
        return revision


def stored_fact(fact: Fact, at: str) -> NewFact:
    """``fact`` as the journal stores it, written at ``at`` (the write's moment as
    :func:`~squidie.runtime.clock.iso` gives it): its time is left out when it is
    that moment, since the journal records it beside the fact
    (:func:`squidie.model.facts.with_time` gives it back on reads)."""
    data = encode(fact)
    if data.get("at") == at:
        del data["at"]
    return NewFact(kind=kind_of(fact), data=data)


def parent_wake(state: RunState) -> tuple[str, tuple[str, ...]] | None:
    """What a child run's terminal write wakes: its parent's await_children steps."""
    if state.parent_run_id is None or not state.parent_wake:
        return None
    return state.parent_run_id, tuple(state.parent_wake)


def checkpoint_due(state: RunState) -> bool:
    """Whether a write should store a new checkpoint: once ``CHECKPOINT_EVERY`` facts
    have gathered since the last one, so a load folds fewer than that many facts (plus
    one write's) and a step does not rewrite the whole state each time. A run's start
    and its end follow the same rule: a ten-step run stores one checkpoint, not three."""
    return state.revision - state.checkpoint_revision >= CHECKPOINT_EVERY


def attempt_id(run_id: str, key: str, number: int) -> str:
    """Deterministic dispatch id: scheduling the same attempt twice cannot succeed.

    Opaque: ``a2-`` and the first 128 bits of the SHA-256 of an unambiguous
    (length-prefixed) encoding of run id, runnable key and attempt number, in unpadded base64url
    (25 characters in all), so no run id or step name, whatever characters it holds,
    can produce another run's id. Nothing parses it: rows are found by id, or by
    (run id, runnable key, attempt number) with :func:`find_attempt_row`.

    The id sits in the dispatch row and in two of its index entries, written on every
    step: the 67-character ids of the earlier scheme (:func:`sha256_attempt_id`) made
    those entries two and a half times as long.
    """
    # Each part carries its length: unambiguous, and cheaper to build than JSON.
    raw = f"{len(run_id)}:{run_id}{len(key)}:{key}{number}"
    digest = hashlib.sha256(raw.encode()).digest()[:16]
    return ATTEMPT_ID_PREFIX + unpadded_b64(digest)


def idempotency_key(run_id: str, *parts: str) -> str:
    """``ctx.idempotency_key``: the run id and the runnable's key (and, for a
    compensation, ``compensate``), joined by ``:``, each percent-encoded where it
    holds anything but letters, digits and ``_.-~``. Ids made of those (UUIDs, step
    names) read as they are; ids holding a ``:`` cannot make another run's key."""
    return ":".join(quote(p, safe="") for p in (run_id, *parts))


# Marks the current opaque scheme. Ids of the earlier schemes cannot meet it: the
# full-digest ids start with "a1-" and the first ids (``run_id/key/number``) always
# contain a "/", which neither prefix nor base64url ever does.
ATTEMPT_ID_PREFIX = "a2-"


def sha256_attempt_id(run_id: str, key: str, number: int) -> str:
    """The id rows scheduled by releases before the short ids carry: ``a1-`` and the
    SHA-256 of the JSON array ``[run_id, key, number]`` in hex."""
    raw = json.dumps([run_id, key, number], separators=(",", ":"))
    return "a1-" + hashlib.sha256(raw.encode()).hexdigest()


def legacy_attempt_id(run_id: str, key: str, number: int) -> str:
    """The id rows scheduled before opaque ids carry (``run_id/key/number``).

    Within one run's rows it still names one attempt; across runs it was ambiguous,
    which is why new rows no longer use it.
    """
    return f"{run_id}/{key}/{number}"


#: Every id scheme, newest first: a run's rows may hold any of them after an upgrade.
ATTEMPT_ID_SCHEMES = (attempt_id, sha256_attempt_id, legacy_attempt_id)


def find_attempt_row(
    rows: Mapping[str, AttemptRecord], run_id: str, key: str, number: int
) -> AttemptRecord | None:
    """The dispatch row of one attempt among a run's rows keyed by ``attempt_id``,
    whichever id scheme it was scheduled under."""
    for scheme in ATTEMPT_ID_SCHEMES:
        row = rows.get(scheme(run_id, key, number))
        if row is not None:
            return row if row.run_id == run_id else None
    return None


def audit_event(
    kind: str,
    step: str | None,
    at: str,
    *,
    actor: str | None = None,
    comment: str | None = None,
    metadata: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An audit trail entry in the shape inspection shows."""
    return {
        "type": kind,
        "step": step,
        "actor": actor,
        "comment": comment,
        "metadata": metadata or {},
        "occurred_at": at,
        **extra,
    }
