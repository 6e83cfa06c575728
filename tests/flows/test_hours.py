from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.flows.hours import describe, is_open, next_change, reopening
from gateway.flows.model import WEEKDAYS, Schedule

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")

# 2026-06-01 is a Monday; 2026-03-29 and 2026-10-25 are the Sundays of the daylight-saving changes in Paris.


def schedule(**data: Any) -> Schedule:
    return Schedule.model_validate(data)


def local(text: str, fold: int = 0) -> datetime:
    """A Paris wall time, e.g. ``"2026-06-01 10:00"``."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS, fold=fold)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def opened(sched: Schedule, text: str) -> bool:
    return is_open(sched, local(text), PARIS)


DAY = schedule(weekly={"daily": ["09:00-23:00"]})


# --- is_open: weekly hours --------------------------------------------------------------------------------------


def test_ordinary_open_and_closed() -> None:
    assert opened(DAY, "2026-06-01 09:00")
    assert opened(DAY, "2026-06-01 22:59:59")
    assert not opened(DAY, "2026-06-01 08:59:59")
    assert not opened(DAY, "2026-06-01 23:00")
    assert not opened(DAY, "2026-06-02 03:00")


def test_several_ranges_a_day() -> None:
    sched = schedule(weekly={"daily": ["09:00-12:00", "14:00-18:30"]})
    assert opened(sched, "2026-06-01 11:59")
    assert not opened(sched, "2026-06-01 12:00")
    assert not opened(sched, "2026-06-01 13:59")
    assert opened(sched, "2026-06-01 14:00")
    assert opened(sched, "2026-06-01 18:29")
    assert not opened(sched, "2026-06-01 18:30")


def test_monday_night_into_tuesday() -> None:
    sched = schedule(weekly={"mon": ["22:00-02:00"]})
    assert not opened(sched, "2026-06-01 21:59")
    assert opened(sched, "2026-06-01 22:00")
    assert opened(sched, "2026-06-01 23:59")
    assert opened(sched, "2026-06-02 00:00")
    assert opened(sched, "2026-06-02 01:59")
    assert not opened(sched, "2026-06-02 02:00")
    assert not opened(sched, "2026-06-02 23:00")  # Tuesday has no range of its own
    assert not opened(sched, "2026-06-01 01:00")  # nor does Sunday night spill into Monday


def test_sunday_night_into_monday() -> None:
    sched = schedule(weekly={"sun": ["20:00-03:00"]})
    assert opened(sched, "2026-05-31 20:00")
    assert opened(sched, "2026-06-01 02:59")
    assert not opened(sched, "2026-06-01 03:00")
    assert not opened(sched, "2026-05-31 02:00")  # Saturday had nothing


def test_daily_applies_to_days_not_listed() -> None:
    sched = schedule(weekly={"daily": ["09:00-17:00"], "sat": ["10:00-12:00"], "sun": "closed"})
    assert opened(sched, "2026-06-05 16:00")  # Friday: daily
    assert opened(sched, "2026-06-06 11:00")  # Saturday: its own hours
    assert not opened(sched, "2026-06-06 16:00")
    assert not opened(sched, "2026-06-07 11:00")  # Sunday: explicitly closed


def test_overnight_tail_follows_the_previous_day() -> None:
    sched = schedule(weekly={"daily": ["22:00-02:00"], "sun": []})
    assert opened(sched, "2026-06-07 01:00")  # Saturday night into Sunday
    assert not opened(sched, "2026-06-07 23:00")  # Sunday is closed
    assert not opened(sched, "2026-06-08 01:00")  # so no Sunday night into Monday
    assert opened(sched, "2026-06-08 23:00")


def test_end_at_24_00_and_at_midnight() -> None:
    late = schedule(weekly={"daily": ["20:00-24:00"]})
    assert opened(late, "2026-06-01 23:59:59")
    assert not opened(late, "2026-06-02 00:00")
    to_midnight = schedule(weekly={"daily": ["20:00-00:00"]})  # runs "past" midnight by zero minutes
    assert opened(to_midnight, "2026-06-01 23:59")
    assert not opened(to_midnight, "2026-06-02 00:00")
    whole = schedule(weekly={"mon": ["00:00-24:00"]})
    assert opened(whole, "2026-06-01 00:00")
    assert opened(whole, "2026-06-01 23:59")
    assert not opened(whole, "2026-06-02 00:00")


def test_empty_schedule_is_closed() -> None:
    assert not opened(schedule(), "2026-06-01 12:00")


# --- is_open: closures and openings ------------------------------------------------------------------------------


def test_whole_day_closure() -> None:
    sched = schedule(weekly={"daily": ["09:00-23:00"]}, closures=[{"date": "2026-12-25", "reason": "Noël"}])
    assert opened(sched, "2026-12-24 12:00")
    assert not opened(sched, "2026-12-25 12:00")
    assert opened(sched, "2026-12-26 12:00")


def test_whole_day_closure_cuts_the_previous_night_tail() -> None:
    sched = schedule(weekly={"daily": ["20:00-02:00"]}, closures=[{"date": "2026-12-25"}])
    assert opened(sched, "2026-12-24 23:00")
    assert not opened(sched, "2026-12-25 01:00")
    assert not opened(sched, "2026-12-25 21:00")
    assert opened(sched, "2026-12-26 01:00")  # the whole-day closure does not run past its own midnight


def test_partial_day_closure() -> None:
    sched = schedule(weekly={"daily": ["09:00-23:00"]}, closures=[{"date": "2026-12-24", "hours": ["18:00-23:00"]}])
    assert opened(sched, "2026-12-24 17:59")
    assert not opened(sched, "2026-12-24 18:00")
    assert opened(sched, "2026-12-23 20:00")


def test_partial_closure_past_midnight() -> None:
    sched = schedule(weekly={"daily": ["00:00-24:00"]}, closures=[{"date": "2026-12-31", "hours": "22:00-03:00"}])
    assert opened(sched, "2026-12-31 21:59")
    assert not opened(sched, "2026-12-31 22:00")
    assert not opened(sched, "2027-01-01 02:59")
    assert opened(sched, "2027-01-01 03:00")
    assert opened(sched, "2027-01-01 23:00")


def test_multi_day_closure_with_until() -> None:
    sched = schedule(weekly={"daily": ["09:00-23:00"]}, closures=[{"date": "2026-08-01", "until": "2026-08-15"}])
    assert opened(sched, "2026-07-31 22:00")
    assert not opened(sched, "2026-08-01 10:00")
    assert not opened(sched, "2026-08-08 10:00")
    assert not opened(sched, "2026-08-15 22:00")
    assert opened(sched, "2026-08-16 09:00")


def test_multi_day_partial_closure_applies_each_day() -> None:
    closure = {"date": "2026-08-01", "until": "2026-08-03", "hours": ["12:00-14:00"]}
    sched = schedule(weekly={"daily": ["09:00-23:00"]}, closures=[closure])
    for day in ("2026-08-01", "2026-08-02", "2026-08-03"):
        assert opened(sched, f"{day} 11:00")
        assert not opened(sched, f"{day} 13:00")
    assert opened(sched, "2026-08-04 13:00")


def test_always_open_unless_closed() -> None:
    sched = schedule(always_open=True, closures=[{"date": "2026-05-01", "hours": ["10:00-12:00"]}])
    assert opened(sched, "2026-04-30 03:00")
    assert opened(sched, "2026-05-01 09:59")
    assert not opened(sched, "2026-05-01 10:00")
    assert opened(sched, "2026-05-01 12:00")


def test_exceptional_opening_on_a_closed_day() -> None:
    sched = schedule(weekly={"daily": ["09:00-17:00"], "sun": "closed"}, openings=[{"date": "2026-06-07"}])
    assert not opened(sched, "2026-05-31 12:00")
    assert opened(sched, "2026-06-07 00:00")
    assert opened(sched, "2026-06-07 23:59")
    assert not opened(sched, "2026-06-14 12:00")


def test_exceptional_opening_adds_hours() -> None:
    sched = schedule(weekly={"daily": ["09:00-17:00"]}, openings=[{"date": "2026-12-31", "hours": ["20:00-04:00"]}])
    assert opened(sched, "2026-12-31 10:00")  # the weekly hours still apply
    assert not opened(sched, "2026-12-31 18:00")
    assert opened(sched, "2026-12-31 23:00")
    assert opened(sched, "2027-01-01 03:59")
    assert not opened(sched, "2027-01-01 04:00")


def test_closure_beats_opening() -> None:
    sched = schedule(
        openings=[{"date": "2026-12-25"}],
        closures=[{"date": "2026-12-25", "hours": ["12:00-14:00"]}],
    )
    assert opened(sched, "2026-12-25 11:00")
    assert not opened(sched, "2026-12-25 13:00")
    assert opened(sched, "2026-12-25 15:00")
    fully = schedule(openings=[{"date": "2026-12-25"}], closures=[{"date": "2026-12-24", "until": "2026-12-26"}])
    assert not opened(fully, "2026-12-25 12:00")


# --- is_open: time zones and daylight saving ---------------------------------------------------------------------


def test_now_in_utc_and_in_another_timezone() -> None:
    # 2026-06-01 07:30 UTC is 09:30 in Paris (UTC+2) and 03:30 in New York.
    assert is_open(DAY, utc("2026-06-01 07:30"), PARIS)
    assert is_open(DAY, utc("2026-06-01 07:30").astimezone(NEW_YORK), PARIS)
    assert not is_open(DAY, utc("2026-06-01 06:30"), PARIS)
    assert not is_open(DAY, datetime(2026, 6, 1, 2, 30, tzinfo=NEW_YORK), PARIS)
    # The same instant judged by a New York schedule: 03:30 there, closed.
    assert not is_open(DAY, utc("2026-06-01 07:30"), NEW_YORK)


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(DAY, datetime(2026, 6, 1, 12, 0), PARIS)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_change(DAY, datetime(2026, 6, 1, 12, 0), PARIS)


def test_spring_forward_shortens_a_night_range() -> None:
    # 2026-03-29: 02:00 CET (01:00 UTC) jumps to 03:00 CEST.
    sched = schedule(weekly={"sun": ["01:00-04:00"]})
    assert not is_open(sched, utc("2026-03-28 23:59"), PARIS)  # 00:59 CET
    assert is_open(sched, utc("2026-03-29 00:00"), PARIS)  # 01:00 CET
    assert is_open(sched, utc("2026-03-29 00:59"), PARIS)  # 01:59 CET
    assert is_open(sched, utc("2026-03-29 01:00"), PARIS)  # 03:00 CEST
    assert not is_open(sched, utc("2026-03-29 02:00"), PARIS)  # 04:00 CEST
    assert next_change(sched, utc("2026-03-29 00:00"), PARIS) == utc("2026-03-29 02:00")  # two real hours


def test_spring_forward_skipped_hour() -> None:
    skipped = schedule(weekly={"sun": ["02:00-03:00"]})
    assert not any(is_open(skipped, utc("2026-03-29 00:00") + timedelta(minutes=m), PARIS) for m in range(0, 180, 5))
    assert next_change(skipped, local("2026-03-29 00:00"), PARIS) == local("2026-04-05 02:00")
    # A range starting inside the skipped hour opens when the clocks jump.
    inside = schedule(weekly={"sun": ["02:30-05:00"]})
    assert next_change(inside, local("2026-03-29 00:00"), PARIS) == utc("2026-03-29 01:00")
    assert is_open(inside, utc("2026-03-29 01:00"), PARIS)


def test_fall_back_lengthens_a_night_range() -> None:
    # 2026-10-25: 03:00 CEST (01:00 UTC) goes back to 02:00 CET; 02:00-03:00 happens twice.
    sched = schedule(weekly={"sun": ["01:00-04:00"]})
    assert is_open(sched, utc("2026-10-24 23:00"), PARIS)  # 01:00 CEST
    assert is_open(sched, local("2026-10-25 02:30", fold=0), PARIS)
    assert is_open(sched, local("2026-10-25 02:30", fold=1), PARIS)
    assert is_open(sched, utc("2026-10-25 02:59"), PARIS)  # 03:59 CET
    assert not is_open(sched, utc("2026-10-25 03:00"), PARIS)
    assert next_change(sched, utc("2026-10-24 23:00"), PARIS) == utc("2026-10-25 03:00")  # four real hours


def test_fall_back_repeated_hour() -> None:
    sched = schedule(weekly={"sun": ["02:00-02:30"]})
    first, second = utc("2026-10-25 00:15"), utc("2026-10-25 01:15")  # 02:15 CEST, then 02:15 CET
    assert is_open(sched, first, PARIS)
    assert is_open(sched, second, PARIS)
    assert not is_open(sched, utc("2026-10-25 00:45"), PARIS)  # 02:45 CEST
    # Closes at the first 02:30, opens again when the clocks go back to 02:00, closes at the second 02:30.
    # (An ambiguous Paris time never compares equal to another zone's: compare in UTC.)
    changes = [next_change(sched, utc(f"2026-10-25 {start}"), PARIS) for start in ("00:15", "00:30", "01:00")]
    assert [change.astimezone(UTC) for change in changes if change] == [
        utc("2026-10-25 00:30"),
        utc("2026-10-25 01:00"),
        utc("2026-10-25 01:30"),
    ]
    assert [(change.hour, change.minute, change.fold) for change in changes if change] == [
        (2, 30, 0),
        (2, 0, 1),
        (2, 30, 1),
    ]


def test_a_line_opening_in_the_repeated_hour_stays_open_when_the_clocks_go_back() -> None:
    # Opens at 02:30 on the night 03:00 CEST goes back to 02:00 CET: it opens at the first 02:30 (00:30 UTC) and the
    # listeners on shift are there when the clocks go back. Until 2026-12-05 it closed at 01:00 UTC (02:00 CET) for
    # half an hour, turning the young people writing then away with the closed line ("rouvre aujourd'hui à 2h30").
    sched = schedule(weekly={"daily": ["02:30-06:00"]})
    assert not is_open(sched, utc("2026-10-25 00:15"), PARIS)  # 02:15 CEST
    assert is_open(sched, utc("2026-10-25 00:30"), PARIS)  # the first 02:30
    assert all(is_open(sched, utc("2026-10-25 00:30") + timedelta(minutes=m), PARIS) for m in range(0, 270, 5))
    assert not is_open(sched, utc("2026-10-25 05:00"), PARIS)  # 06:00 CET
    assert next_change(sched, utc("2026-10-25 00:30"), PARIS) == utc("2026-10-25 05:00")
    assert reopening(sched, utc("2026-10-25 01:10"), PARIS, "fr") == ""  # 02:10 CET: open, nothing to say


# --- next_change ------------------------------------------------------------------------------------------------


def test_next_change_across_midnight() -> None:
    change = next_change(DAY, local("2026-06-01 23:30"), PARIS)
    assert change == local("2026-06-02 09:00")
    assert change is not None and change.tzinfo == PARIS and (change.hour, change.minute) == (9, 0)
    assert next_change(DAY, local("2026-06-02 09:00"), PARIS) == local("2026-06-02 23:00")
    assert next_change(DAY, local("2026-06-02 08:59:59.5"), PARIS) == local("2026-06-02 09:00")


def test_next_change_through_an_overnight_range() -> None:
    sched = schedule(weekly={"sun": ["22:00-03:00"]})
    assert next_change(sched, local("2026-05-31 12:00"), PARIS) == local("2026-05-31 22:00")
    assert next_change(sched, local("2026-05-31 22:00"), PARIS) == local("2026-06-01 03:00")
    assert next_change(sched, local("2026-06-01 03:00"), PARIS) == local("2026-06-07 22:00")


def test_next_change_merges_touching_ranges() -> None:
    sched = schedule(weekly={"daily": ["00:00-12:00", "12:00-24:00"], "sun": "closed"})
    assert next_change(sched, local("2026-06-01 10:00"), PARIS) == local("2026-06-07 00:00")
    assert next_change(sched, local("2026-06-07 10:00"), PARIS) == local("2026-06-08 00:00")


def test_next_change_skips_a_closed_holiday() -> None:
    sched = schedule(weekly={"daily": ["09:00-17:00"]}, closures=[{"date": "2026-12-25", "until": "2026-12-26"}])
    assert next_change(sched, local("2026-12-24 18:00"), PARIS) == local("2026-12-27 09:00")
    assert next_change(sched, utc("2026-12-24 17:00"), PARIS) == local("2026-12-27 09:00")


def test_next_change_in_the_utc_offset_of_the_schedule() -> None:
    change = next_change(DAY, utc("2026-06-01 22:00"), PARIS)  # 00:00 in Paris
    assert change == utc("2026-06-02 07:00")
    assert change is not None and change.utcoffset() == timedelta(hours=2)


def test_next_change_none_within_the_horizon() -> None:
    assert next_change(schedule(always_open=True), utc("2026-06-01 12:00"), PARIS) is None
    assert next_change(schedule(), utc("2026-06-01 12:00"), PARIS) is None
    yearly = schedule(openings=[{"date": "2026-12-25"}])
    assert next_change(yearly, local("2026-12-01 00:00"), PARIS) is None
    assert next_change(yearly, local("2026-12-01 00:00"), PARIS, horizon_days=30) == local("2026-12-25 00:00")
    closing = schedule(always_open=True, closures=[{"date": "2026-06-03"}])
    assert next_change(closing, local("2026-06-01 12:00"), PARIS) == local("2026-06-03 00:00")
    assert next_change(closing, local("2026-06-01 12:00"), PARIS, horizon_days=1) is None


# --- describe ---------------------------------------------------------------------------------------------------


def test_describe_every_day() -> None:
    assert describe(DAY, "fr") == "tous les jours 9h–23h"
    assert describe(DAY, "en") == "every day 9:00–23:00"


def test_describe_always_and_never() -> None:
    assert describe(schedule(always_open=True), "fr") == "24h/24, 7j/7"
    assert describe(schedule(always_open=True), "en") == "24/7"
    assert describe(schedule(), "fr") == "fermé"
    assert describe(schedule(weekly={"daily": []}), "en") == "closed"


def test_describe_per_day() -> None:
    sched = schedule(weekly={"daily": ["09:00-12:00", "14:00-18:30"], "sat": ["10:00-16:00"], "sun": "closed"})
    assert describe(sched, "fr") == "lun–ven 9h–12h et 14h–18h30, sam 10h–16h"
    assert describe(sched, "en") == "Mon–Fri 9:00–12:00 and 14:00–18:30, Sat 10:00–16:00"


def test_describe_overnight_and_single_days() -> None:
    sched = schedule(weekly={"mon": ["22:00-02:00"], "wed": ["20:00-24:00"], "thu": ["20:00-24:00"]})
    assert describe(sched, "fr") == "lun 22h–2h, mer–jeu 20h–24h"
    assert describe(sched, "en") == "Mon 22:00–2:00, Wed–Thu 20:00–24:00"


def test_describe_other_languages_fall_back_to_english() -> None:
    assert describe(DAY, "es") == "every day 9:00–23:00"
    assert describe(DAY, "fr-FR") == "tous les jours 9h–23h"


# --- properties -------------------------------------------------------------------------------------------------

ZONES = [ZoneInfo(key) for key in ("Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "UTC")]


@st.composite
def hours_text(draw: st.DrawFn) -> str:
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(0, 1440).filter(lambda minute: minute != start))
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


@st.composite
def dated(draw: st.DrawFn, low: date, high: date) -> dict[str, Any]:
    first = draw(st.dates(low, high))
    item: dict[str, Any] = {"date": first.isoformat()}
    if draw(st.booleans()):
        item["until"] = (first + timedelta(days=draw(st.integers(0, 3)))).isoformat()
    if draw(st.booleans()):
        item["hours"] = draw(st.lists(hours_text(), max_size=3))
    return item


def schedules(low: date, high: date) -> st.SearchStrategy[Schedule]:
    weekly = st.dictionaries(st.sampled_from([*WEEKDAYS, "daily"]), st.lists(hours_text(), max_size=3), max_size=4)
    return st.builds(
        lambda always, week, closures, openings: schedule(
            always_open=always, weekly=week, closures=closures, openings=openings
        ),
        st.booleans(),
        weekly,
        st.lists(dated(low, high), max_size=3),
        st.lists(dated(low, high), max_size=3),
    )


def aware(low: datetime, high: datetime) -> st.SearchStrategy[datetime]:
    return st.datetimes(low, high, timezones=st.timezones())


@given(schedules(date(2000, 1, 1), date(2100, 12, 31)), aware(datetime(2000, 1, 1), datetime(2100, 12, 31)))
@settings(max_examples=300)
def test_is_open_never_raises(sched: Schedule, now: datetime) -> None:
    for tz in ZONES:
        assert isinstance(is_open(sched, now, tz), bool)


def near(low: date, high: date) -> st.SearchStrategy[tuple[Schedule, datetime]]:
    """A schedule with dated hours around a window, and an instant in it (the windows hold DST changes)."""
    start, end = datetime.combine(low, time()), datetime.combine(high, time())
    return st.tuples(schedules(low - timedelta(days=3), high + timedelta(days=3)), aware(start, end))


SPRING_AND_AUTUMN = near(date(2026, 3, 25), date(2026, 4, 6)) | near(date(2026, 10, 1), date(2026, 11, 2))


@given(SPRING_AND_AUTUMN, st.sampled_from(ZONES), st.floats(0, 1, exclude_max=True))
@settings(max_examples=300, deadline=None)
def test_next_change_is_the_first_flip(case: tuple[Schedule, datetime], tz: ZoneInfo, fraction: float) -> None:
    sched, now = case
    horizon = 3
    found = next_change(sched, now, tz, horizon_days=horizon)
    current = is_open(sched, now, tz)
    start = now.astimezone(UTC)  # arithmetic in UTC: aware arithmetic within one zone is wall-clock arithmetic
    if found is None:
        assert is_open(sched, start + timedelta(days=horizon) * fraction, tz) == current
        return
    assert found.tzinfo is tz
    change = found.astimezone(UTC)
    just_before = change - timedelta(microseconds=1)
    assert start < change <= start + timedelta(days=horizon)
    assert is_open(sched, change, tz) != current
    assert is_open(sched, just_before, tz) == current
    probe = start + (change - start) * fraction  # anywhere before the change: unchanged
    assert is_open(sched, min(probe, just_before), tz) == current


@pytest.mark.parametrize(
    ("now", "lang", "said"),
    [
        ("2026-03-10 23:30", "fr", "demain à 9h"),
        ("2026-03-10 06:15", "fr", "aujourd'hui à 9h"),
        ("2026-03-10 06:15", "en", "today at 9:00"),
        ("2026-03-10 23:30", "en", "tomorrow at 9:00"),
        ("2026-03-10 14:00", "fr", ""),  # open: nothing to say
    ],
)
def test_reopening_in_words(now: str, lang: str, said: str) -> None:
    assert reopening(DAY, local(now), PARIS, lang) == said


def test_reopening_after_a_closed_weekend() -> None:
    weekdays = schedule(weekly={"mon": ["09:00-17:00"], "tue": ["09:00-17:00"]})
    assert reopening(weekdays, local("2026-03-10 18:00"), PARIS, "fr") == "le lun 16/03 à 9h"
    assert reopening(weekdays, local("2026-03-10 18:00"), PARIS, "en") == "on Mon 16/03 at 9:00"


def test_reopening_after_a_summer_closure_longer_than_two_weeks() -> None:
    """A three-week summer closure: on 3 August the closed line said the line reopened "tous les jours 9h–23h" (the
    weekly hours stand in for an empty `{reopens}`), and a young person coming back the next morning found it closed.
    It says the day it really reopens; a line that never reopens within the year says nothing."""
    summer = schedule(weekly={"daily": ["09:00-23:00"]}, closures=[{"date": "2026-08-01", "until": "2026-08-23"}])
    assert reopening(summer, local("2026-08-03 14:00"), PARIS, "fr") == "le lun 24/08 à 9h"
    assert reopening(summer, local("2026-08-03 14:00"), PARIS, "en") == "on Mon 24/08 at 9:00"
    shut = schedule(weekly={"daily": ["09:00-23:00"]}, closures=[{"date": "2026-01-01", "until": "2028-01-01"}])
    assert reopening(shut, local("2026-08-03 14:00"), PARIS, "fr") == ""
