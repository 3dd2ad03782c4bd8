from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.sla_monitor.calendar import (
    AlwaysOpen,
    BusinessCalendar,
    CalendarSpec,
    ScheduleSpec,
    WorkingCalendar,
)

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")
SINGAPORE = ZoneInfo("Asia/Singapore")
WEEKDAYS_9_TO_6 = {day: ["09:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
ONE_MICROSECOND = timedelta(microseconds=1)


def calendar(
    timezone: str,
    weekly: dict[str, list[str]],
    **extra: object,
) -> BusinessCalendar:
    return BusinessCalendar(
        CalendarSpec.model_validate(
            {"name": "test", "timezone": timezone, "schedules": [{"weekly": weekly}], **extra}
        )
    )


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


# Fixed calendars the properties run against: DST zones, split shifts, night shifts, holidays,
# adjusted working weekends, a schedule change, and hours inside DST gaps and folds.
US_OFFICE = calendar("America/New_York", WEEKDAYS_9_TO_6, holidays_country="US")
BERLIN_SPLIT = calendar(
    "Europe/Berlin",
    {
        **{day: ["08:00-12:00", "13:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "sat": ["10:00-14:00"],
        "sun": ["01:00-03:30"],  # straddles both of Berlin's DST transitions
    },
    holiday_dates=[date(2026, 12, 24)],
)
CN_SUPPORT = calendar(
    "Asia/Shanghai",
    {day: ["09:00-12:00", "13:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    holidays_country="CN",
    open_dates=[date(2026, 1, 4), date(2026, 2, 14), date(2026, 9, 20), date(2026, 10, 10)],
)
NY_NIGHTS = BusinessCalendar(
    CalendarSpec(
        name="ny-nights",
        timezone="America/New_York",
        schedules=[
            ScheduleSpec.model_validate(
                {
                    "weekly": {
                        "sun": ["00:30-01:30", "01:45-02:30", "02:35-02:50", "03:00-04:00"],
                        "wed": ["22:00-24:00"],
                        "thu": ["00:00-06:00"],
                    }
                }
            ),
            ScheduleSpec.model_validate(
                {
                    "effective_from": date(2026, 6, 1),
                    "weekly": {day: ["00:00-24:00"] for day in ("sat", "sun")},
                }
            ),
        ],
    )
)
BEIRUT = ZoneInfo("Asia/Beirut")  # its clocks change at midnight
BEIRUT_LATE = calendar(
    "Asia/Beirut",
    {"fri": ["20:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-02:00", "23:30-24:00"]},
)
CALENDARS: list[WorkingCalendar] = [
    US_OFFICE,
    BERLIN_SPLIT,
    CN_SUPPORT,
    NY_NIGHTS,
    BEIRUT_LATE,
    AlwaysOpen(),
]

# Starts cluster around DST transitions and holidays, where bugs live, plus anywhere at all.
INTERESTING_DAYS = [
    datetime(2026, 3, 8, tzinfo=NEW_YORK),
    datetime(2026, 11, 1, tzinfo=NEW_YORK),
    datetime(2026, 3, 29, tzinfo=BERLIN),
    datetime(2026, 10, 25, tzinfo=BERLIN),
    datetime(2026, 9, 30, tzinfo=SHANGHAI),
    datetime(2026, 5, 31, tzinfo=NEW_YORK),
    datetime(2026, 12, 24, tzinfo=BERLIN),
    datetime(2026, 3, 29, tzinfo=BEIRUT),
    datetime(2026, 10, 25, tzinfo=BEIRUT),
]
instants = st.one_of(
    st.builds(
        lambda day, seconds: day + timedelta(seconds=seconds),
        st.sampled_from(INTERESTING_DAYS),
        st.integers(-3 * 86_400, 3 * 86_400),
    ),
    st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2027, 12, 31),
        timezones=st.sampled_from([UTC, NEW_YORK, BERLIN, SHANGHAI, BEIRUT]),
    ),
)
durations = st.integers(0, 30 * 86_400).map(lambda seconds: timedelta(seconds=seconds))
calendars = st.sampled_from(CALENDARS)


def real_time(at: datetime) -> datetime:
    """Order by the instant: two times of one zone compare by wall time, and a wall time
    in a spring-forward gap (00:00:01 on Beirut's 29 March) lies after 01:00 that day."""
    return at.astimezone(UTC)


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(cal=calendars, start=instants, amount=durations)
def test_between_measures_back_what_add_added(
    cal: WorkingCalendar, start: datetime, amount: timedelta
) -> None:
    assert cal.between(start, cal.add(start, amount)) == amount


@PROPERTY_SETTINGS
@given(cal=calendars, start=instants, amount=durations.filter(bool))
def test_deadline_ends_an_open_stretch(
    cal: WorkingCalendar, start: datetime, amount: timedelta
) -> None:
    # For amount > 0 the deadline lies in (opens, closes] of some open interval: the instant
    # just before it is open, though the deadline itself may be the closing instant.
    deadline = cal.add(start, amount)
    assert deadline > start
    assert cal.is_open(deadline - ONE_MICROSECOND)
    assert cal.between(deadline - ONE_MICROSECOND, deadline) == ONE_MICROSECOND


@PROPERTY_SETTINGS
@given(cal=calendars, points=st.lists(instants, min_size=3, max_size=3))
def test_between_is_additive(cal: WorkingCalendar, points: list[datetime]) -> None:
    a, b, c = sorted(points, key=real_time)
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)
    elapsed = c.astimezone(UTC) - a.astimezone(UTC)  # same-zone `c - a` would be wall time
    assert cal.between(a, c) <= elapsed
    assert cal.between(c, a) == timedelta(0)


@PROPERTY_SETTINGS
@given(
    cal=calendars,
    starts=st.lists(instants, min_size=2, max_size=2),
    amounts=st.lists(durations, min_size=2, max_size=2),
)
def test_add_is_monotone(
    cal: WorkingCalendar, starts: list[datetime], amounts: list[timedelta]
) -> None:
    early, late = sorted(starts, key=real_time)
    small, large = sorted(amounts)
    assert cal.add(early, small) <= cal.add(early, large)
    assert cal.add(early, small) <= cal.add(late, small)


@PROPERTY_SETTINGS
@given(cal=calendars, at=instants)
def test_is_open_agrees_with_between_and_next_open(cal: WorkingCalendar, at: datetime) -> None:
    at = at.astimezone(UTC)  # so that `at + 1µs` is one real microsecond later
    assert cal.is_open(at) == (cal.between(at, at + ONE_MICROSECOND) == ONE_MICROSECOND)
    opening = cal.next_open(at)
    assert opening >= at
    assert cal.is_open(opening)
    assert cal.between(at, opening) == timedelta(0)
    assert (opening == at) == cal.is_open(at)


@PROPERTY_SETTINGS
@given(cal=calendars, start=instants)
def test_adding_nothing_returns_start_in_utc(cal: WorkingCalendar, start: datetime) -> None:
    result = cal.add(start, timedelta(0))
    # Compared in UTC: Python never finds an aware time in a DST gap or fold equal to
    # an instant in another zone (PEP 495), and hypothesis does generate such times.
    assert result == start.astimezone(UTC)
    assert result.tzinfo is UTC


# --------------------------------------------------------------------------- examples


def test_deadline_skips_weekend() -> None:
    office = calendar("Asia/Singapore", WEEKDAYS_9_TO_6)
    friday = local(SINGAPORE, 2026, 1, 9, 17, 30)

    deadline = office.add(friday, timedelta(hours=1))

    assert deadline == local(SINGAPORE, 2026, 1, 12, 9, 30)
    assert deadline.tzinfo is UTC


def test_deadline_on_closing_time_stays_there() -> None:
    office = calendar("Asia/Singapore", WEEKDAYS_9_TO_6)

    deadline = office.add(local(SINGAPORE, 2026, 1, 9, 17, 0), timedelta(hours=1))

    assert deadline == local(SINGAPORE, 2026, 1, 9, 18, 0)
    assert not office.is_open(deadline)


def test_counting_starts_at_next_opening_when_start_is_closed() -> None:
    office = calendar("Asia/Singapore", WEEKDAYS_9_TO_6)
    saturday = local(SINGAPORE, 2026, 1, 10, 11, 0)

    assert office.add(saturday, timedelta(minutes=5)) == local(SINGAPORE, 2026, 1, 12, 9, 5)
    assert office.next_open(saturday) == local(SINGAPORE, 2026, 1, 12, 9, 0)
    assert office.add(saturday, timedelta(0)) == saturday


def test_deadline_skips_cn_national_day() -> None:
    # 2026-10-01..07 is China's Golden Week; Saturday 10-10 is an adjusted working day.
    before_holiday = local(SHANGHAI, 2026, 9, 30, 17, 0)

    deadline = CN_SUPPORT.add(before_holiday, timedelta(hours=2))

    assert deadline == local(SHANGHAI, 2026, 10, 8, 10, 0)
    assert not CN_SUPPORT.is_open(local(SHANGHAI, 2026, 10, 1, 10, 0))


def test_adjusted_working_weekend_counts() -> None:
    saturday_before_shifted_day = local(SHANGHAI, 2026, 9, 19, 10, 0)

    deadline = CN_SUPPORT.add(saturday_before_shifted_day, timedelta(hours=1))

    assert deadline == local(SHANGHAI, 2026, 9, 20, 10, 0)  # a Sunday, open by decree
    assert CN_SUPPORT.is_open(local(SHANGHAI, 2026, 10, 10, 15, 0))


def test_lunch_break_is_skipped() -> None:
    morning = local(SHANGHAI, 2026, 3, 3, 11, 30)

    deadline = CN_SUPPORT.add(morning, timedelta(hours=1))

    assert deadline == local(SHANGHAI, 2026, 3, 3, 13, 30)
    assert not CN_SUPPORT.is_open(local(SHANGHAI, 2026, 3, 3, 12, 15))
    assert CN_SUPPORT.between(morning, deadline) == timedelta(hours=1)


def test_explicit_holiday_is_skipped() -> None:
    office = calendar("Asia/Singapore", WEEKDAYS_9_TO_6, holiday_dates=[date(2026, 1, 12)])

    deadline = office.add(local(SINGAPORE, 2026, 1, 9, 17, 30), timedelta(hours=1))

    assert deadline == local(SINGAPORE, 2026, 1, 13, 9, 30)


def test_country_holiday_is_skipped() -> None:
    # Independence Day 2026 falls on a Saturday and is observed on Friday 07-03.
    deadline = US_OFFICE.add(local(NEW_YORK, 2026, 7, 2, 17, 0), timedelta(hours=2))

    assert deadline == local(NEW_YORK, 2026, 7, 6, 10, 0)


def test_schedule_change_applies_from_its_effective_date() -> None:
    spec = CalendarSpec.model_validate(
        {
            "name": "extended-hours",
            "timezone": "Asia/Singapore",
            "schedules": [
                {"effective_from": "2026-02-02", "weekly": {"mon": ["08:00-20:00"]}},
                {"weekly": {"mon": ["09:00-17:00"]}},
            ],
        }
    )
    cal = BusinessCalendar(spec)
    last_old_monday = local(SINGAPORE, 2026, 1, 26, 9, 0)

    # 8h on 01-26 under the old hours, the remaining 2h from 08:00 on 02-02 under the new.
    assert cal.add(last_old_monday, timedelta(hours=10)) == local(SINGAPORE, 2026, 2, 2, 10, 0)
    assert cal.between(last_old_monday, local(SINGAPORE, 2026, 2, 3)) == timedelta(hours=20)
    assert not cal.is_open(local(SINGAPORE, 2026, 1, 26, 8, 30))
    assert cal.is_open(local(SINGAPORE, 2026, 2, 2, 8, 30))


def test_deadline_across_spring_forward_in_new_york() -> None:
    friday = local(NEW_YORK, 2026, 3, 6, 17, 0)  # EST; Monday is EDT

    deadline = US_OFFICE.add(friday, timedelta(hours=2))

    assert deadline == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 10:00 EDT
    assert deadline.astimezone(NEW_YORK).hour == 10


def test_deadline_across_fall_back_in_new_york() -> None:
    friday = local(NEW_YORK, 2026, 10, 30, 17, 0)  # EDT; Monday is EST

    deadline = US_OFFICE.add(friday, timedelta(hours=2))

    assert deadline == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 10:00 EST


def test_night_interval_holds_real_time_across_dst() -> None:
    nights = calendar("America/New_York", {"sun": ["01:00-03:00"]})

    spring = nights.between(local(NEW_YORK, 2026, 3, 8), local(NEW_YORK, 2026, 3, 9))
    autumn = nights.between(local(NEW_YORK, 2026, 11, 1), local(NEW_YORK, 2026, 11, 2))

    assert spring == timedelta(hours=1)
    assert autumn == timedelta(hours=3)


def test_interval_inside_skipped_hour_holds_nothing() -> None:
    spring = (local(NEW_YORK, 2026, 3, 8), local(NEW_YORK, 2026, 3, 9))

    # 00:30-01:30 is whole; 01:45-02:30 keeps 01:45-02:00 EST (its end, in the skipped hour,
    # becomes the transition); 02:35-02:50 vanishes; 03:00-04:00 is whole.
    assert NY_NIGHTS.between(*spring) == timedelta(hours=2, minutes=15)
    assert NY_NIGHTS.next_open(local(NEW_YORK, 2026, 3, 8, 1, 55)) == local(
        NEW_YORK, 2026, 3, 8, 1, 55
    )
    assert NY_NIGHTS.next_open(local(NEW_YORK, 2026, 3, 8, 1, 30)) == local(
        NEW_YORK, 2026, 3, 8, 1, 45
    )


def test_midnight_spring_forward_in_beirut() -> None:
    # 2026-03-29 00:00 EET jumps to 01:00 EEST: Saturday's 24:00 and Sunday's 00:00 are both
    # that transition instant, so Saturday keeps 24h and Sunday's 00:00-02:00 holds 1h.
    transition = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)

    assert BEIRUT_LATE.between(local(BEIRUT, 2026, 3, 28), transition) == timedelta(hours=24)
    assert BEIRUT_LATE.between(transition, local(BEIRUT, 2026, 3, 29, 12)) == timedelta(hours=1)
    assert BEIRUT_LATE.add(local(BEIRUT, 2026, 3, 28, 23, 30), timedelta(hours=1)) == (
        datetime(2026, 3, 28, 22, 30, tzinfo=UTC)
    )


def test_whole_days_follow_dst_in_berlin() -> None:
    always = calendar("Europe/Berlin", {day: ["00:00-24:00"] for day in ("sat", "sun", "mon")})

    assert always.between(local(BERLIN, 2026, 3, 29), local(BERLIN, 2026, 3, 30)) == timedelta(
        hours=23
    )
    assert always.between(local(BERLIN, 2026, 10, 25), local(BERLIN, 2026, 10, 26)) == (
        timedelta(hours=25)
    )
    saturday_noon = local(BERLIN, 2026, 3, 28, 12, 0)
    deadline = always.add(saturday_noon, timedelta(hours=24))
    assert deadline == saturday_noon.astimezone(UTC) + timedelta(hours=24)
    assert deadline.astimezone(BERLIN).hour == 13  # 24 real hours, not the same wall time


def test_asia_shanghai_calendar_uses_local_hours() -> None:
    deadline = CN_SUPPORT.add(datetime(2026, 3, 3, 0, 0, tzinfo=UTC), timedelta(minutes=30))

    assert deadline == datetime(2026, 3, 3, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai (UTC+8)


def test_always_open_is_plain_arithmetic() -> None:
    always = AlwaysOpen()
    start = local(NEW_YORK, 2026, 3, 7, 12, 0)

    # Aware + timedelta in Python is wall-clock arithmetic; elapsed time is UTC arithmetic.
    assert always.add(start, timedelta(days=1)) == start.astimezone(UTC) + timedelta(days=1)
    assert always.between(start, start + timedelta(days=1)) == timedelta(hours=23)  # DST
    assert always.between(start, start.astimezone(UTC) + timedelta(days=1)) == timedelta(days=1)
    assert always.between(start + timedelta(days=1), start) == timedelta(0)
    assert always.is_open(start)
    assert always.next_open(start) == start


@pytest.mark.parametrize("cal", [US_OFFICE, AlwaysOpen()])
def test_naive_datetime_is_rejected(cal: WorkingCalendar) -> None:
    naive = datetime(2026, 1, 5, 10, 0)
    aware = naive.replace(tzinfo=UTC)

    with pytest.raises(ValueError, match="timezone-aware"):
        cal.add(naive, timedelta(hours=1))
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.between(aware, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.is_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.next_open(naive)


def test_negative_amount_is_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        US_OFFICE.add(datetime(2026, 1, 5, tzinfo=UTC), timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("weekly", "message"),
    [
        ({"mon": ["18:00-09:00"]}, "must start before it ends"),
        ({"mon": ["09:00-09:00"]}, "must start before it ends"),
        ({"mon": ["09:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"mon": ["9am-5pm"]}, "HH:MM-HH:MM"),
        ({"mon": ["24:00-24:00"]}, "invalid time"),
        ({"mon": ["09:00-24:30"]}, "invalid time"),
        ({"mon": ["09:60-10:00"]}, "invalid time"),
    ],
)
def test_bad_interval_is_rejected_naming_the_field(
    weekly: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        calendar("UTC", weekly)

    assert "schedules.0.weekly" in str(caught.value)


def test_unknown_weekday_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"weekly\.monday"):
        calendar("UTC", {"monday": ["09:00-17:00"]})


def test_whole_day_and_adjacent_intervals_are_accepted() -> None:
    cal = calendar("UTC", {"mon": ["00:00-12:00", "12:00-24:00"]})

    monday = datetime(2026, 1, 5, tzinfo=UTC)
    assert cal.between(monday, monday + timedelta(days=7)) == timedelta(hours=24)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"holidays_country": "XX"}, "holidays_country"),
        ({"unexpected": True}, "unexpected"),
        ({"schedules": []}, "schedules"),
        ({"schedules": [{"weekly": {}}]}, "never open again"),
        ({"holiday_dates": ["2026-01-05"], "open_dates": ["2026-01-05"]}, "both"),
    ],
)
def test_bad_calendar_spec_is_rejected(extra: dict[str, object], message: str) -> None:
    raw: dict[str, object] = {
        "name": "bad",
        "timezone": "UTC",
        "schedules": [{"weekly": WEEKDAYS_9_TO_6}],
    }

    with pytest.raises(ValidationError, match=message):
        CalendarSpec.model_validate({**raw, **extra})


def test_calendar_closed_for_years_gives_up_with_a_clear_error() -> None:
    closed_days = [date(2026, 1, 1) + timedelta(days=n) for n in range(4 * 366)]
    cal = calendar("UTC", {"mon": ["09:00-10:00"]}, holiday_dates=closed_days)

    with pytest.raises(ValueError, match="no open time"):
        cal.add(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1))
    with pytest.raises(ValueError, match="no open time"):
        cal.next_open(datetime(2026, 1, 1, tzinfo=UTC))


def test_spec_loads_from_yaml_shaped_data() -> None:
    spec = CalendarSpec.model_validate(
        {
            "name": "cn-support",
            "timezone": "Asia/Shanghai",
            "holidays_country": "CN",
            "schedules": [{"weekly": {"mon": ["13:00-18:00", "09:00-12:00"]}}],
        }
    )

    (schedule,) = spec.schedules
    assert [str(interval) for interval in schedule.weekly["mon"]] == ["09:00-12:00", "13:00-18:00"]
    with pytest.raises(ValidationError):
        spec.name = "changed"  # type: ignore[misc]
