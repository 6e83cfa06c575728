"""Supervision figures, computed from the store. Only counts leave this module: no id, pseudonym or text.

* :func:`live_board`: waiting now (and how many urgent), in progress, listeners online, the longest wait.
* :func:`period_figures`: for the conversations *created* in a period: per hour of the day (in the flow's
  timezone), per channel, the wait-time distribution (arrival in the queue to the first take) with how many left
  unanswered, how many left after going back to a queue before a second take, and how many still wait, closing outcomes
  by category, and the routes taken (a listener, each partner the bot referred to, the closed line, ended with
  the bot).
* :func:`to_csv`: the same figures as CSV rows ``section,key,label,value``.

Routes are read from the conversation record: ``queued_at`` says it reached a listener's queue; the rule,
interrupt or fallback named by ``route`` (in the flow version the conversation ran on) says which partners the
bot gave and whether it meant a hand-off, which, without a queue arrival, was the closed line.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from statistics import median
from typing import Any, Protocol

from gateway.conversation import Conversation, Status
from gateway.flows.engine import Engine
from gateway.flows.model import Flow, Outcome
from gateway.flowset import FlowSet
from gateway.messages import ChannelName
from gateway.store import ConversationStore, QueueEntry, QueueStore
from gateway.store.codec import PART

MAX_DAYS = 366
DEFAULT_DAYS = 7
MIN_YEAR, MAX_YEAR = 2000, 2999  # a line's history: far from the calendar's ends, where a day more or UTC overflows
# Upper bounds in seconds (None: no bound) and their labels.
WAIT_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (60, "< 1 min"), (5 * 60, "1-5 min"), (15 * 60, "5-15 min"), (30 * 60, "15-30 min"), (60 * 60, "30-60 min"),
    (None, "> 60 min"),
)  # fmt: skip


class BadPeriod(ValueError):
    """The ``from``/``to`` query does not name a period (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime  # aware
    until: datetime  # aware, excluded


def parse_period(query: Mapping[str, str], tz: tzinfo, now: datetime) -> Period:
    """``from`` and ``to`` as dates (``to`` included, local days) or ISO date-times; default: the last 7 days."""
    today = now.astimezone(tz).date()
    since = _moment(query.get("from"), tz, start=True) or _local(today - timedelta(days=DEFAULT_DAYS - 1), tz)
    until = _moment(query.get("to"), tz, start=False) or _local(today + timedelta(days=1), tz)
    if until <= since:
        raise BadPeriod("'to' must come after 'from'")
    if until - since > timedelta(days=MAX_DAYS):
        raise BadPeriod(f"a period is at most {MAX_DAYS} days")
    return Period(since, until)


def _local(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tz)


def _moment(text: str | None, tz: tzinfo, *, start: bool) -> datetime | None:
    if not text:
        return None
    if len(text) > 40:
        raise BadPeriod("a date is YYYY-MM-DD or an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(text) if len(text) != 10 else None
        day = date.fromisoformat(text) if moment is None else moment.date()
    except ValueError:
        raise BadPeriod("a date is YYYY-MM-DD or an ISO 8601 date-time") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:  # 9999-12-31's next day, year 1 in UTC: OverflowError, a 503 before
        raise BadPeriod(f"a date is between the years {MIN_YEAR} and {MAX_YEAR}")
    if moment is None:
        return _local(day if start else day + timedelta(days=1), tz)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


class StatsRoles(ConversationStore, QueueStore, Protocol):
    """What the supervision figures need of the store: conversations and the queue."""


BOARD_EARLIEST = 20  # the earliest arrivals the board's longest wait is looked for among (most often the first)


async def live_board(store: StatsRoles, listeners_online: int, now: datetime) -> dict[str, Any]:
    """The counts from the queue's order and the held status's index (``QueueStore.waiting_page``,
    ``conversation_ids_by_status``: on Redis the status's set, which a crash between two writes can leave listing
    one more until the alert check's repair), the longest wait from the earliest arrivals' records. Until 2026-12-07
    every waiting entry and every held record was read at each reload of each board (at a peak, at each queue event):
    a cost growing with the queue and with the conversations held (``tests/console/test_stats.py``)."""
    page = await store.waiting_page(BOARD_EARLIEST)
    in_progress = await store.conversation_ids_by_status(Status.WITH_LISTENER)
    return {
        "waiting": page.total,
        "urgent": page.urgent,
        "in_progress": len(in_progress),
        "listeners_online": listeners_online,
        "longest_wait_seconds": await _longest_wait(store, page.earliest, page.total, now),
    }


async def _longest_wait(store: StatsRoles, earliest: Sequence[QueueEntry], total: int, now: datetime) -> int:
    """The longest :func:`shown_wait`. An entry waits at most since its arrival (its wait is shorter once handed
    back): the records are read from the earliest arrival on, until the next cannot have waited longer (most often
    one read). Should the :data:`BOARD_EARLIEST` earliest all have been handed back since, every waiting entry is
    read, as before 2026-12-07."""
    longest = 0
    for entry in earliest:
        if longest >= int((now - entry.at).total_seconds()):
            return longest
        conversation = await store.get_conversation(entry.conversation_id)
        if conversation is not None:
            longest = max(longest, shown_wait(entry, conversation, now))
    if total <= len(earliest):
        return longest
    seen = {e.conversation_id for e in earliest}
    for entry in sorted(await store.waiting(), key=lambda e: e.at):
        if entry.conversation_id in seen:
            continue
        if longest >= int((now - entry.at).total_seconds()):
            break
        conversation = await store.get_conversation(entry.conversation_id)
        if conversation is not None:
            longest = max(longest, shown_wait(entry, conversation, now))
    return longest


def shown_wait(entry: QueueEntry, conversation: Conversation, now: datetime) -> int:
    """How long a waiting young person has been without a human (the queue's card, the board's longest wait): since
    their arrival, or since a listener handed them back or transferred them (``Conversation.waiting_since``; the
    entry keeps its arrival, its place in line). Until 2026-12-05 it was from the entry's arrival: a young person
    handed back after 25 minutes with a listener showed "attend depuis 26 min". Never below 0: a clock stepped back
    (NTP) put the arrival after now (-30 s on the board until 2026-12-05)."""
    return max(int((now - (conversation.waiting_since or entry.at)).total_seconds()), 0)


async def period_figures(store: StatsRoles, flows: FlowSet, period: Period) -> dict[str, Any]:
    conversations = await store.list_conversations(period.since, period.until)
    current = flows.engine()
    tally = _Tally(flows, current.tz)
    for start in range(0, len(conversations), PART):  # a year is 20,000 conversations: counted in one block, they
        if start:  # held the event loop 0.3 s until 2026-12-06 (~15 µs each); now a part a turn of the loop
            await asyncio.sleep(0)
        tally.add(conversations[start : start + PART])
    waits = tally.waits
    return {
        "from": period.since.isoformat(),
        "to": period.until.isoformat(),
        "timezone": str(current.tz),
        "total": len(conversations),
        "per_hour": [{"key": str(h), "label": f"{h:02d}h", "value": tally.hours[h]} for h in range(24)],
        "per_channel": [{"key": ch.value, "label": ch.value, "value": tally.channels[ch]} for ch in ChannelName],
        "wait": {
            "buckets": _wait_buckets(waits),
            "answered": len(waits) - tally.returned,
            "left_before_retake": tally.left_before_retake,
            "unanswered": tally.unanswered,
            "waiting": tally.waiting + tally.returned - tally.left_before_retake,
            "median_seconds": int(median(waits)) if waits else None,
        },
        "outcomes": _labelled(tally.outcomes, _outcome_labels(current)),
        "routes": _labelled(tally.routes, _route_labels(current)),
    }


class _Tally:
    """The period's counts, added a part of the conversations at a time."""

    def __init__(self, flows: FlowSet, tz: tzinfo) -> None:
        self.flows, self.tz = flows, tz
        self.waits: list[int] = []
        # taken, then handed back or transferred, and not taken again: their first wait is in ``waits``, but they end
        # the period back in a queue (still there, or gone from it); until 2026-12-06 they counted as answered
        self.returned = self.left_before_retake = 0
        # left before a listener took them, and no human of the line answered them (a page admin in Meta's inbox did)
        self.unanswered = 0
        # still waiting for a first human now (the line closed on them): until 2026-12-05 in no figure of the period,
        # only "en attente" on the live board; every young person who reached the queue counts in one of the three
        self.waiting = 0
        self.routes: Counter[str] = Counter()
        self.channels: Counter[ChannelName] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.hours: Counter[int] = Counter()

    def add(self, conversations: list[Conversation]) -> None:
        self.waits += [w for c in conversations if (w := wait_seconds(c)) is not None]
        returned = [c for c in conversations if back_in_queue(c)]
        self.returned += len(returned)
        self.left_before_retake += sum(1 for c in returned if not c.active)
        first = [c for c in conversations if c.queued_at and not c.taken_at and c.page_answered_at is None]
        self.unanswered += sum(1 for c in first if not c.active)
        self.waiting += sum(1 for c in first if c.active)
        self.routes.update(r for c in conversations for r in routes_of(c, self.flows.for_version(c.flow_version).flow))
        self.channels.update(c.channel for c in conversations)
        self.outcomes.update(c.outcome for c in conversations if c.outcome)
        self.hours.update(c.created_at.astimezone(self.tz).hour for c in conversations)


def wait_seconds(conversation: Conversation) -> int | None:
    """The first wait: from arrival in the queue to the first take (``Conversation.first_wait_seconds``). A record
    taken before that was kept: from its arrival to its (last) take, when both happened in that order. Until
    2026-12-05 it was that for every record: a young person handed back counted their time with the listener, one
    transferred (arrival after the take) counted as neither answered nor left unanswered."""
    if conversation.first_wait_seconds is not None:
        return conversation.first_wait_seconds
    if conversation.queued_at is None or conversation.taken_at is None:
        return None
    seconds = (conversation.taken_at - conversation.queued_at).total_seconds()
    return int(seconds) if seconds >= 0 else None


def back_in_queue(conversation: Conversation) -> bool:
    """Taken by a listener, then handed back or transferred (``waiting_since`` after the last take), and not taken
    again since: the young person is without a human again, or left so."""
    taken, since = conversation.taken_at, conversation.waiting_since
    return taken is not None and since is not None and since > taken


def routes_of(conversation: Conversation, flow: Flow) -> list[str]:
    """``listener``, ``partner:ID`` (each partner the bot gave), ``closed_line`` or ``bot_ended``."""
    if conversation.status == Status.BOT:
        return []
    spec = outcome_spec(flow, conversation.route) if conversation.route else None
    routes = [f"partner:{p}" for p in (spec.refer if spec else [])]
    if conversation.queued_at is not None:
        routes.append("listener")
    elif spec is not None and spec.handoff and conversation.status == Status.CLOSED:
        routes.append("closed_line")
    elif not routes:
        routes.append("bot_ended")
    return routes


def outcome_spec(flow: Flow, route: str) -> Outcome | None:
    """The ``then:`` of the rule, interrupt or fallback a route names."""
    if route == "fallback":
        return Outcome(handoff=flow.fallback.queue, priority=flow.fallback.priority)
    for index, rule in enumerate(flow.routing, start=1):
        if (rule.name or f"rule {index}") == route:
            return rule.then
    interrupt = flow.interrupts.get(route)
    return interrupt.then if interrupt else None


def _wait_buckets(waits: list[int]) -> list[dict[str, Any]]:
    counts = Counter(next(label for bound, label in WAIT_BUCKETS if bound is None or w < bound) for w in waits)
    return [{"key": label, "label": label, "value": counts[label]} for _, label in WAIT_BUCKETS]


def _labelled(counts: Counter[str], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    keys = [k for k in labels if counts[k]] + sorted(k for k in counts if k not in labels)
    return [{"key": k, "label": labels.get(k, k), "value": counts[k]} for k in keys]


def _outcome_labels(engine: Engine) -> dict[str, str]:
    lang = engine.flow.default_language
    return {o.id: engine.text(o.label, lang) for o in engine.flow.outcomes}


def _route_labels(engine: Engine) -> dict[str, str]:
    lang = engine.flow.default_language
    french = lang == "fr"
    labels = {"listener": "Écoutant·e" if french else "Listener"}
    labels |= {f"partner:{p}": engine.text(v.name, lang) for p, v in engine.flow.partners.items()}
    labels["closed_line"] = "Ligne fermée" if french else "Closed line"
    labels["bot_ended"] = "Fin avec le bot" if french else "Ended with the bot"
    return labels


def to_csv(figures: Mapping[str, Any]) -> str:
    """``section,key,label,value`` rows: the period, then every series. Counts only."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "label", "value"])
    writer.writerows([
        ["period", "from", "", figures["from"]], ["period", "to", "", figures["to"]],
        ["period", "timezone", "", figures["timezone"]], ["total", "", "", figures["total"]],
    ])  # fmt: skip
    wait = figures["wait"]
    series = {"per_hour": figures["per_hour"], "per_channel": figures["per_channel"], "wait": wait["buckets"],
              "outcome": figures["outcomes"], "route": figures["routes"]}  # fmt: skip
    for section, rows in series.items():
        writer.writerows([section, _safe(r["key"]), _safe(r["label"]), r["value"]] for r in rows)
    writer.writerows([["wait", "answered", "", wait["answered"]], ["wait", "unanswered", "", wait["unanswered"]],
                      ["wait", "left_before_retake", "", wait["left_before_retake"]],
                      ["wait", "waiting", "", wait["waiting"]],
                      ["wait", "median_seconds", "", wait["median_seconds"] or ""]])  # fmt: skip
    return out.getvalue()


def _safe(label: str) -> str:
    """A spreadsheet must not read a label as a formula (CSV injection)."""
    return "'" + label if label[:1] in ("=", "+", "-", "@", "\t", "\r") else label
