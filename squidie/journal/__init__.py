"""Durable state: facts, the storage port, the SQLAlchemy Core store, an in-memory
store (not durable: tests and notebooks), migrations.

This layer knows no workflow semantics: facts carry opaque data.
"""

from squidie.journal.engine import make_engine, normalise_url, prepare_engine
from squidie.journal.memory_store import InMemoryStore
from squidie.journal.port import JournalStore
from squidie.journal.records import (
    AttemptRecord,
    Checkpoint,
    ClaimRequest,
    CommandReceipt,
    Fact,
    Fence,
    Grant,
    LoadedRun,
    NewAttempt,
    NewFact,
    NewRun,
    RunPage,
    RunRecord,
    RunWrite,
    decode_cursor,
    encode_cursor,
)
from squidie.journal.sql_store import SqlStore

__all__ = [
    "AttemptRecord",
    "Checkpoint",
    "ClaimRequest",
    "CommandReceipt",
    "Fact",
    "Fence",
    "Grant",
    "InMemoryStore",
    "JournalStore",
    "LoadedRun",
    "NewAttempt",
    "NewFact",
    "NewRun",
    "RunPage",
    "RunRecord",
    "RunWrite",
    "SqlStore",
    "decode_cursor",
    "encode_cursor",
    "make_engine",
    "normalise_url",
    "prepare_engine",
]
