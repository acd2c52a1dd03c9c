"""list_runs cursors keep their format: a cursor handed out by an earlier release
still reads, and this release hands out the same text for the same position."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from squidie.journal.records import decode_cursor, encode_cursor

moments = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


def first_release_cursor(started_at: datetime, run_id: str) -> str:
    """The cursor as the first release wrote it."""
    raw = json.dumps([started_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@given(moments, st.text(max_size=40))
def test_a_cursor_is_written_as_the_first_release_wrote_it(
    started_at: datetime, run_id: str
) -> None:
    assert encode_cursor(started_at, run_id) == first_release_cursor(started_at, run_id)
    assert decode_cursor(encode_cursor(started_at, run_id)) == (started_at, run_id)


def test_quotes_escapes_and_wide_characters_in_a_run_id() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for run_id in ['a"b', "a\\b", "ünï ✓", "\x00\n", "\U0001f600", "\ud800"]:
        assert encode_cursor(at, run_id) == first_release_cursor(at, run_id)
