"""Business-hours calendars for SLA deadline arithmetic.

An SLA target counts either calendar time (`AlwaysOpen`) or business time (`BusinessCalendar`,
built from a `CalendarSpec` declared in the policy YAML). Both answer the same four questions:
`add`, `between`, `is_open` and `next_open`.

How local wall-clock hours become instants. Each local day's open intervals are mapped to UTC,
each boundary at the *first instant the wall clock reaches it*:

- on a spring-forward night a boundary that falls in the skipped hour maps to the transition
  instant, so "01:00-03:00" holds one hour of real time and "02:10-02:50" none;
- on a fall-back night a boundary inside the repeated hour maps to its first occurrence, so
  "01:00-03:00" holds three hours and "00:00-01:30" ends at the first 01:30.

This mapping is monotone, so intervals stay ordered and disjoint, and `is_open`, `add` and
`between` all read the same intervals and always agree with each other.

Deadline semantics. `add(start, 0)` returns `start` unchanged (in UTC), even in closed hours,
so `between(start, add(start, d)) == d` holds for every `d >= 0`. For `d > 0` the deadline is
the instant at which the `d`-th unit of open time ends: it lies in `(s, e]` for some open
interval `[s, e)`, so it may be the exact end of an interval (Friday 18:00) rather than being
pushed to the next opening (Monday 09:00); the instant just before it is always open.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from collections.abc import Iterator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A walk that meets no open time for this long gives up: the calendar is (effectively) closed
# for good, e.g. a holiday list covering years. Keeps `add`/`next_open` from looping forever.
MAX_CLOSED_SPAN = timedelta(days=3 * 366)

_MINUTES_PER_DAY = 24 * 60
_INTERVAL_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DAY_CACHE_LIMIT = 20_000

UtcInterval = tuple[datetime, datetime]


class WorkingCalendar(Protocol):
    """What SLA arithmetic needs from a calendar; all results are UTC-aware datetimes."""

    def add(self, start: datetime, amount: timedelta) -> datetime: ...

    def between(self, start: datetime, end: datetime) -> timedelta: ...

    def is_open(self, at: datetime) -> bool: ...

    def next_open(self, at: datetime) -> datetime: ...


# --------------------------------------------------------------------------- config models


def _format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class OpenInterval(BaseModel):
    """One open stretch of a local day, written "HH:MM-HH:MM" in YAML; "24:00" may end it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_minute: int = Field(ge=0, lt=_MINUTES_PER_DAY)
    end_minute: int = Field(gt=0, le=_MINUTES_PER_DAY)

    @model_validator(mode="before")
    @classmethod
    def _parse_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _INTERVAL_RE.match(value)
        if match is None:
            raise ValueError(f"interval {value!r} must look like 'HH:MM-HH:MM'")
        start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
        if start_m > 59 or end_m > 59 or start_h > 23 or end_h > 24 or (end_h == 24 and end_m):
            raise ValueError(f"interval {value!r} has an invalid time (00:00..24:00)")
        return {"start_minute": start_h * 60 + start_m, "end_minute": end_h * 60 + end_m}

    @model_validator(mode="after")
    def _check_order(self) -> Self:
        if self.start_minute >= self.end_minute:
            raise ValueError(f"interval {self} must start before it ends")
        return self

    def __str__(self) -> str:
        return f"{_format_minute(self.start_minute)}-{_format_minute(self.end_minute)}"


class ScheduleSpec(BaseModel):
    """Weekly opening hours, valid from `effective_from` (None: since forever) until the next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_from: date | None = None
    weekly: dict[Weekday, list[OpenInterval]] = Field(
        description="Open intervals per weekday; a missing or empty day is closed.",
        examples=[{"mon": ["09:00-12:00", "13:00-18:00"], "sat": ["10:00-14:00"]}],
    )

    @field_validator("weekly")
    @classmethod
    def _no_overlaps(
        cls, weekly: dict[Weekday, list[OpenInterval]]
    ) -> dict[Weekday, list[OpenInterval]]:
        normalised: dict[Weekday, list[OpenInterval]] = {}
        for day in WEEKDAYS:
            intervals = sorted(weekly.get(day, []), key=lambda i: i.start_minute)
            for before, after in pairwise(intervals):
                if after.start_minute < before.end_minute:
                    raise ValueError(f"{day}: intervals {before} and {after} overlap")
            if intervals:
                normalised[day] = intervals
        return normalised

    def hours_on(self, weekday: int) -> list[OpenInterval]:
        return self.weekly.get(WEEKDAYS[weekday], [])

    def reference_hours(self) -> list[OpenInterval]:
        """Hours used on an `open_date` whose weekday is normally closed: first working day's."""
        for day in WEEKDAYS:
            if day in self.weekly:
                return self.weekly[day]
        return []


