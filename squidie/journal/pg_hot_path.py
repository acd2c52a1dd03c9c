"""The statements a worker runs for every step on PostgreSQL, executed straight on
the psycopg connection under SQLAlchemy's transaction.

SQLAlchemy's per-call work (compiling the cache key, processing each bound value,
building the result's metadata) costs about 135 µs per statement on this path,
more than psycopg's own send and parse of the statement; a step runs one to three
of them. These statements are fixed text with fixed parameter names, so nothing
of that work is needed: psycopg prepares each one server-side on its first call.

Errors keep the shape the rest of the store expects: a psycopg error is raised as
SQLAlchemy's ``DBAPIError`` (without bound values; the fixed statement text it keeps
is never shown by ``storage_error``), and a dropped
connection is invalidated, so :func:`squidie.journal.transactions.run_transaction`
retries it as it retries any other statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from squidie.journal.records import (
    AttemptRecord,
    Checkpoint,
    Fact,
    JsonDict,
    LoadedRun,
    NewAttempt,
    NewFact,
    RunRecord,
)
from squidie.journal.schema import SCHEMA_COMPONENT, SCHEMA_GATE_SQL, attempts, runs
from squidie.journal.sql_statements import attempt_json
from squidie.journal.stored_values import encode_json, maybe_utc, refuse_naive

if TYPE_CHECKING:  # psycopg is optional: the SQLite default runs without it
    import psycopg


def execute(conn: Connection, sql: str, params: Mapping[str, Any]) -> psycopg.Cursor[Any]:
    """Run ``sql`` on ``conn``'s psycopg connection (in ``conn``'s transaction, if
    one is open); driver errors are raised as SQLAlchemy's ``DBAPIError``, and a
    naive datetime among ``params`` as a StorageError before anything is sent."""
    import psycopg  # only PostgreSQL stores come here

    refuse_naive(params)
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    try:
        return send(driver, sql, params)
    except psycopg.Error as exc:
        gone = driver.closed or conn.dialect.is_disconnect(cast(Any, exc), conn.connection, None)
        if gone:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            None,
            exc,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=gone,
            dialect=conn.dialect,
        ) from None


def send(
    driver: psycopg.Connection[Any], sql: str, params: Mapping[str, Any]
) -> psycopg.Cursor[Any]:
    """psycopg's execute of a prepared statement (the seam where tests lose a
    connection after the server ran the statement)."""
    return driver.execute(sql, params, prepare=True)


def written(
    facts: Sequence[NewFact], checkpoint: JsonDict | None, attempts: Sequence[NewAttempt]
) -> dict[str, str | None]:
    """The JSON parameters a start and a step's write share: the facts to append, the
    checkpoint (or None) and the new dispatch rows."""
    return {
        "facts": encode_json([{"kind": f.kind, "data": f.data} for f in facts], "fact data"),
        "checkpoint": None if checkpoint is None else encode_json(checkpoint, "a checkpoint"),
        "attempts": encode_json([attempt_json(a) for a in attempts], "a dispatch row"),
    }


_ATTEMPT_COLUMNS = tuple(c.name for c in attempts.c)
_RETURNING = ", ".join(_ATTEMPT_COLUMNS)
_RETURNING_A = ", ".join(f"a.{c}" for c in _ATTEMPT_COLUMNS)


# The parts a run's first write (its start) and a step's write share: each inserts
# only when the row named ``gate`` exists (the run was created, or advanced).
def _append_facts(gate: str) -> str:
    return f"""
    INSERT INTO squidie_journal (run_id, revision, kind, data, recorded_at)
    SELECT %(run_id)s, %(expected)s + f.n, f.fact ->> 'kind', f.fact -> 'data', %(now)s
      FROM jsonb_array_elements(CAST(%(facts)s AS jsonb)) WITH ORDINALITY AS f(fact, n)
     WHERE EXISTS (SELECT 1 FROM {gate})"""


def _put_checkpoint(gate: str) -> str:
    return f"""
    INSERT INTO squidie_checkpoints (run_id, revision, state, updated_at)
    SELECT %(run_id)s, %(revision)s, CAST(%(checkpoint)s AS json), %(now)s
     WHERE CAST(%(checkpoint)s AS text) IS NOT NULL AND EXISTS (SELECT 1 FROM {gate})
    ON CONFLICT (run_id) DO UPDATE
       SET revision = EXCLUDED.revision, state = EXCLUDED.state,
           updated_at = EXCLUDED.updated_at"""


def _add_attempts(gate: str) -> str:
    return f"""
    INSERT INTO squidie_attempts (attempt_id, run_id, queue, runnable_key, step,
                                  attempt_number, status, due_at, visible_at, claims,
                                  owner_id, claim_id, token_hash, claimed_at, lease_expires_at)
    SELECT a.attempt_id, %(run_id)s, %(queue)s, a.runnable_key, a.step, a.attempt_number,
           a.status, a.due_at, a.visible_at, a.claims, a.owner_id, a.claim_id,
           a.token_hash, a.claimed_at, a.lease_expires_at
      FROM jsonb_to_recordset(CAST(%(attempts)s AS jsonb)) AS a(
           attempt_id text, runnable_key text, step text, attempt_number int, status text,
           due_at timestamptz, visible_at timestamptz, claims int, owner_id text,
           claim_id text, token_hash text, claimed_at timestamptz,
           lease_expires_at timestamptz)
     WHERE EXISTS (SELECT 1 FROM {gate})"""


def _announce(gate: str) -> str:
    return f"""CASE WHEN %(announce)s AND EXISTS (SELECT 1 FROM {gate})
            THEN pg_notify(%(channel)s, %(queue)s) END"""


#: A step's write in one statement (data-modifying CTEs): fence the claim, then
#: (only if it held) advance the run's revision, then (only if that matched) update
#: the claim's row (or remove it, when its attempt's outcome took effect), withdraw
#: the run's other live rows (when the write ends the run), append the facts, store
#: the checkpoint, add the dispatch rows and wake idle workers. Returns (claims held,
#: runs advanced, _).
FENCED_APPEND_SQL = f"""WITH held AS (
    SELECT 1 FROM squidie_attempts
     WHERE attempt_id = %(attempt_id)s AND claim_id = %(claim_id)s AND token_hash = %(token_hash)s
       AND status = ANY(%(statuses)s) AND (NOT %(unexpired)s OR lease_expires_at > %(now)s)
       AND {SCHEMA_GATE_SQL}
       FOR UPDATE
), advanced AS (
    UPDATE squidie_runs
       SET revision = %(revision)s, updated_at = %(now)s,
           status = coalesce(CAST(%(status)s AS varchar), status),
           terminal_at = coalesce(CAST(%(terminal_at)s AS timestamptz), terminal_at)
     WHERE run_id = %(run_id)s AND revision = %(expected)s AND EXISTS (SELECT 1 FROM held)
    RETURNING 1
), fenced AS (
    -- A write that ends the run withdraws the claim's own row too when the fence
    -- leaves it live (as withdrawing after fencing would).
    UPDATE squidie_attempts
       SET status = CASE WHEN %(withdraw)s AND %(set_status)s IN ('visible', 'claimed', 'finished')
                         THEN 'withdrawn' ELSE %(set_status)s END,
           finished_at = CASE WHEN %(retire)s OR %(withdraw)s THEN coalesce(finished_at, %(now)s)
                              ELSE finished_at END
     WHERE attempt_id = %(attempt_id)s AND NOT %(remove)s AND EXISTS (SELECT 1 FROM advanced)
), removed AS (
    -- An attempt whose outcome took effect leaves the dispatch table.
    DELETE FROM squidie_attempts
     WHERE attempt_id = %(attempt_id)s AND %(remove)s AND EXISTS (SELECT 1 FROM advanced)
), withdrawn AS (
    UPDATE squidie_attempts
       SET status = 'withdrawn', finished_at = coalesce(finished_at, %(now)s)
     WHERE %(withdraw)s AND run_id = %(run_id)s AND attempt_id <> %(attempt_id)s
       AND status IN ('visible', 'claimed', 'finished') AND EXISTS (SELECT 1 FROM advanced)
), appended AS ({_append_facts("advanced")}
), checkpointed AS ({_put_checkpoint("advanced")}
), added AS ({_add_attempts("advanced")}
)
SELECT (SELECT count(*) FROM held), (SELECT count(*) FROM advanced),
       {_announce("advanced")}
