"""Injected time, so pure code and tests never read the wall clock themselves."""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


def as_utc(when: datetime) -> datetime:
    """A time from a request: one without an offset is read as UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Clock(Protocol):
    """Source of "now" (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall time in whole milliseconds: what MongoDB stores, so a value read back equals
    the value written (and an event's time equals the stored state's)."""

    def now(self) -> datetime:
        now = datetime.now(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)


class FixedClock:
    """A clock that only moves when told to; for tests and replays."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


class ClockReadings:
    """Recent readings of a clock beside the wall clock, to map a wall instant (a Kafka
    record's timestamp, a fetch's arrival) onto the clock's time.

    An instant maps to the reading before it plus the wall time since (an instant before
    every reading: the first reading less the wall time to it), but never past the reading
    after it: exact for the system clock, and for a test clock that jumps, never later
    than the clock read once the instant had passed."""

    def __init__(self, clock: Clock, keep: int = 256) -> None:
        self._clock = clock
        self._keep = keep
        self._wall: list[float] = []
        self._read: list[datetime] = []

    def take(self) -> datetime:
        """Reads the clock now, and keeps the reading."""
        wall, read = time.time(), self._clock.now()
        if self._wall and wall < self._wall[-1]:  # the wall clock stepped back: start over
            self._wall.clear()
            self._read.clear()
        self._wall.append(wall)
        self._read.append(read)
        if len(self._wall) > 2 * self._keep:
            del self._wall[: -self._keep], self._read[: -self._keep]
        return read

    def at(self, wall: float) -> datetime | None:
        """The clock's time at a wall instant (seconds since the epoch); None before the
        first reading."""
        if not self._wall:
            return None
        i = max(0, bisect.bisect_right(self._wall, wall) - 1)
        mapped = self._read[i] + timedelta(seconds=wall - self._wall[i])
        return min(mapped, self._read[i + 1]) if i + 1 < len(self._read) else mapped
