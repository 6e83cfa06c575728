"""Opening hours: is a schedule open now, when does that change, and how to say it.

Pure functions, no I/O: the current time is always passed in. Everything is decided in the schedule's *local
wall-clock time* (the flow's ``timezone``, e.g. Europe/Paris): an aware ``now`` in any timezone is first converted to
the local wall time, then compared with the hours as written. Hours are minutes of the day, half-open ranges
``[start, end)``; an end at or before the start runs past midnight (``mon: ["22:00-02:00"]`` is Monday 22:00 to
Tuesday 02:00) and an end may be ``24:00`` (1440).

Whether the schedule is open at a local (date, minute):

1. A *closure* covering that moment closes, whatever else says: ``hours`` absent closes the whole date(s)
   (``date`` … ``until`` inclusive); with ``hours``, only those ranges are closed (past midnight into the next day).
2. Otherwise ``always_open`` opens.
3. Otherwise it is open if an *exceptional opening* covers the moment (``hours`` absent: the whole day, even a day
   normally closed), or a *weekly* range does: the day's own ranges (``mon`` … ``sun``, else ``daily``) plus the
   tail past midnight of the previous day's overnight ranges.

Daylight-saving changes follow from working in wall time: a range 01:00-04:00 on the night clocks go forward simply
lasts one real hour less; on the night they go back, both passes through the repeated hour are open if its wall time
falls in a range, and the second pass is also open wherever the first pass ended open: a range opening at 02:30 opens
at the first 02:30 and stays open when the clocks go back to 02:00 (until 2026-12-05 it closed again for half an hour
then, mid-shift, and the young people writing were told the line was closed). ``next_change`` finds the next
instant ``is_open`` flips by checking only the candidate instants (range edges and midnights of the days in the
horizon, in both folds, plus the UTC-offset changes), never by scanning minute by minute.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.flows.model import WEEKDAYS, DatedHours, Schedule

Range = tuple[int, int]
"""Minutes of the day (start, end) as written; end <= start runs past midnight."""

DAY = 1440
REOPENING_HORIZON_DAYS = 366
"""How far ``reopening`` looks when the line does not open within two weeks (a summer closure)."""


def is_open(schedule: Schedule, now: datetime, tz: ZoneInfo) -> bool:
    """Whether ``schedule`` is open at the aware instant ``now``, judged in the local wall time of ``tz``."""
    _require_aware(now)
    local = now.astimezone(tz)
    if _open_at(schedule, local.date(), local.hour * 60 + local.minute):
        return True
    ended = _first_pass_end(local, tz)  # the repeated hour's second pass: open as the first pass ended, too
    return ended is not None and _open_at(schedule, ended.date(), ended.hour * 60 + ended.minute)


def next_change(schedule: Schedule, now: datetime, tz: ZoneInfo, horizon_days: int = 14) -> datetime | None:
    """The first instant after ``now``, at most ``horizon_days`` later, where ``is_open`` flips (in ``tz``), or None.

    Do arithmetic and comparisons on the result in UTC: within one zone Python works on wall times, and an
    ambiguous wall time (the repeated hour) never compares equal to another zone's datetime.
    """
    _require_aware(now)
    start = now.astimezone(UTC)  # compare in UTC: same-tzinfo comparisons ignore the fold
    end = start + timedelta(days=horizon_days)
    current = is_open(schedule, start, tz)
    for instant in sorted(_candidates(schedule, start, end, tz)):
        if start < instant <= end and is_open(schedule, instant, tz) != current:
            return instant.astimezone(tz)
    return None


def describe(schedule: Schedule, language: str) -> str:
    """The weekly hours in a few words: French for ``fr``, English otherwise. Dated exceptions are not described."""
    lang = "fr" if language.lower().startswith("fr") else "en"
    words = _WORDS[lang]
    if schedule.always_open:
        return words["always"]
    week = [sorted(_weekly(schedule, key)) for key in WEEKDAYS]
    if not any(week):
        return words["closed"]
    if all(day == week[0] for day in week):
        return f"{words['every']} {_ranges_text(week[0], lang)}"
    return ", ".join(
        f"{_days_text(first, last, lang)} {_ranges_text(ranges, lang)}" for first, last, ranges in _runs(week) if ranges
    )


def reopening(schedule: Schedule, now: datetime, tz: ZoneInfo, language: str) -> str:
    """When a closed ``schedule`` opens next, in words: "aujourd'hui à 9h", "tomorrow at 9:00", "le lun 28/12 à 9h".

    An empty text when it is open, or when it does not open within ``REOPENING_HORIZON_DAYS`` (looked that far only
    when it does not open within two weeks: a summer closure).
    """
    if is_open(schedule, now, tz):
        return ""
    opens = next_change(schedule, now, tz) or next_change(schedule, now, tz, REOPENING_HORIZON_DAYS)
    if opens is None:
        return ""
    lang = "fr" if language.lower().startswith("fr") else "en"
    words = _REOPEN_WORDS[lang]
    days = (opens.date() - now.astimezone(tz).date()).days
    clock = _clock(opens.hour * 60 + opens.minute, lang)
    if days <= 1:
        return f"{words['today' if days == 0 else 'tomorrow']} {clock}"
    day = f"{_DAY_NAMES[lang][opens.weekday()]} {opens.day:02d}/{opens.month:02d}"
    return f"{words['on']} {day} {words['at']} {clock}"


def clock_time(instant: datetime, tz: ZoneInfo, language: str) -> str:
    """The local time of day of ``instant`` in ``tz``, as the hours are said: "23h", "9h30"; "23:00" in English."""
    local = instant.astimezone(tz)
    return _clock(local.hour * 60 + local.minute, "fr" if language.lower().startswith("fr") else "en")


# --- is_open ---------------------------------------------------------------------------------------------------


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"'now' must be timezone-aware, got the naive {now.isoformat()}")


def _first_pass_end(local: datetime, tz: ZoneInfo) -> datetime | None:
    """For a wall time in the second pass through a repeated hour (the clocks went back), the last minute of the
    first pass (02:59 CEST, in Paris); else None."""
    first, second = local.replace(fold=0).utcoffset(), local.utcoffset()
    if local.fold == 0 or first is None or second is None or first <= second:
        return None
    now = int(local.timestamp())
    back = _first_change(tz, now - int((first - second).total_seconds()), now)  # when the clocks went back
    return datetime.fromtimestamp(back - 60, tz)


def _open_at(schedule: Schedule, day: date, minute: int) -> bool:
    if _inside(_closed_segments(schedule, day), minute):
        return False
    if schedule.always_open:
        return True
    return _inside(_open_segments(schedule, day), minute)


def _closed_segments(schedule: Schedule, day: date) -> list[Range]:
    before = day - timedelta(days=1)
    return _segments(_dated(schedule.closures, day), _dated(schedule.closures, before))


def _open_segments(schedule: Schedule, day: date) -> list[Range]:
    before = day - timedelta(days=1)
    today = _dated(schedule.openings, day) + _weekly(schedule, WEEKDAYS[day.weekday()])
    yesterday = _dated(schedule.openings, before) + _weekly(schedule, WEEKDAYS[before.weekday()])
    return _segments(today, yesterday)


def _weekly(schedule: Schedule, key: str) -> list[Range]:
    """A day's own weekly ranges: the explicit day if listed (even closed), else ``daily``."""
    if key in schedule.weekly:
        return list(schedule.weekly[key])
    return list(schedule.weekly.get("daily", []))