"""

#: A run's start in one statement: its catalog row (unless the id exists, or the
#: schema gate refuses), its first facts, checkpoint and dispatch rows, and the
#: wake-up of idle workers.
#: Returns (runs created, _).
CREATE_RUN_SQL = f"""
WITH created AS (
    INSERT INTO squidie_runs (run_id, workflow, trigger, queue, status, definition_version,
                              parent_run_id, revision, started_at, updated_at, terminal_at)
    SELECT %(run_id)s, %(workflow)s, %(trigger)s, %(queue)s, %(status)s,
           %(definition_version)s, %(parent_run_id)s, %(revision)s, %(now)s,
           %(updated_at)s, %(terminal_at)s
     WHERE {SCHEMA_GATE_SQL}
    ON CONFLICT (run_id) DO NOTHING
    RETURNING 1
), appended AS ({_append_facts("created")}
), checkpointed AS ({_put_checkpoint("created")}
), added AS ({_add_attempts("created")}
)
SELECT (SELECT count(*) FROM created), {_announce("created")}
"""

#: Up to ``n`` due attempts of a queue claimed in one statement, each under its own
#: claim id and token hash (the i-th pair goes to the i-th oldest due row). The
#: locked rows are materialised once, so the LIMIT holds however the join is planned.
CLAIM_MANY_SQL = f"""WITH target AS MATERIALIZED (
    SELECT attempt_id, due_at FROM squidie_attempts
     WHERE queue = %(queue)s AND status IN ('visible', 'claimed', 'finished') AND due_at <= %(now)s
       AND {SCHEMA_GATE_SQL}
     ORDER BY due_at
     LIMIT %(n)s
       FOR UPDATE SKIP LOCKED
), numbered AS (
    SELECT attempt_id, row_number() OVER (ORDER BY due_at, attempt_id) AS n FROM target
), credentials AS (
    SELECT c.claim_id, c.token_hash, c.n
      FROM unnest(CAST(%(claim_ids)s AS text[]), CAST(%(token_hashes)s AS text[]))
           WITH ORDINALITY AS c(claim_id, token_hash, n)
)
UPDATE squidie_attempts AS a
   SET status = CASE WHEN a.status = 'finished' THEN 'finished' ELSE 'claimed' END,
       claim_id = credentials.claim_id, token_hash = credentials.token_hash,
       owner_id = %(owner_id)s, claimed_at = %(now)s, lease_expires_at = %(lease_until)s,
       due_at = %(lease_until)s, claims = a.claims + 1
  FROM numbered JOIN credentials ON credentials.n = numbered.n
 WHERE a.attempt_id = numbered.attempt_id
