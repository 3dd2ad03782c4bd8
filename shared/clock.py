"""Injected time, so pure code and tests never read the wall clock themselves."""

from __future__ import annotations

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