class CalendarSpec(BaseModel):
    """A named business calendar as declared in the SLA policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, examples=["cn-support"])
    timezone: str = Field(description="IANA zone name", examples=["Asia/Shanghai"])
    schedules: list[ScheduleSpec] = Field(min_length=1)
    holidays_country: str | None = Field(
        default=None,
        description="Country code for public holidays from the `holidays` package.",
        examples=["CN", "SG", "US"],
    )
    holiday_dates: list[date] = Field(default_factory=list, description="Extra closed days.")
    open_dates: list[date] = Field(
        default_factory=list,
        description="Working days that override weekends and public holidays (e.g. China's "
        "adjusted working weekends); a normally closed weekday gets the first working day's hours.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("holidays_country")
    @classmethod
    def _supported_country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(f"country {value!r} is not supported by the holidays package")
        return value

    @field_validator("schedules")
    @classmethod
    def _ordered_schedules(cls, schedules: list[ScheduleSpec]) -> list[ScheduleSpec]:
        ordered = sorted(schedules, key=lambda s: s.effective_from or date.min)
        starts = [s.effective_from for s in ordered]
        if len(set(starts)) != len(starts):
            raise ValueError("two schedules share the same effective_from")
        if not any(ordered[-1].weekly.values()):
            raise ValueError(
                "the latest schedule has no open hours, so the calendar would never open again"
            )
        return ordered

    @model_validator(mode="after")
    def _consistent_dates(self) -> Self:
        clash = sorted(set(self.holiday_dates) & set(self.open_dates))
        if clash:
            raise ValueError(f"dates both in holiday_dates and open_dates: {clash}")
        for day in self.open_dates:
            schedule = self.schedule_on(day)
            if schedule is None or not schedule.reference_hours():
                raise ValueError(f"open_dates: {day} falls under a schedule with no open hours")
        return self

    def schedule_on(self, day: date) -> ScheduleSpec | None:
        current: ScheduleSpec | None = None
        for schedule in self.schedules:  # sorted by effective_from
            if schedule.effective_from is None or schedule.effective_from <= day:
                current = schedule
        return current


# --------------------------------------------------------------------------- runtime


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class AlwaysOpen:
    """Calendar time: every instant counts, so arithmetic is plain UTC arithmetic."""

    def add(self, start: datetime, amount: timedelta) -> datetime:
        if amount < timedelta(0):
            raise ValueError(f"amount must not be negative, got {amount}")
        return _aware(start, "start") + amount

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(_aware(end, "end") - _aware(start, "start"), timedelta(0))

    def is_open(self, at: datetime) -> bool:
        _aware(at, "at")
        return True

    def next_open(self, at: datetime) -> datetime:
        return _aware(at, "at")


class BusinessCalendar:
    """Open time according to a `CalendarSpec`; see the module docstring for the semantics."""

    def __init__(self, spec: CalendarSpec) -> None:
        self.spec = spec
        self._zone = ZoneInfo(spec.timezone)
        self._holiday_dates = frozenset(spec.holiday_dates)
        self._open_dates = frozenset(spec.open_dates)
        self._country_years: dict[int, frozenset[date]] = {}
        self._day_cache: dict[date, tuple[UtcInterval, ...]] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    def add(self, start: datetime, amount: timedelta) -> datetime:
        start_utc = _aware(start, "start")
        if amount < timedelta(0):
            raise ValueError(f"amount must not be negative, got {amount}")
        if not amount:
            return start_utc
        remaining = amount
        for opens, closes in self._intervals_from(start_utc):
            if closes <= start_utc:
                continue
            begin = max(opens, start_utc)
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from never ends without raising")

    def between(self, start: datetime, end: datetime) -> timedelta:
        start_utc, end_utc = _aware(start, "start"), _aware(end, "end")
        total = timedelta(0)
        if end_utc <= start_utc:
            return total
        day = self._local_day(start_utc) - timedelta(days=1)
        last = self._local_day(end_utc) + timedelta(days=1)
        while day <= last:
            for opens, closes in self._utc_intervals(day):
                overlap = min(closes, end_utc) - max(opens, start_utc)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def is_open(self, at: datetime) -> bool:
        at_utc = _aware(at, "at")
        local_day = self._local_day(at_utc)
        for offset in (-1, 0, 1):
            for opens, closes in self._utc_intervals(local_day + timedelta(days=offset)):
                if opens <= at_utc < closes:
                    return True
        return False

    def next_open(self, at: datetime) -> datetime:
        at_utc = _aware(at, "at")
        for opens, closes in self._intervals_from(at_utc):
            if closes > at_utc:
                return max(opens, at_utc)
        raise AssertionError("unreachable: _intervals_from never ends without raising")

    # -- day-by-day walk -----------------------------------------------------------------

    def _intervals_from(self, start_utc: datetime) -> Iterator[UtcInterval]:
        """Open intervals in time order from the local day before `start_utc` on, endlessly.

        Raises ValueError after `MAX_CLOSED_SPAN` without any open time.
        """
        day = self._local_day(start_utc) - timedelta(days=1)
        last_seen = day
        while True:
            intervals = self._utc_intervals(day)
            if intervals:
                last_seen = day
                yield from intervals
            elif day - last_seen > MAX_CLOSED_SPAN:
                raise ValueError(
                    f"calendar {self.spec.name!r} has no open time between {last_seen} and "
                    f"{day}; check its holidays and schedules"
                )
            day += timedelta(days=1)

    def _local_day(self, at_utc: datetime) -> date:
        return at_utc.astimezone(self._zone).date()

    def _utc_intervals(self, day: date) -> tuple[UtcInterval, ...]:
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        result: list[UtcInterval] = []
        for interval in self._local_hours(day):
            opens = self._wall_to_utc(day, interval.start_minute)
            closes = self._wall_to_utc(day, interval.end_minute)
            if opens < closes:  # an interval wholly inside a DST gap holds no time
                result.append((opens, closes))
        if len(self._day_cache) >= _DAY_CACHE_LIMIT:
            self._day_cache.clear()
        self._day_cache[day] = intervals = tuple(result)
        return intervals

    def _local_hours(self, day: date) -> list[OpenInterval]:
        if day in self._holiday_dates:
            return []
        schedule = self.spec.schedule_on(day)
        if schedule is None:
            return []
        hours = schedule.hours_on(day.weekday())
        if day in self._open_dates:
            return hours or schedule.reference_hours()
        if day in self._country_holidays(day.year):
            return []
        return hours

    def _country_holidays(self, year: int) -> frozenset[date]:
        if self.spec.holidays_country is None:
            return frozenset()
        cached = self._country_years.get(year)
        if cached is None:
            found = holidays.country_holidays(self.spec.holidays_country, years=year)
            cached = self._country_years[year] = frozenset(found.keys())
        return cached

    def _wall_to_utc(self, day: date, minute: int) -> datetime:
        """First instant at which the local wall clock reads `minute` past midnight of `day`."""
        wall = datetime.combine(day, time()) + timedelta(minutes=minute)
        first = wall.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0: earlier occurrence
        if first.astimezone(self._zone).replace(tzinfo=None) == wall:
            return first
        # `wall` was skipped by a forward transition: find the transition instant, i.e. the
        # first whole second whose wall time is at or after `wall` (zone offsets are whole
        # seconds, so the bisection is exact).
        other = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        low, high = min(first, other), max(first, other)
        while high - low > timedelta(seconds=1):
            middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
            if middle.astimezone(self._zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high