RETURNING {_RETURNING_A}
"""

#: The claim of the oldest due live attempt of a queue (as ``sql_statements.CLAIM``).
CLAIM_ONE_SQL = f"""
UPDATE squidie_attempts
   SET status = CASE WHEN status = 'finished' THEN 'finished' ELSE 'claimed' END,
       claim_id = %(new_claim_id)s, token_hash = %(new_token_hash)s,
       owner_id = %(new_owner_id)s, claimed_at = %(now)s,
       lease_expires_at = %(lease_until)s, due_at = %(lease_until)s, claims = claims + 1
 WHERE attempt_id = (
    SELECT attempt_id FROM squidie_attempts
     WHERE queue = %(in_queue)s AND status IN ('visible', 'claimed', 'finished')
       AND due_at <= %(now)s AND {SCHEMA_GATE_SQL}
     ORDER BY due_at
     LIMIT 1
       FOR UPDATE SKIP LOCKED)
RETURNING {_RETURNING}
"""

#: The schema version the database records (None without the row).
SCHEMA_VERSION_SQL = f"SELECT version FROM squidie_schema WHERE component = '{SCHEMA_COMPONENT}'"

#: The live attempts of a queue claimed under any of ``claim_ids`` (the retry of a
#: claim whose connection dropped looks for what the first try took).
HELD_SQL = f"""
SELECT {_RETURNING} FROM squidie_attempts
 WHERE queue = %(queue)s AND status IN ('claimed', 'finished')
   AND claim_id = ANY(CAST(%(claim_ids)s AS text[]))