def _dated(items: Iterable[DatedHours], day: date) -> list[Range]:
    """The ranges of the closures or openings covering ``day``; a whole day is (0, 1440)."""
    ranges: list[Range] = []
    for item in items:
        if item.date <= day <= (item.until or item.date):
            ranges.extend([(0, DAY)] if item.hours is None else item.hours)
    return ranges


def _segments(today: list[Range], yesterday: list[Range]) -> list[Range]:
    """The half-open minute segments of one day: its own ranges cut at midnight, plus yesterday's overnight tails."""
    own = [(start, end if end > start else DAY) for start, end in today]
    tails = [(0, end) for start, end in yesterday if 0 < end <= start]
    return own + tails


def _inside(segments: Iterable[Range], minute: int) -> bool:
    return any(start <= minute < end for start, end in segments)


# --- next_change -----------------------------------------------------------------------------------------------


def _candidates(schedule: Schedule, start: datetime, end: datetime, tz: ZoneInfo) -> set[datetime]:
    """Every instant (UTC) in or around [start, end] where ``is_open`` might flip."""
    found = set(_transitions(tz, start, end))
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        for minute in _edges(schedule, day):
            found.update(_instants(day, minute, tz))
        day += timedelta(days=1)
    return found


def _edges(schedule: Schedule, day: date) -> set[int]:
    segments = _closed_segments(schedule, day) + _open_segments(schedule, day)
    return {0} | {edge for segment in segments for edge in segment}


