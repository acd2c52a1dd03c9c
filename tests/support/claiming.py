"""Claims taken by hand in tests, as a worker takes them: at the instance's clock,
with fresh credentials, for a lease of ``lease`` seconds."""

from __future__ import annotations

from datetime import timedelta

from squidie import Squidie
from squidie.runtime.claims import Claim, new_credentials


def claim_by_hand(
    sq: Squidie, owner_id: str, *, lease: float = 30.0, queue: str = "default"
) -> Claim:
    """The claim of ``queue``'s oldest due attempt for ``owner_id`` (one must be due)."""
    now = sq.clock.now()
    claim_id, token_hash = new_credentials()
    row = sq.store.claim(
        queue=queue,
        owner_id=owner_id,
        now=now,
        lease_until=now + timedelta(seconds=lease),
        claim_id=claim_id,
        token_hash=token_hash,
    )
    assert row is not None, f"nothing due on {queue!r}"
    return Claim(attempt=row, claim_id=claim_id, token_hash=token_hash)