"""

#: A run's load in one statement: its revision, its checkpoint (when it is not
#: ahead of the journal; sent once, on the first row) and every fact after it.
LOAD_SQL = """
SELECT r.revision, c.revision,
       CASE WHEN row_number() OVER (ORDER BY j.revision) = 1 THEN c.state END,
       j.revision, j.kind, j.data, j.recorded_at
  FROM squidie_runs r
  LEFT JOIN squidie_checkpoints c ON c.run_id = r.run_id AND c.revision <= r.revision
  LEFT JOIN squidie_journal j ON j.run_id = r.run_id AND j.revision > coalesce(c.revision, 0)
 WHERE r.run_id = %(run_id)s
 ORDER BY j.revision
"""


_RUN_COLUMNS = tuple(c.name for c in runs.c)
_CATALOG_FILTERS = ("status", "workflow", "queue", "parent_run_id")


def catalog_page(
    filters: Mapping[str, str | None],
    *,
    started_after: datetime | None,
    started_before: datetime | None,
    cursor: tuple[datetime, str] | None,
    limit: int,
) -> tuple[str, dict[str, Any]]:
    """A page of the run catalog, newest first: the statement (one text per set of
    filters given, so each is prepared once) and its values. ``limit`` rows are
    asked for (the caller asks one more than it shows, to know if more follow)."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    for name in _CATALOG_FILTERS:  # each has an index ending in (started_at, run_id)
        if filters.get(name) is not None:
            where.append(f"{name} = %({name})s")
            params[name] = filters[name]
    if started_after is not None:
        where.append("started_at >= %(started_after)s")
        params["started_after"] = started_after
    if started_before is not None:
        where.append("started_at < %(started_before)s")
        params["started_before"] = started_before
    if cursor is not None:
        where.append("(started_at, run_id) < (%(cursor_at)s, %(cursor_id)s)")
        params["cursor_at"], params["cursor_id"] = cursor
    sql = (
        f"SELECT {', '.join(_RUN_COLUMNS)} FROM squidie_runs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY started_at DESC, run_id DESC LIMIT %(limit)s"
    )
    return sql, params


def run_from(row: Sequence[Any]) -> RunRecord:
    """A row of :func:`catalog_page`'s statement as a :class:`RunRecord`."""
    values = dict(zip(_RUN_COLUMNS, row, strict=True))
    for name in ("started_at", "updated_at", "terminal_at"):
        values[name] = maybe_utc(values[name])  # psycopg gives the session's zone
    return RunRecord(**values)


def attempt_from(row: Sequence[Any]) -> AttemptRecord:
    """A row returned by :data:`CLAIM_ONE_SQL` or :data:`CLAIM_MANY_SQL`."""
    values = dict(zip(_ATTEMPT_COLUMNS, row, strict=True))
    for name in ("due_at", "visible_at", "claimed_at", "lease_expires_at", "finished_at"):
        values[name] = maybe_utc(values[name])  # psycopg gives the session's zone
    return AttemptRecord(**values)


def loaded_from(run_id: str, rows: Sequence[Sequence[Any]]) -> LoadedRun | None:
    """The rows of :data:`LOAD_SQL` as a run's load; None when the run is absent."""
    if not rows:
        return None
    _, cp_revision, cp_state, *_ = rows[0]
    checkpoint = (
        None
        if cp_revision is None
        else Checkpoint(run_id=run_id, revision=cp_revision, state=cp_state)
    )
    facts = [
        Fact(run_id=run_id, revision=rev, kind=kind, data=data, recorded_at=at.astimezone(UTC))
        for _, _, _, rev, kind, data, at in rows
        if rev is not None
    ]
    return LoadedRun(run_id=run_id, checkpoint=checkpoint, facts=facts)
