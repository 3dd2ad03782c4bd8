"""ClockReadings: broker instants (wall time) read on the service's clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from shared.clock import ClockReadings, FixedClock, SystemClock

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_a_wall_instant_reads_as_itself_on_the_system_clock() -> None:
    readings = ClockReadings(SystemClock())
    readings.take()
    instant = time.time()
    readings.take()

    mapped = readings.at(instant)

    assert mapped is not None
    assert abs((mapped - datetime.fromtimestamp(instant, UTC)).total_seconds()) < 0.01


def test_an_instant_before_a_test_clock_jumped_never_reads_past_the_jump_s_reading() -> None:
    clock = FixedClock(T0)
    readings = ClockReadings(clock)
    readings.take()
    before_jump = time.time()
    clock.set(T0 + timedelta(hours=2))  # a test moves time on
    readings.take()

    mapped = readings.at(before_jump)

    assert mapped is not None
    assert mapped < T0 + timedelta(seconds=1)  # read before the jump, not after it


def test_an_instant_before_every_reading_reads_back_from_the_first() -> None:
    clock = FixedClock(T0)
    readings = ClockReadings(clock)
    instant = time.time() - 60
    readings.take()

    mapped = readings.at(instant)

    assert mapped is not None
    assert T0 - timedelta(seconds=61) < mapped <= T0 - timedelta(seconds=59)


def test_nothing_is_read_before_the_first_reading_and_only_recent_readings_are_kept() -> None:
    readings = ClockReadings(FixedClock(T0), keep=4)
    assert readings.at(time.time()) is None

    for _ in range(100):
        readings.take()

    assert len(readings._wall) <= 8
