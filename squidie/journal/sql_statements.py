"""The SQL :class:`~squidie.journal.sql_store.SqlStore` runs on its hot path, built
once at import (values are bound per call), and the mappers from result rows to
records: the claim of one attempt, the claim of several, and a step's fenced
append in one statement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Row,
    bindparam,
    case,
    select,
    text,
    update,
)

from squidie.journal.records import (
    AttemptRecord,
    CommandReceipt,
    NewAttempt,
    RunRecord,
)
from squidie.journal.schema import (
    LIVE_STATUSES,
    UtcDateTime,
    attempts,
)


def claim_params(
    queue: str,
    owner_id: str,
    now: datetime,
    lease_until: datetime,
    claim_id: str,
    token_hash: str,
) -> dict[str, Any]:
    """The values bound to :data:`CLAIM` for one claim."""
    return {
        "in_queue": queue,
        "new_owner_id": owner_id,
        "now": now,
        "lease_until": lease_until,
        "new_claim_id": claim_id,
        "new_token_hash": token_hash,
    }


def _claim_statement() -> Any:
    """The claim (built once; values are bound per call): a ``SELECT ... FOR UPDATE
    SKIP LOCKED`` over the partial index of live rows feeding an ``UPDATE ...
    RETURNING``. A row whose outcome is durable but not applied stays ``finished``
    under the new claim."""
    now = bindparam("now", type_=UtcDateTime())
    lease_until = bindparam("lease_until", type_=UtcDateTime())
    target = (
        select(attempts.c.attempt_id)
        .where(
            attempts.c.queue == bindparam("in_queue"),
            attempts.c.status.in_(LIVE_STATUSES),
            attempts.c.due_at <= now,
        )
        .order_by(attempts.c.due_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(attempts)
        .where(attempts.c.attempt_id == target)
        .values(
            status=case((attempts.c.status == "finished", "finished"), else_="claimed"),
            claim_id=bindparam("new_claim_id"),
            token_hash=bindparam("new_token_hash"),
            owner_id=bindparam("new_owner_id"),
            claimed_at=now,
            lease_expires_at=lease_until,
            due_at=lease_until,
            claims=attempts.c.claims + 1,
        )
        .returning(*attempts.c)
    )


CLAIM = _claim_statement()

# Up to :n due attempts claimed in one statement (PostgreSQL), each under its own
# claim id and token hash (the i-th pair goes to the i-th oldest due row). The
# locked rows are materialised once, so the LIMIT holds however the join is planned.
CLAIM_MANY = (
    text("""
WITH target AS MATERIALIZED (
    SELECT attempt_id, due_at FROM squidie_attempts
     WHERE queue = :queue AND status IN ('visible', 'claimed', 'finished') AND due_at <= :now
     ORDER BY due_at
     LIMIT :n
       FOR UPDATE SKIP LOCKED
), numbered AS (
    SELECT attempt_id, row_number() OVER (ORDER BY due_at, attempt_id) AS n FROM target
), credentials AS (
    SELECT c.claim_id, c.token_hash, c.n
      FROM unnest(CAST(:claim_ids AS text[]), CAST(:token_hashes AS text[]))
           WITH ORDINALITY AS c(claim_id, token_hash, n)
)
UPDATE squidie_attempts AS a
   SET status = CASE WHEN a.status = 'finished' THEN 'finished' ELSE 'claimed' END,
       claim_id = credentials.claim_id, token_hash = credentials.token_hash,
       owner_id = :owner_id, claimed_at = :now, lease_expires_at = :lease_until,
       due_at = :lease_until, claims = a.claims + 1
  FROM numbered JOIN credentials ON credentials.n = numbered.n
 WHERE a.attempt_id = numbered.attempt_id
