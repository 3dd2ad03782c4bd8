"""The e2e profile's arithmetic: CPU shares from /proc and database time from `top`."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.bench_e2e_profile import (
    DbRow,
    busy_pct,
    db_table_rows,
    db_us_by_owner,
    machine_ticks,
    process_ticks,
    top_delta,
)

PROC_STAT = "cpu  {}\ncpu0 1 1 1 1 1 1 1 1 0 0\nintr 12345\n"


def stat(*fields: int) -> str:
    return PROC_STAT.format(" ".join(str(f) for f in fields))


def sections(**ops: tuple[int, int]) -> dict[str, dict[str, int]]:
    """A namespace's `top` entry; `total` and the lock sections repeat the operations, as
    the server counts them."""
    whole = (sum(t for t, _ in ops.values()), sum(c for _, c in ops.values()))
    entry = {name: {"time": t, "count": c} for name, (t, c) in ops.items()}
    for repeated in ("total", "readLock", "writeLock"):
        entry[repeated] = {"time": whole[0], "count": whole[1]}
    return entry


def test_the_machine_is_busy_but_when_idle_or_waiting_and_guest_time_counts_once() -> None:
    #           user nice system idle iowait irq softirq steal guest guest_nice
    before = machine_ticks(stat(100, 0, 50, 800, 50, 0, 0, 0, 0, 0))
    after = machine_ticks(stat(160, 0, 70, 900, 70, 0, 0, 0, 10, 0))
    assert busy_pct(before, after) == pytest.approx(40.0)  # 80 busy of 200 ticks


def test_a_machine_reading_without_elapsed_ticks_has_no_busy_share() -> None:
    same = machine_ticks(stat(1, 2, 3, 4, 5, 6, 7, 8, 0, 0))
    assert math.isnan(busy_pct(same, same))


def test_a_process_costs_its_user_plus_system_ticks_whatever_its_name_holds() -> None:
    line = "4321 (python -m (x) y) S 1 4321 4321 0 -1 4194304 100 0 0 0 250 75 9 9 20 0 5 0"
    assert process_ticks(line) == 325


def test_database_time_is_the_difference_per_collection_and_operation_with_its_service() -> None:
    before: dict[str, Any] = {
        "note": "all times in microseconds",
        "b1_intake.tickets": sections(insert=(1_000, 10), queries=(500, 5)),
    }
    after: dict[str, Any] = {
        "note": "all times in microseconds",
        "b1_intake.tickets": sections(insert=(4_000, 40), queries=(500, 5)),
        "b1_sla_monitor.clocks": sections(update=(9_000, 30)),
        "b1_keyring.keys": sections(queries=(100, 2)),
    }
    rows = top_delta(before, after, "b1")
    assert rows == [
        DbRow("b1_sla_monitor.clocks", "sla_monitor", "update", 9_000, 30),
        DbRow("b1_intake.tickets", "intake", "insert", 3_000, 30),
        DbRow("b1_keyring.keys", "keyring", "queries", 100, 2),
    ]
    assert db_us_by_owner(rows) == {"sla_monitor": 9_000, "intake": 3_000, "keyring": 100}


def test_a_collection_whose_counters_restarted_counts_from_zero() -> None:
    before = {"b1_feedback.surveys": sections(insert=(5_000, 50))}
    after = {"b1_feedback.surveys": sections(insert=(600, 3))}  # dropped and created again
    assert top_delta(before, after, "b1") == [
        DbRow("b1_feedback.surveys", "feedback", "insert", 600, 3)
    ]


def test_the_database_table_shows_the_heaviest_first_with_share_cost_and_ops_per_ticket() -> None:
    rows = [
        DbRow("b1_intake.tickets", "intake", "insert", 2_000, 10),
        DbRow("b1_notifier.mails", "notifier", "update", 6_000, 40),
        DbRow("b1_feedback.surveys", "feedback", "queries", 2_000, 5),
    ]
    table = db_table_rows(rows, tickets=20, limit=2)
    assert table == [
        ("mails", "notifier", "update", 6.0, 60.0, 40, 150.0, 2.0),
        ("tickets", "intake", "insert", 2.0, 20.0, 10, 200.0, 0.5),
    ]
