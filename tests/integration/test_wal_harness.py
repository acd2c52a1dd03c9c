"""harness.wal: the WAL of a window is read back and charged to Squidie's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import wal

pytestmark = pytest.mark.postgres


def test_a_window_of_steps_is_charged_to_the_tables_that_wrote_it(
    pg_url: str, tmp_path: Path
) -> None:
    window = wal.measure(pg_url, 3, "seq")
    found = wal.breakdown(pg_url, *window)
    assert found.steps == 30 and found.records > 0
    # Every byte is charged once, to a table and to a relation of that table.
    assert sum(found.by_table.values()) == found.total == sum(found.by_relation.values())
    assert sum(found.by_record.values()) == found.total
    for table in ("squidie_journal", "squidie_attempts", "squidie_runs"):
        assert found.by_table[table] > 0, table
    assert found.by_relation["squidie_journal_pkey"] > 0
    figures = wal.report("seq", found)
    assert figures["wal_bytes_per_step"] == round(found.total / 30)
    wal.chart([figures], tmp_path / "wal.png")
    assert (tmp_path / "wal.png").stat().st_size > 0


def test_the_floor_layout_logs_its_steps_and_stays_under_what_squidie_logs(pg_url: str) -> None:
    from harness import wal_floor

    per_step = wal_floor.measure(pg_url, 20)
    # A journal row, a HOT run update and a dispatch row moved: a few hundred bytes
    # at least (each new row version and index entry is logged), never zero.
    assert 300 < per_step < 3_000