RETURNING a.*
""")
    .bindparams(
        bindparam("now", type_=UtcDateTime()), bindparam("lease_until", type_=UtcDateTime())
    )
    .columns(*attempts.c)
)


# A step's write on PostgreSQL in one statement: fence the claim, then (only if it
# held) advance the run's revision, then (only if that matched) append the facts.
FENCED_APPEND = text("""
WITH held AS (
    SELECT 1 FROM squidie_attempts
     WHERE attempt_id = :attempt_id AND claim_id = :claim_id AND token_hash = :token_hash
       AND status = ANY(:statuses) AND (NOT :unexpired OR lease_expires_at > :now)
       FOR UPDATE
), advanced AS (
    UPDATE squidie_runs
       SET revision = :revision, updated_at = :now,
           status = coalesce(CAST(:status AS varchar), status),
           terminal_at = coalesce(CAST(:terminal_at AS timestamptz), terminal_at)
     WHERE run_id = :run_id AND revision = :expected AND EXISTS (SELECT 1 FROM held)
    RETURNING 1
), fenced AS (
    -- A write that ends the run withdraws the claim's own row too when the fence
    -- leaves it live (as withdrawing after fencing would).
    UPDATE squidie_attempts
       SET status = CASE WHEN :withdraw AND :set_status IN ('visible', 'claimed', 'finished')
                         THEN 'withdrawn' ELSE :set_status END,
           finished_at = CASE WHEN :retire OR :withdraw THEN coalesce(finished_at, :now)
                              ELSE finished_at END
     WHERE attempt_id = :attempt_id AND EXISTS (SELECT 1 FROM advanced)
), withdrawn AS (
    UPDATE squidie_attempts
       SET status = 'withdrawn', finished_at = coalesce(finished_at, :now)
     WHERE :withdraw AND run_id = :run_id AND attempt_id <> :attempt_id
       AND status IN ('visible', 'claimed', 'finished') AND EXISTS (SELECT 1 FROM advanced)
), appended AS (
    INSERT INTO squidie_journal (run_id, revision, kind, data, recorded_at)
    SELECT :run_id, :expected + f.n, f.fact ->> 'kind', f.fact -> 'data', :now
      FROM jsonb_array_elements(CAST(:facts AS jsonb)) WITH ORDINALITY AS f(fact, n)
     WHERE EXISTS (SELECT 1 FROM advanced)
), checkpointed AS (
    INSERT INTO squidie_checkpoints (run_id, revision, state, updated_at)
    SELECT :run_id, :revision, CAST(:checkpoint AS json), :now
     WHERE CAST(:checkpoint AS text) IS NOT NULL AND EXISTS (SELECT 1 FROM advanced)
    ON CONFLICT (run_id) DO UPDATE
       SET revision = EXCLUDED.revision, state = EXCLUDED.state,
           updated_at = EXCLUDED.updated_at
), added AS (
    INSERT INTO squidie_attempts (attempt_id, run_id, queue, runnable_key, step,
                                  attempt_number, status, due_at, visible_at, claims,
                                  owner_id, claim_id, token_hash, claimed_at, lease_expires_at)
    SELECT a.attempt_id, :run_id, :queue, a.runnable_key, a.step, a.attempt_number,
           a.status, a.due_at, a.visible_at, a.claims, a.owner_id, a.claim_id,
           a.token_hash, a.claimed_at, a.lease_expires_at
      FROM jsonb_to_recordset(CAST(:attempts AS jsonb)) AS a(
           attempt_id text, runnable_key text, step text, attempt_number int, status text,
           due_at timestamptz, visible_at timestamptz, claims int, owner_id text,
           claim_id text, token_hash text, claimed_at timestamptz,
           lease_expires_at timestamptz)
     WHERE EXISTS (SELECT 1 FROM advanced)
)
SELECT (SELECT count(*) FROM held), (SELECT count(*) FROM advanced),
       CASE WHEN :announce AND EXISTS (SELECT 1 FROM advanced)
            THEN pg_notify(:channel, :queue) END
""")


def attempt_row(a: NewAttempt, run_id: str, queue: str) -> dict[str, Any]:
    """The dispatch row of a new attempt: visible, or already claimed (a grant)."""
    g = a.grant
    return {
        "attempt_id": a.attempt_id,
        "run_id": run_id,
        "queue": queue,
        "runnable_key": a.runnable_key,
        "step": a.step,
        "attempt_number": a.attempt_number,
        "status": "claimed" if g else "visible",
        "due_at": g.lease_until if g else a.visible_at,
        "visible_at": a.visible_at,
        "claims": 1 if g else 0,
        "owner_id": g.owner_id if g else None,
        "claim_id": g.claim_id if g else None,
        "token_hash": g.token_hash if g else None,
        "claimed_at": a.visible_at if g else None,
        "lease_expires_at": g.lease_until if g else None,
    }


def attempt_json(a: NewAttempt) -> dict[str, Any]:
    """:func:`attempt_row` as JSON (times as ISO 8601 with their offset), for
    statements that insert the rows from one JSON parameter."""
    row = attempt_row(a, "", "")
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in row.items()
        if k not in ("run_id", "queue")
    }


def as_aware(value: datetime) -> datetime:
    """``value`` with UTC attached when the database returned it naive (SQLite)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_record(row: Row[Any]) -> RunRecord:
    """A ``squidie_runs`` row as a :class:`RunRecord`."""
    return RunRecord(
        run_id=row.run_id,
        workflow=row.workflow,
        trigger=row.trigger,
        queue=row.queue,
        status=row.status,
        definition_version=row.definition_version,
        parent_run_id=row.parent_run_id,
        revision=row.revision,
        started_at=row.started_at,
        updated_at=row.updated_at,
        terminal_at=row.terminal_at,
    )


def attempt_record(row: Row[Any]) -> AttemptRecord:
    """A ``squidie_attempts`` row as an :class:`AttemptRecord`."""
    m = row._mapping
    return AttemptRecord(**{c.name: m[c.name] for c in attempts.c})


def receipt_record(row: Row[Any]) -> CommandReceipt:
    """A ``squidie_commands`` row as a :class:`CommandReceipt`."""
    return CommandReceipt(
        idempotency_key=row.idempotency_key,
        signal_type=row.signal_type,
        run_id=row.run_id,
        result=row.result,
        recorded_at=row.recorded_at,
    )