def _instants(day: date, minute: int, tz: ZoneInfo) -> set[datetime]:
    """The UTC instants of a local wall time, in both folds (repeated or skipped times give two)."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    return {wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)}


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """The instants in (start, end] where the UTC offset of ``tz`` changes (at most one per 12 hours)."""
    step = 12 * 3600
    low, stop = int(start.timestamp()), int(end.timestamp()) + 1
    while low < stop:
        high = min(low + step, stop)
        if _offset(tz, low) != _offset(tz, high):
            yield datetime.fromtimestamp(_first_change(tz, low, high), UTC)
        low = high


def _first_change(tz: ZoneInfo, low: int, high: int) -> int:
    """The first second in (low, high] whose offset differs from ``low``'s (binary search)."""
    before = _offset(tz, low)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, middle) == before:
            low = middle
        else:
            high = middle
    return high


def _offset(tz: ZoneInfo, timestamp: int) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, tz).utcoffset()


# --- describe --------------------------------------------------------------------------------------------------

_WORDS: dict[str, dict[str, str]] = {
    "fr": {"always": "24h/24, 7j/7", "closed": "fermé", "every": "tous les jours", "and": " et "},
    "en": {"always": "24/7", "closed": "closed", "every": "every day", "and": " and "},
}
_REOPEN_WORDS: dict[str, dict[str, str]] = {
    "fr": {"today": "aujourd'hui à", "tomorrow": "demain à", "on": "le", "at": "à"},
    "en": {"today": "today at", "tomorrow": "tomorrow at", "on": "on", "at": "at"},
}
_DAY_NAMES: dict[str, tuple[str, ...]] = {
    "fr": ("lun", "mar", "mer", "jeu", "ven", "sam", "dim"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}


def _runs(week: list[list[Range]]) -> list[tuple[int, int, list[Range]]]:
    """Consecutive days (mon → sun) with the same hours, as (first day index, last day index, ranges)."""
    runs: list[tuple[int, int, list[Range]]] = []
    for index, ranges in enumerate(week):
        if runs and runs[-1][2] == ranges:
            runs[-1] = (runs[-1][0], index, ranges)
        else:
            runs.append((index, index, ranges))
    return runs


def _days_text(first: int, last: int, lang: str) -> str:
    names = _DAY_NAMES[lang]
    return names[first] if first == last else f"{names[first]}–{names[last]}"


def _ranges_text(ranges: list[Range], lang: str) -> str:
    return _WORDS[lang]["and"].join(f"{_clock(start, lang)}–{_clock(end, lang)}" for start, end in ranges)


def _clock(minute: int, lang: str) -> str:
    hour, rest = divmod(minute, 60)
    if lang == "fr":
        return f"{hour}h{rest:02d}" if rest else f"{hour}h"
    return f"{hour}:{rest:02d}"
