"""What a run's journal says was scheduled and applied, per runnable key.

Since schema 4 an attempt's dispatch row is removed once its outcome takes effect,
so tests that check "scheduled once, applied once" count the journal's facts, which
every release keeps, rather than dispatch rows.
"""

from __future__ import annotations

from collections import Counter

from squidie.journal import JournalStore
from squidie.model.compaction import expand
from squidie.model.facts import RunnableScheduled, applied_success, decode, with_time


def scheduled(store: JournalStore, run_id: str) -> Counter[str]:
    """How many attempts the journal scheduled for each runnable key (a plain start
    held in a step's ``step_completed`` fact counts as one)."""
    facts = store.load(run_id, use_checkpoint=False).facts
    return Counter(
        f.key
        for stored in facts
        for f in expand(decode(stored.kind, with_time(stored.data, stored.recorded_at)))
        if isinstance(f, RunnableScheduled)
    )


def applied(store: JournalStore, run_id: str) -> Counter[str]:
    """How many successful outcomes the journal applied for each runnable key."""
    facts = store.load(run_id, use_checkpoint=False).facts
    return Counter(key for f in facts if (key := applied_success(f.kind, f.data)) is not None)
