"""The SQLAlchemy Core implementation of :class:`JournalStore` for PostgreSQL and SQLite."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from squidie.errors import (
    InvalidOption,
    JournalConflict,
    LeaseLost,
    RunNotFound,
    SquidieError,
    StorageError,
)
from squidie.journal import pg_hot_path as hot
from squidie.journal.engine import prepare_engine, sqlite_file
from squidie.journal.port import write_each
from squidie.journal.records import (
    AttemptRecord,
    Checkpoint,
    ClaimRequest,
    CommandReceipt,
    Fact,
    Fence,
    LoadedRun,
    NewAttempt,
    NewRun,
    RunPage,
    RunRecord,
    RunWrite,
    decode_cursor,
    due_unheld,
    encode_cursor,
)
from squidie.journal.retention import purge_batch
from squidie.journal.schema import (
    LIVE_STATUSES,
    SCHEMA_VERSION,
    attempts,
    checkpoints,
    commands,
    journal,
    runs,
    schedules,
)
from squidie.journal.schema_upgrades import installed_version, too_new, too_old, upgrade
from squidie.journal.sql_statements import (
    ADVANCE,
    CLAIM,
    FENCE,
    REMOVE,
    SCHEMA_VERSION_QUERY,
    WITHDRAW_LIVE,
    as_aware,
    attempt_record,
    attempt_row,
    claim_params,
    fence_params,
    receipt_record,
    run_record,
)
from squidie.journal.stored_values import utc
from squidie.journal.transactions import run_transaction
from squidie.journal.wakeups import CHANNEL, Wakeups, postgres_listener, sqlite_watcher

T = TypeVar("T")


#: Seconds a thread keeps one pinned connection before it takes a new one.
PIN_MAX_AGE = 60.0
# Connections pinned per pool, by every store sharing it.
_PINS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_PINS_LOCK = threading.Lock()
#: Seconds between the schema checks of a store's empty claims (see
#: ``SqlStore._refuse_other_schema``).
SCHEMA_ASK_EVERY = 1.0


@dataclass
class _Pin:
    """A connection a thread keeps checked out (see :meth:`SqlStore.pinned`)."""

    conn: Connection
    pool: Any
    since: float
    busy: bool = False


def _unpinned(pool: Any) -> None:
    with _PINS_LOCK:
        _PINS[pool] = _PINS.get(pool, 1) - 1


class SqlStore:
    """Durable runs in a relational database through SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        prepare_engine(engine)
        self.engine = engine
        self.dialect = engine.dialect.name
        # Write transactions of this store, finished and in flight (the SQLite
        # watcher tells this process's own changes to the file from others').
        self._writes = [0, 0]
        self._writes_lock = threading.Lock()
        self._count_writes = False  # only a SQLite file's watcher reads the counts
        self.wakeups = Wakeups(self._listener())
        self._pins = threading.local()  # this thread's _Pin, inside pinned()
        self._schema_asked = -SCHEMA_ASK_EVERY  # monotonic time an empty claim last asked

    def _listener(self) -> Callable[[Callable[[str], None], threading.Event], None] | None:
        """How other processes' writes wake this process's idle workers: LISTEN on
        PostgreSQL, a watch of the file on SQLite (none for an in-memory one)."""
        if self.dialect == "postgresql":
            return postgres_listener(self.engine)
        path = sqlite_file(self.engine.url.database, self.engine.url.query)
        if path is None:
            return None
        self._count_writes = True
        store = weakref.ref(self)  # the watcher must not keep the store alive

        def own_writes() -> tuple[int, int] | None:
            alive = store()
            return None if alive is None else alive._write_counts()

        def waiting() -> bool:
            alive = store()
            return alive is not None and alive.wakeups.waiting > 0

        return sqlite_watcher(path, own_writes, waiting)

    def _write_counts(self) -> tuple[int, int]:
        """This store's write transactions: (finished, in flight)."""
        with self._writes_lock:
            return self._writes[0], self._writes[1]

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Within the block, this thread's writes and claims reuse one pooled
        connection instead of checking one out and in for each (a worker thread's
        loop, on PostgreSQL; elsewhere it changes nothing).

        Checking a connection out and in through SQLAlchemy cost about an eighth of
        a worker's client time per step. The connection is taken on first use and
        given back when the thread waits for work, when a call on it fails, after
        :data:`PIN_MAX_AGE` seconds (so the pool's recycling and ``dispose()`` reach
        it) and when the block ends. Only a connection the pool has free right now
        is pinned, and at most the pool's size less two per pool (counted across
        every store on the engine): beyond that a thread checks connections out
        for each call, as it would outside the block.
        """
        if self.dialect != "postgresql" or getattr(self._pins, "on", False):
            yield
            return
        self._pins.on = True
        try:
            yield
        finally:
            self._pins.on = False
            self._unpin()

    def _pin(self) -> _Pin | None:
        """This thread's pinned connection (taken now if need be), or None when the
        thread is not inside :meth:`pinned`, its pin is in use, or none is free."""
        if not getattr(self._pins, "on", False):
            return None
        pin: _Pin | None = getattr(self._pins, "pin", None)
        if pin is not None:
            if pin.busy:
                return None  # nested: the outer call holds it
            fresh = time.monotonic() - pin.since < PIN_MAX_AGE
            if fresh and not (pin.conn.closed or pin.conn.invalidated):
                return pin
            self._unpin()
        pool = self.engine.pool
        size, checkedout = getattr(pool, "size", None), getattr(pool, "checkedout", None)
        if not (callable(size) and callable(checkedout)):
            return None  # not a sized pool: nothing to measure the headroom by
        with _PINS_LOCK:
            if _PINS.get(pool, 0) >= size() - 2 or checkedout() >= size():
                return None
            _PINS[pool] = _PINS.get(pool, 0) + 1
        try:
            pin = _Pin(self.engine.connect(), pool, time.monotonic())
        except Exception:
            _unpinned(pool)
            return None  # the work itself takes a connection and reports the failure
        self._pins.pin = pin
        return pin

    def _unpin(self) -> None:
        """Give this thread's pinned connection back to the pool (if it holds one)."""
        pin: _Pin | None = getattr(self._pins, "pin", None)
        if pin is None:
            return
        self._pins.pin = None
        _unpinned(pin.pool)
        with contextlib.suppress(Exception):  # a broken connection is discarded anyway
            pin.conn.close()

    def wait_for_work(
        self, queue: str, timeout: float, stop: threading.Event | None = None
    ) -> bool:
        """Wait up to ``timeout`` seconds for an attempt to become due on ``queue``
        (woken by writes of this process and, on PostgreSQL, of others). A thread
        that waits holds no pinned connection meanwhile."""
        self._unpin()
        return self.wakeups.wait(queue, timeout, stop)

    def wake_workers(self) -> None:
        """Wake every worker of this process waiting for work (one is stopping)."""
        self.wakeups.notify_all()

    def _announce(
        self, conn: Connection, queue: str, new: Sequence[NewAttempt], now: datetime
    ) -> bool:
        """Inside a write: tell other processes' idle workers (PostgreSQL ``NOTIFY``,
        delivered at commit) when the write makes an attempt due at once that no
        worker holds yet. True when this process's workers should be woken too."""
        if not due_unheld(new, now):
            return False
        if self.dialect == "postgresql":
            conn.execute(
                text("SELECT pg_notify(:channel, :queue)"), {"channel": CHANNEL, "queue": queue}
            )
        return True

    # -- plumbing -----------------------------------------------------------

    def _run(
        self,
        work: Callable[[Connection, bool], T],
        *,
        read_only: bool = False,
        one_statement: bool = False,
    ) -> T:
        """``work(conn, ambiguous)`` in one transaction, retried on a new connection
        if the connection drops (see :mod:`squidie.journal.transactions`).

        ``one_statement``: every statement ``work`` runs is atomic on its own, so on
        PostgreSQL it runs without ``BEGIN``/``COMMIT`` (two round trips less).
        """
        if read_only or not self._count_writes:
            return self._transaction(work, read_only=read_only, one_statement=one_statement)
        with self._writes_lock:
            self._writes[1] += 1
        try:
            return self._transaction(work, read_only=False, one_statement=one_statement)
        finally:
            with self._writes_lock:
                self._writes[0] += 1
                self._writes[1] -= 1

    def _transaction(
        self, work: Callable[[Connection, bool], T], *, read_only: bool, one_statement: bool
    ) -> T:
        autocommit = one_statement and self.dialect == "postgresql"
        pin = None if read_only else self._pin()
        if pin is None:
            return run_transaction(self.engine, work, read_only=read_only, autocommit=autocommit)
        pin.busy = True
        try:
            return run_transaction(self.engine, work, autocommit=autocommit, first=pin.conn)
        except StorageError:
            self._unpin()  # whatever failed, the next call starts on another connection
            raise
        finally:
            pin.busy = False

    def database_now(self) -> datetime:
        """The database server's current time (a read; never a write transaction).

        On SQLite the database lives on this host, so its clock is this host's.
        """
        if self.dialect == "sqlite":
            return datetime.now(UTC)
        value = self._run(
            lambda conn, _: conn.execute(text("SELECT clock_timestamp()")).scalar(), read_only=True
        )
        if not isinstance(value, datetime):
            raise StorageError(f"the database answered {type(value).__name__} for its time")
        return as_aware(value).astimezone(UTC)

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    # -- schema -------------------------------------------------------------

    def install(self) -> None:
        """Create or upgrade the schema in place; idempotent and safe to race."""
        self._run(lambda conn, _: upgrade(conn))

    def schema_version(self) -> int | None:
        """The installed schema version (None when not installed)."""
        return self._run(lambda conn, _: installed_version(conn), read_only=True)

    # -- runs and journals --------------------------------------------------

    def create_run(self, new: NewRun) -> bool:
        """Create a run atomically; False (and nothing written) if the id exists."""
        rec = new.record

        def insert_run(conn: Connection, _ambiguous: bool) -> bool:
            if new.fence is not None:
                self._check_fence(conn, new.fence, rec.started_at)
            else:  # a start writes no fence and no advance, which carry the gate
                self._refuse_other_schema(conn)
            created = conn.execute(
                self._insert(runs)
                .values(
                    run_id=rec.run_id,
                    workflow=rec.workflow,
                    trigger=rec.trigger,
                    queue=rec.queue,
                    status=rec.status,
                    definition_version=rec.definition_version,
                    parent_run_id=rec.parent_run_id,
                    revision=len(new.facts),
                    started_at=rec.started_at,
                    updated_at=rec.updated_at,
                    terminal_at=rec.terminal_at,
                )
                .on_conflict_do_nothing(index_elements=["run_id"])
                .returning(runs.c.run_id)
            ).first()
            if created is None:
                return False
            self._append(conn, rec.run_id, 0, new.facts, rec.started_at)
            if new.checkpoint is not None:
                self._put_checkpoint(
                    conn, rec.run_id, len(new.facts), new.checkpoint, rec.started_at
                )
            self._add_attempts(conn, rec.run_id, rec.queue, new.attempts)
            due[0] = self._announce(conn, rec.queue, new.attempts, rec.started_at)
            return True

        due = [False]
        if self.dialect == "postgresql" and new.fence is None:
            created = self._run(
                lambda conn, _: self._create_in_one(conn, new, due), one_statement=True
            )
        else:
            created = self._run(insert_run)
        if due[0]:
            self.wakeups.notify(rec.queue)
        return created

    def _create_in_one(self, conn: Connection, new: NewRun, due: list[bool]) -> bool:
        """PostgreSQL: a run's creation as one statement (:data:`CREATE_RUN_SQL`); it
        changes nothing when the id exists. Retried after a lost acknowledgement, it
        finds its own run and reports it as existing, as a second start would."""
        rec = new.record
        values = hot.written(new.facts, new.checkpoint, new.attempts)  # refuses bad values
        announce = due_unheld(new.attempts, utc(rec.started_at))
        created, _notified = hot.execute(
            conn,
            hot.CREATE_RUN_SQL,
            {
                "run_id": rec.run_id,
                "workflow": rec.workflow,
                "trigger": rec.trigger,
                "queue": rec.queue,
                "status": rec.status,
                "definition_version": rec.definition_version,
                "parent_run_id": rec.parent_run_id,
                "revision": len(new.facts),
                "now": rec.started_at,
                "updated_at": rec.updated_at,
                "terminal_at": rec.terminal_at,
                "expected": 0,
                **values,
                "announce": announce,
                "channel": CHANNEL,
            },
        ).fetchone() or (0, None)
        if not created:
            self._refuse_other_schema(conn)  # the id exists, or the gate refused
        due[0] = bool(created) and announce
        return bool(created)

    def get_run(self, run_id: str) -> RunRecord | None:
        """The catalog row of a run, if it exists."""
        row = self._run(
            lambda conn, _: conn.execute(select(runs).where(runs.c.run_id == run_id)).first(),
            read_only=True,
        )
        return run_record(row) if row else None

    def run_statuses(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The catalog status of each existing run of ``run_ids``, in one read."""
        ids = list(dict.fromkeys(run_ids))

        def read_statuses(conn: Connection, _ambiguous: bool) -> dict[str, str]:
            out: dict[str, str] = {}
            for start in range(0, len(ids), 500):  # bounded IN lists
                rows = conn.execute(
                    select(runs.c.run_id, runs.c.status).where(
                        runs.c.run_id.in_(ids[start : start + 500])
                    )
                )
                out.update({str(r[0]): str(r[1]) for r in rows})
            return out

        return self._run(read_statuses, read_only=True) if ids else {}

    def load(self, run_id: str, *, use_checkpoint: bool = True) -> LoadedRun:
        """A run's checkpoint (if valid and wanted) and every fact after it;
        RunNotFound if absent."""
        return self._run(lambda conn, _: self._load(conn, run_id, use_checkpoint), read_only=True)

    def _load(self, conn: Connection, run_id: str, use_checkpoint: bool) -> LoadedRun:
        """``load`` inside an open transaction."""
        revision = conn.execute(select(runs.c.revision).where(runs.c.run_id == run_id)).scalar()
        if revision is None:
            raise RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
        cp_row = (
            conn.execute(
                select(checkpoints.c.revision, checkpoints.c.state).where(
                    checkpoints.c.run_id == run_id
                )
            ).first()
            if use_checkpoint
            else None
        )
        checkpoint = None
        # A checkpoint ahead of the journal is not believed: the journal is the truth.
        if cp_row is not None and cp_row.revision <= revision:
            checkpoint = Checkpoint(run_id=run_id, revision=cp_row.revision, state=cp_row.state)
        after = checkpoint.revision if checkpoint else 0
        rows = conn.execute(
            select(journal)
            .where(journal.c.run_id == run_id, journal.c.revision > after)
            .order_by(journal.c.revision)
        ).all()
        facts = [
            Fact(
                run_id=run_id,
                revision=r.revision,
                kind=r.kind,
                data=r.data,
                recorded_at=as_aware(r.recorded_at),
            )
            for r in rows
        ]
        return without_gaps(LoadedRun(run_id=run_id, checkpoint=checkpoint, facts=facts))

    def _load_claimed(self, conn: Connection, run_id: str) -> LoadedRun:
        """The load of a run whose attempt was just claimed, inside the claim's
        transaction: on PostgreSQL one statement, straight on the driver."""
        if self.dialect != "postgresql":
            return self._load(conn, run_id, True)
        loaded = hot.loaded_from(
            run_id, hot.execute(conn, hot.LOAD_SQL, {"run_id": run_id}).fetchall()
        )
        if loaded is None:
            raise RunNotFound(f"no run with id {run_id!r}", run_id=run_id)
        return without_gaps(loaded)

    def write(self, write: RunWrite) -> int:
        """Apply one atomic write; returns the new revision."""
        return self._write_one(write, ambiguous=False)

    def _write_one(self, write: RunWrite, *, ambiguous: bool) -> int:
        """:meth:`write`; ``ambiguous``: an earlier try may have committed it, so look
        for its own evidence first."""
        woken: list[str] = []
        single = self._one_statement(write)
        revision = self._run(
            lambda conn, dropped: self._write(conn, write, ambiguous or dropped, woken, single),
            one_statement=single,
        )
        for queue in set(woken):
            self.wakeups.notify(queue)
        return revision

    def _write(
        self, conn: Connection, write: RunWrite, ambiguous: bool, woken: list[str], single: bool
    ) -> int:
        revision = write.expected_revision + len(write.facts)
        if ambiguous and self._already_written(conn, write):
            return revision
        if write.command is not None:
            self._insert_receipt(conn, write.command, write.run_id)
        if single:
            # A step's write: fence, revision check, append, checkpoint and the
            # successors' dispatch rows in one round trip.
            if self._fenced_append(conn, write, revision):
                woken.append(str(write.queue))
            return revision
        self._fence_then_append(conn, write, revision)
        if write.checkpoint is not None:
            self._put_checkpoint(conn, write.run_id, revision, write.checkpoint, write.now)
        if write.new_attempts:
            queue = (
                write.queue
                or conn.execute(
                    select(runs.c.queue).where(runs.c.run_id == write.run_id)
                ).scalar_one()
            )
            self._add_attempts(conn, write.run_id, queue, write.new_attempts)
            if self._announce(conn, queue, write.new_attempts, write.now):
                woken.append(queue)
        if write.wake is not None:
            woken.extend(self._wake(conn, *write.wake, write.now))
        return revision

    def groups_writes(self) -> bool:
        """Whether :meth:`write_many` commits several steps' writes in one transaction
        (PostgreSQL); elsewhere it writes them one by one."""
        return self.dialect == "postgresql"

    def write_many(
        self, writes: Sequence[RunWrite], *, claim: ClaimRequest | None = None
    ) -> tuple[list[int | SquidieError], list[tuple[AttemptRecord, LoadedRun]]]:
        """Several runs' writes; for each, its new revision or the error its own
        write would have raised (LeaseLost, JournalConflict, RunNotFound); then,
        with ``claim``, up to ``len(claim.credentials)`` due attempts claimed and
        their runs loaded.

        On PostgreSQL, steps' writes (:meth:`_one_statement`) commit together with
        the claim in one transaction (group commit): each is its own
        :data:`FENCED_APPEND`, which changes nothing when its fence or revision
        check fails, so one member's failed check leaves the others to commit. They
        run in run id order, so two batches touching the same runs lock them in the
        same order. Any other error rolls the batch back and its writes are then made
        one by one (claiming nothing), each first looking for its own evidence (the
        batch may have committed before the connection dropped).
        """
        if (
            self.dialect != "postgresql"
            or not writes
            or not all(self._one_statement(w) for w in writes)
        ):
            return write_each(self, writes, claim)
        if len(writes) == 1 and (claim is None or not claim.credentials):
            return [self._write_or_error(writes[0])], []
        order = sorted(range(len(writes)), key=lambda i: (writes[i].run_id, i))
        woken: list[str] = []

        def write_group(
            conn: Connection, ambiguous: bool
        ) -> tuple[dict[int, int | SquidieError], list[tuple[AttemptRecord, LoadedRun]]]:
            woken.clear()
            out: dict[int, int | SquidieError] = {}
            for i in order:
                write = writes[i]
                try:
                    out[i] = self._write(conn, write, ambiguous, woken, True)
                except (LeaseLost, JournalConflict, RunNotFound) as exc:
                    out[i] = exc  # its CTE changed nothing: the others go on
            claimed: list[tuple[AttemptRecord, LoadedRun]] = []
            if claim is not None and claim.credentials and not ambiguous:
                claimed = self._claim_many(conn, claim)
            return out, claimed

        try:
            results, claimed = self._run(write_group)
        except SquidieError:
            return [self._write_or_error(w, ambiguous=True) for w in writes], []
        for queue in set(woken):
            self.wakeups.notify(queue)
        return [results[i] for i in range(len(writes))], claimed

    def _write_or_error(self, write: RunWrite, *, ambiguous: bool = False) -> int | SquidieError:
        """:meth:`write` of one member of a batch: the error its write raised is
        returned instead (``ambiguous``: look for the write's own evidence first)."""
        try:
            return self._write_one(write, ambiguous=ambiguous)
        except SquidieError as exc:
            return exc

    def _one_statement(self, write: RunWrite) -> bool:
        """Whether ``write`` is a step's write that PostgreSQL does as one statement
        (:data:`FENCED_APPEND`): fenced, without a command receipt, waking no other run."""
        return (
            self.dialect == "postgresql"
            and write.fence is not None
            and write.command is None
            and write.wake is None
            and bool(write.facts or write.status)
            and (write.queue is not None or not write.new_attempts)
        )

    def _wake(
        self, conn: Connection, run_id: str, keys: tuple[str, ...], now: datetime
    ) -> list[str]:
        """Make ``run_id``'s waiting attempts of ``keys`` due at ``now`` (rows that are
        claimed, finished or due already are left alone); returns their queues."""
        stmt = (
            update(attempts)
            .where(
                attempts.c.run_id == run_id,
                attempts.c.runnable_key.in_(keys),
                attempts.c.status == "visible",
                attempts.c.due_at > now,
            )
            .values(due_at=now)
            .returning(attempts.c.queue)
        )
        queues = sorted(set(conn.execute(stmt).scalars()))
        for queue in queues:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_notify(:channel, :queue)"), {"channel": CHANNEL, "queue": queue}
                )
        return queues

    def _fence_then_append(self, conn: Connection, write: RunWrite, revision: int) -> None:
        """Fence, withdrawals, revision check and append, one statement each."""
        if write.fence is not None:
            self._check_fence(conn, write.fence, write.now)
        if write.withdraw_live_attempts:
            conn.execute(WITHDRAW_LIVE, {"w_run_id": write.run_id, "w_now": write.now})
        if write.facts or write.status is not None:
            self._advance_run(conn, write, revision)
            self._append(conn, write.run_id, write.expected_revision, write.facts, write.now)

    def _fenced_append(self, conn: Connection, write: RunWrite, revision: int) -> bool:
        """PostgreSQL: the whole of a step's write as one statement (data-modifying
        CTEs): the fence check (locking the claim's row), the revision check, then
        the fence's update, the withdrawal of the run's other live attempts (when
        the write ends the run), the append, the checkpoint, the new dispatch rows
        and the wake-up of other processes' idle workers. Every change depends on both
        checks, so a failed check changes nothing even without a transaction around
        the statement; the counts tell which check failed. True when this process's
        idle workers should be woken too (an attempt due now that no worker holds)."""
        fence = write.fence
        assert fence is not None
        announce = due_unheld(write.new_attempts, write.now)
        queue = write.queue or ""
        fenced, advanced, _notified = hot.execute(
            conn,
            hot.FENCED_APPEND_SQL,
            {
                "attempt_id": fence.attempt_id,
                "claim_id": fence.claim_id,
                "token_hash": fence.token_hash,
                "statuses": list(fence.statuses),
                "set_status": fence.set_status,
                "retire": fence.set_status != "claimed",
                "remove": fence.removes,
                "unexpired": fence.unexpired,
                "now": write.now,
                "run_id": write.run_id,
                "expected": write.expected_revision,
                "revision": revision,
                "status": write.status,
                "terminal_at": write.terminal_at,
                **hot.written(write.facts, write.checkpoint, write.new_attempts),
                "queue": queue,
                "announce": announce,
                "channel": CHANNEL,
                "withdraw": write.withdraw_live_attempts,
            },
        ).fetchone() or (0, 0, None)
        if not fenced:
            self._refuse_other_schema(conn)
            raise LeaseLost(
                f"attempt {fence.attempt_id!r} is no longer held by this claim",
                attempt_id=fence.attempt_id,
            )
        if not advanced:
            self._revision_conflict(conn, write)
        return announce

    def _insert_receipt(self, conn: Connection, receipt: CommandReceipt, run_id: str) -> None:
        # First in the transaction: a concurrent writer with the same key waits on
        # the key's index entry, then fails here and rolls its whole write back.
        try:
            conn.execute(
                insert(commands).values(
                    idempotency_key=receipt.idempotency_key,
                    signal_type=receipt.signal_type,
                    run_id=receipt.run_id,
                    result=receipt.result,
                    recorded_at=receipt.recorded_at,
                )
            )
        except IntegrityError:
            # Not chained: the driver's text would carry the SQL and its values.
            raise JournalConflict(
                f"command {receipt.idempotency_key!r} was already applied",
                run_id=run_id,
                idempotency_key=receipt.idempotency_key,
            ) from None

    def _already_written(self, conn: Connection, write: RunWrite) -> bool:
        """After a connection dropped during ``COMMIT``: did that commit land?

        Only a fenced write can tell, and only from evidence no one else can
        leave: its own claim (claim id + token hash) moved to its ``set_status``
        (or, for a write that removes the row, no row of the attempt is left) and,
        when it appended facts, its first fact at the next revision with its own
        kind and timestamp. Then the write is done and is not repeated.
        Otherwise (or for an unfenced write) the write runs again and its fence
        or expected revision fails if the first try did commit, so nothing is
        ever applied twice.
        """
        fence = write.fence
        if fence is None:
            return False
        if fence.removes:
            # Another writer may have removed the row too (after taking the claim
            # over): only this write's own first fact tells.
            left = conn.execute(
                select(attempts.c.status).where(attempts.c.attempt_id == fence.attempt_id)
            ).first()
            if left is not None or not write.facts:
                return False
        else:
            status = conn.execute(
                select(attempts.c.status).where(
                    attempts.c.attempt_id == fence.attempt_id,
                    attempts.c.claim_id == fence.claim_id,
                    attempts.c.token_hash == fence.token_hash,
                )
            ).scalar()
            if status != fence.set_status:
                return False
            if not write.facts:
                return True
        first = conn.execute(
            select(journal.c.kind, journal.c.data, journal.c.recorded_at).where(
                journal.c.run_id == write.run_id,
                journal.c.revision == write.expected_revision + 1,
            )
        ).first()
        if first is None or first.kind != write.facts[0].kind:
            return False
        # Its own moment, and (where the fact names them) its own attempt, claim and
        # owner: a rescuer's write of the same kind differs in its claim id (a
        # recorded outcome's apply, in the owner and claim count it carries).
        mine = write.facts[0].data
        return as_aware(first.recorded_at) == write.now and all(
            first.data.get(name) == mine.get(name) for name in _OWN_FACT_KEYS
        )

    def _check_fence(self, conn: Connection, fence: Fence, now: datetime) -> None:
        # A fence to any status but "claimed" retires the row: its attempt ended now;
        # one that applies the attempt's outcome removes it.
        if fence.removes:
            statement = REMOVE[fence.unexpired]
        else:
            statement = FENCE[fence.unexpired, fence.set_status != "claimed"]
        result = conn.execute(statement, fence_params(fence, now))
        if result.rowcount != 1:
            self._refuse_other_schema(conn)
            # No claim id or token hash here: errors get logged, and those two
            # together are the whole fence credential.
            raise LeaseLost(
                f"attempt {fence.attempt_id!r} is no longer held by this claim",
                attempt_id=fence.attempt_id,
            )

    def _refuse_other_schema(self, conn: Connection, *, empty_claim: bool = False) -> None:
        """Raise SchemaTooNew (or SchemaTooOld) when the database records another
        schema version than this release's: the gate in every claim and fence then
        refuses this release's, so an empty claim or a refused fence may mean that
        rather than no work or a lost lease. A refused
        fence always asks (one read of a one-row table); empty claims, which idle
        workers make all the time, ask at most every ``SCHEMA_ASK_EVERY`` seconds
        (the gate itself is in the statements, so nothing depends on asking)."""
        if empty_claim:
            now = time.monotonic()
            if now - self._schema_asked < SCHEMA_ASK_EVERY:
                return
            self._schema_asked = now
        if self.dialect == "postgresql":
            row = hot.execute(conn, hot.SCHEMA_VERSION_SQL, {}).fetchone()
            version = None if row is None else row[0]
        else:
            version = conn.execute(SCHEMA_VERSION_QUERY).scalar()
        if version is not None and version > SCHEMA_VERSION:
            raise too_new(version)
        if version is not None and version < SCHEMA_VERSION:
            raise too_old(version)

    def _advance_run(self, conn: Connection, write: RunWrite, revision: int) -> None:
        result = conn.execute(
            ADVANCE[write.status is not None, write.terminal_at is not None],
            {
                "a_run_id": write.run_id,
                "a_expected": write.expected_revision,
                "a_revision": revision,
                "a_now": write.now,
                "a_status": write.status,
                "a_terminal_at": write.terminal_at,
            },
        )
        if result.rowcount != 1:
            self._refuse_other_schema(conn)  # the gate refused, rather than the revision
            self._revision_conflict(conn, write)

    def _revision_conflict(self, conn: Connection, write: RunWrite) -> NoReturn:
        """RunNotFound, or JournalConflict naming the revision the run is at."""
        current = conn.execute(
            select(runs.c.revision).where(runs.c.run_id == write.run_id)
        ).scalar()
        if current is None:
            raise RunNotFound(f"no run with id {write.run_id!r}", run_id=write.run_id)
        raise JournalConflict(
            f"run {write.run_id!r} is at revision {current}, not {write.expected_revision}",
            run_id=write.run_id,
            expected=write.expected_revision,
            actual=current,
        )

    def _append(self, conn: Connection, run_id: str, after: int, facts: Any, now: datetime) -> None:
        if not facts:
            return
        conn.execute(
            insert(journal),
            [
                {
                    "run_id": run_id,
                    "revision": after + i,
                    "kind": f.kind,
                    "data": dict(f.data),
                    "recorded_at": now,
                }
                for i, f in enumerate(facts, start=1)
            ],
        )

    def _put_checkpoint(
        self,
        conn: Connection,
        run_id: str,
        revision: int,
        state: dict[str, Any],
        now: datetime,
    ) -> None:
        stmt = self._insert(checkpoints).values(
            run_id=run_id, revision=revision, state=state, updated_at=now
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id"],
                set_={"revision": revision, "state": state, "updated_at": now},
            )
        )

    def _add_attempts(self, conn: Connection, run_id: str, queue: str, new: Any) -> None:
        rows: list[NewAttempt] = list(new)
        if not rows:
            return
        conn.execute(insert(attempts), [attempt_row(a, run_id, queue) for a in rows])

    # -- dispatch -----------------------------------------------------------

    def claim(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        claim_id: str,
        token_hash: str,
    ) -> AttemptRecord | None:
        """Claim the oldest due live attempt of ``queue`` (visible, or lease expired).

        One statement: a ``SELECT ... FOR UPDATE SKIP LOCKED`` over the partial
        index of live rows feeding an ``UPDATE ... RETURNING``. A row whose
        outcome is durable but not applied stays ``finished`` under the new claim.
        """
        params = claim_params(queue, owner_id, now, lease_until, claim_id, token_hash)

        def claim_one(conn: Connection, _: bool) -> AttemptRecord | None:
            row = conn.execute(CLAIM, params).first()
            if row is None:
                self._refuse_other_schema(conn, empty_claim=True)
            return None if row is None else attempt_record(row)

        return self._run(claim_one)

    def claim_and_load(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        claim_id: str,
        token_hash: str,
    ) -> tuple[AttemptRecord, LoadedRun] | None:
        """``claim`` and ``load`` of the claimed attempt's run, with one commit.

        On PostgreSQL the claim commits as it runs and the load follows on the same
        connection (no ``BEGIN``/``COMMIT`` round trips); elsewhere both run in one
        transaction. When the connection drops after the claim committed (during
        the load, say), the retry takes back the attempt its claim id and token hash
        hold instead of claiming another; a load that fails otherwise leaves the
        attempt to run out its lease, as a worker that dies right after claiming does."""
        params = claim_params(queue, owner_id, now, lease_until, claim_id, token_hash)

        def claimed(conn: Connection, ambiguous: bool) -> AttemptRecord | None:
            if self.dialect != "postgresql":
                row = conn.execute(CLAIM, params).first()
                return None if row is None else attempt_record(row)
            if ambiguous and (held := self._held(conn, queue, [(claim_id, token_hash)])):
                return held[0]  # the earlier try's claim committed: take it back
            raw = hot.execute(conn, hot.CLAIM_ONE_SQL, params).fetchone()
            return None if raw is None else hot.attempt_from(raw)

        def claim_one(conn: Connection, ambiguous: bool) -> tuple[AttemptRecord, LoadedRun] | None:
            record = claimed(conn, ambiguous)
            if record is None:
                self._refuse_other_schema(conn, empty_claim=True)
                return None
            return record, self._load_claimed(conn, record.run_id)

        return self._run(claim_one, one_statement=True)

    def claim_many_and_load(
        self,
        *,
        queue: str,
        owner_id: str,
        now: datetime,
        lease_until: datetime,
        credentials: Sequence[tuple[str, str]],
    ) -> list[tuple[AttemptRecord, LoadedRun]]:
        """Claim up to ``len(credentials)`` due attempts of ``queue`` in one statement
        (each under a claim of its own: ``credentials`` are (claim id, token hash)
        pairs) and load their runs; oldest due first.

        PostgreSQL claims them with one ``FOR UPDATE SKIP LOCKED ... LIMIT n`` that
        commits as it runs, then loads the runs (as :meth:`claim_and_load`); other
        databases claim one (SQLite has one writer: there is nothing to share out).
        """
        if not credentials:
            return []
        if self.dialect != "postgresql" or len(credentials) == 1:
            claim_id, token_hash = credentials[0]
            one = self.claim_and_load(
                queue=queue,
                owner_id=owner_id,
                now=now,
                lease_until=lease_until,
                claim_id=claim_id,
                token_hash=token_hash,
            )
            return [] if one is None else [one]
        request = ClaimRequest(
            queue=queue,
            owner_id=owner_id,
            now=now,
            lease_until=lease_until,
            credentials=credentials,
        )
        return self._run(
            lambda conn, ambiguous: self._claim_many(conn, request, ambiguous=ambiguous),
            one_statement=True,
        )

    def _held(
        self, conn: Connection, queue: str, credentials: Sequence[tuple[str, str]]
    ) -> list[AttemptRecord]:
        """PostgreSQL: the live attempts of ``queue`` claimed under ``credentials``:
        what an earlier try's claim took if it committed before its connection
        dropped (claim ids are never reused, and the token hash must match too)."""
        wanted = set(credentials)
        rows = hot.execute(
            conn, hot.HELD_SQL, {"queue": queue, "claim_ids": [c for c, _ in credentials]}
        ).fetchall()
        return [a for a in map(hot.attempt_from, rows) if (a.claim_id, a.token_hash) in wanted]

    def _claim_many(
        self, conn: Connection, claim: ClaimRequest, *, ambiguous: bool = False
    ) -> list[tuple[AttemptRecord, LoadedRun]]:
        """PostgreSQL: :data:`CLAIM_MANY` and the claimed runs' loads, on ``conn``
        (in the transaction of a group commit, if one is open); oldest due first.
        ``ambiguous``: an earlier try's claim may have committed; what it holds is
        taken back, and nothing more is claimed, when it did."""
        params = {
            "queue": claim.queue,
            "owner_id": claim.owner_id,
            "now": claim.now,
            "lease_until": claim.lease_until,
            "n": len(claim.credentials),
            "claim_ids": [c for c, _ in claim.credentials],
            "token_hashes": [t for _, t in claim.credentials],
        }
        # The i-th credential went to the i-th oldest due row; a claimed row's due_at
        # is its lease end, so the credentials' order is what keeps oldest first.
        position = {claim_id: i for i, (claim_id, _) in enumerate(claim.credentials)}
        held = self._held(conn, claim.queue, claim.credentials) if ambiguous else []
        records = sorted(
            held or (hot.attempt_from(r) for r in hot.execute(conn, hot.CLAIM_MANY_SQL, params)),
            key=lambda a: position[str(a.claim_id)],
        )
        if not records:
            self._refuse_other_schema(conn, empty_claim=True)
        return [(a, self._load_claimed(conn, a.run_id)) for a in records]

    def heartbeat(
        self,
        *,
        attempt_id: str,
        claim_id: str,
        token_hash: str,
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        """Extend a lease still held by this claim; False when it is lost."""
        # Idempotent, so safe to retry after a lost COMMIT: the lease it extended
        # is still unexpired at ``now`` and is extended to the same end again.
        stmt = (
            update(attempts)
            .where(
                attempts.c.attempt_id == attempt_id,
                attempts.c.claim_id == claim_id,
                attempts.c.token_hash == token_hash,
                # "finished": an outcome being applied still runs code (a saga's
                # compensations) under the claim, so its lease is kept alive too.
                attempts.c.status.in_(("claimed", "finished")),
                attempts.c.lease_expires_at > now,
            )
            .values(lease_expires_at=lease_until, due_at=lease_until)
        )
        rowcount: int = self._run(lambda conn, _: conn.execute(stmt).rowcount)
        return rowcount == 1

    def release(
        self, *, attempt_id: str, claim_id: str, token_hash: str, visible_at: datetime
    ) -> bool:
        """Hand a claimed attempt back (visible again at ``visible_at``, which the row
        keeps: a later claim can tell a handed-back attempt from one whose lease ran
        out); False when the claim was no longer held."""
        stmt = (
            update(attempts)
            .where(
                attempts.c.attempt_id == attempt_id,
                attempts.c.claim_id == claim_id,
                attempts.c.token_hash == token_hash,
                attempts.c.status == "claimed",
            )
            .values(
                status="visible",
                due_at=visible_at,
                visible_at=visible_at,
                claim_id=None,
                token_hash=None,
                owner_id=None,
                lease_expires_at=None,
            )
        )
        rowcount: int = self._run(lambda conn, _: conn.execute(stmt).rowcount)
        return rowcount == 1

    def list_attempts(self, run_id: str, *, live_only: bool = False) -> list[AttemptRecord]:
        """Every dispatch row of a run (or only its live ones), oldest first."""
        query = select(attempts).where(attempts.c.run_id == run_id)
        if live_only:  # little but live rows remain (schema 4 removes applied ones)
            query = query.where(attempts.c.status.in_(LIVE_STATUSES))
        ordered = query.order_by(attempts.c.visible_at, attempts.c.attempt_id)
        rows = self._run(lambda conn, _: conn.execute(ordered).all(), read_only=True)
        return [attempt_record(r) for r in rows]

    def next_due_at(self, queue: str) -> datetime | None:
        """When the next live attempt of ``queue`` becomes claimable."""
        stmt = select(func.min(attempts.c.due_at)).where(
            attempts.c.queue == queue, attempts.c.status.in_(LIVE_STATUSES)
        )
        value = self._run(lambda conn, _: conn.execute(stmt).scalar(), read_only=True)
        return as_aware(value) if value is not None else None

    # -- catalog ------------------------------------------------------------

    def list_runs(
        self,
        *,
        status: str | None,
        workflow: str | None,
        limit: int,
        cursor: str | None,
        queue: str | None = None,
        started_after: datetime | None = None,
        started_before: datetime | None = None,
        parent_run_id: str | None = None,
    ) -> RunPage:
        """A page of the run catalog, newest first, keyset-paginated; every filter given
        must hold (``started_after`` inclusive, ``started_before`` exclusive)."""
        if limit < 1:
            raise InvalidOption(f"limit must be >= 1, got {limit}")
        position = None if cursor is None else decode_cursor(cursor)
        if self.dialect == "postgresql":  # statement text and rows without SQLAlchemy
            sql, params = hot.catalog_page(
                {
                    "status": status,
                    "workflow": workflow,
                    "queue": queue,
                    "parent_run_id": parent_run_id,
                },
                started_after=started_after,
                started_before=started_before,
                cursor=position,
                limit=limit + 1,
            )
            rows = self._run(
                lambda conn, _: hot.execute(conn, sql, params).fetchall(), read_only=True
            )
            records = [hot.run_from(r) for r in rows]
        else:
            records = self._catalog_page(
                status,
                workflow,
                queue,
                parent_run_id,
                started_after,
                started_before,
                position,
                limit + 1,
            )
        next_cursor = None
        if len(records) > limit:
            del records[limit:]
            last = records[-1]
            next_cursor = encode_cursor(last.started_at, last.run_id)
        return RunPage(runs=records, next_cursor=next_cursor)

    def _catalog_page(
        self,
        status: str | None,
        workflow: str | None,
        queue: str | None,
        parent_run_id: str | None,
        started_after: datetime | None,
        started_before: datetime | None,
        position: tuple[datetime, str] | None,
        limit: int,
    ) -> list[RunRecord]:
        """:meth:`list_runs`'s rows through SQLAlchemy (SQLite)."""
        query = select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        # Each equality filter has an index ending in (started_at, run_id): a page is
        # an index range read, whatever the depth of the cursor.
        for column, value in (
            (runs.c.status, status),
            (runs.c.workflow, workflow),
            (runs.c.queue, queue),
            (runs.c.parent_run_id, parent_run_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if started_after is not None:
            query = query.where(runs.c.started_at >= started_after)
        if started_before is not None:
            query = query.where(runs.c.started_at < started_before)
        if position is not None:
            query = query.where(tuple_(runs.c.started_at, runs.c.run_id) < position)
        page = query.limit(limit)
        rows = self._run(lambda conn, _: conn.execute(page).all(), read_only=True)
        return [run_record(r) for r in rows]

    def purge_batch(self, *, finished_before: datetime, statuses: Sequence[str], batch: int) -> int:
        """Delete up to ``batch`` terminal runs that ended before ``finished_before``
        and have no live child (journal, checkpoint, attempts, command receipts) in
        one short transaction; returns how many went."""
        return len(
            self._run(
                lambda conn, _: purge_batch(
                    conn, finished_before=finished_before, statuses=statuses, batch=batch
                )
            )
        )

    def set_definition(self, run_id: str, *, workflow: str, definition_version: str | None) -> None:
        """Point a run's catalog row at another workflow identity and version (after
        its journal recorded the move)."""
        stmt = (
            update(runs)
            .where(runs.c.run_id == run_id)
            .values(workflow=workflow, definition_version=definition_version)
        )
        self._run(lambda conn, _: conn.execute(stmt))

    def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Drop checkpoints (of one run, or all); returns how many went."""
        stmt = delete(checkpoints)
        if run_id is not None:
            stmt = stmt.where(checkpoints.c.run_id == run_id)
        deleted: int = self._run(lambda conn, _: conn.execute(stmt).rowcount)
        return deleted

    # -- schedule cursors -----------------------------------------------------

    def schedule_cursor(self, schedule_id: str) -> datetime | None:
        """Where the schedule's cursor stands (None before its first tick)."""
        stmt = select(schedules.c.cursor_at).where(schedules.c.schedule_id == schedule_id)
        value: datetime | None = self._run(
            lambda conn, _: conn.execute(stmt).scalar(), read_only=True
        )
        return value

    def ensure_schedule_cursor(
        self, schedule_id: str, workflow: str, trigger: str, now: datetime, owner: str
    ) -> datetime:
        """The cursor, created at ``now`` the first time the schedule is seen."""

        def insert_or_read_cursor(conn: Connection, _ambiguous: bool) -> datetime:
            conn.execute(
                self._insert(schedules)
                .values(
                    schedule_id=schedule_id,
                    workflow=workflow,
                    trigger=trigger,
                    cursor_at=now,
                    updated_at=now,
                    updated_by=owner,
                )
                .on_conflict_do_nothing(index_elements=["schedule_id"])
            )
            value: datetime = conn.execute(
                select(schedules.c.cursor_at).where(schedules.c.schedule_id == schedule_id)
            ).scalar_one()
            return value

        return self._run(insert_or_read_cursor)

    def advance_schedule_cursor(
        self, schedule_id: str, expected: datetime, to: datetime, now: datetime, owner: str
    ) -> bool:
        """Compare-and-set the cursor from ``expected`` to ``to``."""
        # After a lost COMMIT the retry may answer False for its own move; the
        # scheduler then re-reads the cursor (at ``to``) and goes on from there.
        stmt = (
            update(schedules)
            .where(schedules.c.schedule_id == schedule_id, schedules.c.cursor_at == expected)
            .values(cursor_at=to, updated_at=now, updated_by=owner)
        )
        rowcount: int = self._run(lambda conn, _: conn.execute(stmt).rowcount)
        return rowcount == 1

    # -- commands -----------------------------------------------------------

    def record_command(self, receipt: CommandReceipt) -> CommandReceipt:
        """Store a command receipt once; returns the stored one (the first writer's)."""

        def insert_or_read_receipt(conn: Connection, _ambiguous: bool) -> Row[Any]:
            conn.execute(
                self._insert(commands)
                .values(
                    idempotency_key=receipt.idempotency_key,
                    signal_type=receipt.signal_type,
                    run_id=receipt.run_id,
                    result=receipt.result,
                    recorded_at=receipt.recorded_at,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
            )
            return conn.execute(
                select(commands).where(commands.c.idempotency_key == receipt.idempotency_key)
            ).one()

        return receipt_record(self._run(insert_or_read_receipt))

    def get_command(self, idempotency_key: str) -> CommandReceipt | None:
        """The receipt stored under an idempotency key."""
        stmt = select(commands).where(commands.c.idempotency_key == idempotency_key)
        row = self._run(lambda conn, _: conn.execute(stmt).first(), read_only=True)
        return receipt_record(row) if row else None

    def list_commands(self, run_id: str) -> list[CommandReceipt]:
        """Receipts of commands applied to a run, oldest first."""
        stmt = (
            select(commands)
            .where(commands.c.run_id == run_id)
            .order_by(commands.c.recorded_at, commands.c.idempotency_key)
        )
        rows = self._run(lambda conn, _: conn.execute(stmt).all(), read_only=True)
        return [receipt_record(r) for r in rows]


#: What tells a write's own first fact from another claim's at the same revision.
_OWN_FACT_KEYS = ("key", "attempt", "claim_id", "owner_id", "claims")


def without_gaps(loaded: LoadedRun) -> LoadedRun:
    """``loaded``, checked to hold every fact after its checkpoint, in order."""
    after = loaded.checkpoint.revision if loaded.checkpoint else 0
    for expected, fact in enumerate(loaded.facts, start=after + 1):
        if fact.revision != expected:
            raise StorageError(f"journal of run {loaded.run_id!r} has a gap at revision {expected}")
    return loaded
