"""Supervision figures from conversation records: routes, waits, periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.console.stats import (
    BadPeriod,
    Period,
    live_board,
    parse_period,
    period_figures,
    routes_of,
    to_csv,
    wait_seconds,
)
from gateway.conversation import Conversation, Priority, Status
from gateway.flowset import FlowSet
from gateway.messages import ChannelName
from gateway.store import Store
from tests.conftest import PARIS, ROOT
from tests.loop_gaps import longest_hold

T0 = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def flows() -> FlowSet:
    flows = FlowSet(Path(ROOT / "flows.yaml"))
    flows.reload()
    return flows


def record(
    status: Status, route: str | None, *, queued: bool = False, taken_after: float | None = None
) -> Conversation:
    conversation = Conversation.start(ChannelName.WHATSAPP, "whatsapp:+33600000000", T0)
    conversation.status, conversation.route = status, route
    if queued:
        conversation.queued_at = T0
    if taken_after is not None:
        conversation.taken_at = T0 + timedelta(seconds=taken_after)
    return conversation


@pytest.mark.parametrize(
    ("status", "route", "queued", "expected"),
    [
        (Status.CLOSED, "danger_now", True, ["partner:emergency", "partner:3114", "listener"]),
        (Status.CLOSED, "illegal_content_closed", False, ["partner:pharos", "partner:116006", "closed_line"]),
        (Status.REFERRED, "harm_at_home", False, ["partner:119"]),
        (Status.CLOSED, "harm_at_home", True, ["partner:119", "listener"]),  # the listener offered, accepted
        (Status.CLOSED, "stop", False, ["bot_ended"]),
        (Status.ABANDONED, None, False, ["bot_ended"]),
        (Status.CLOSED, "fallback", True, ["listener"]),
        (Status.BOT, None, False, []),
    ],
)
def test_routes_of(flows: FlowSet, status: Status, route: str | None, queued: bool, expected: list[str]) -> None:
    assert routes_of(record(status, route, queued=queued), flows.engine().flow) == expected


def test_wait_is_from_the_queue_to_the_take() -> None:
    assert wait_seconds(record(Status.CLOSED, None, queued=True, taken_after=95)) == 95
    assert wait_seconds(record(Status.CLOSED, None, queued=True)) is None
    assert wait_seconds(record(Status.CLOSED, None, queued=True, taken_after=-5)) is None


def test_period_defaults_to_the_last_seven_local_days() -> None:
    period = parse_period({}, PARIS, T0)
    assert period.since == datetime(2026, 3, 4, tzinfo=PARIS) and period.until == datetime(2026, 3, 11, tzinfo=PARIS)
    period = parse_period({"from": "2026-03-10", "to": "2026-03-10"}, PARIS, T0)
    assert period.until - period.since == timedelta(days=1)
    period = parse_period({"from": "2026-03-10T08:00:00+00:00", "to": "2026-03-10T10:00"}, PARIS, T0)
    assert period.until == datetime(2026, 3, 10, 10, tzinfo=PARIS)  # a naive date-time is in the flow's timezone


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-3-1"},
        {"to": "2026-02-30"},
        {"from": "2026-03-11", "to": "2026-03-10"},
        # the calendar's ends: the day after 9999-12-31, year 1 in UTC (before: OverflowError, answered 503)
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"from": "0001-01-01T00:00:00+14:00", "to": "0001-01-02"},
    ],
)
def test_bad_periods(query: dict[str, str]) -> None:
    with pytest.raises(BadPeriod):
        parse_period(query, PARIS, T0)


def test_csv_labels_cannot_become_formulas() -> None:
    row = {"key": "x", "label": '=HYPERLINK("http://evil")', "value": 1}
    figures = {"from": "a", "to": "b", "timezone": "UTC", "total": 1, "per_hour": [], "per_channel": [],
               "wait": {"buckets": [], "answered": 0, "left_before_retake": 0, "unanswered": 0, "waiting": 0,
                        "median_seconds": None},
               "outcomes": [row], "routes": []}  # fmt: skip
    assert "outcome,x,\"'=HYPERLINK" in to_csv(figures)


async def test_the_longest_wait_is_never_below_zero_when_the_clock_stepped_back(sqlite_store: Store) -> None:
    """An entry queued at 12:00:30 by a clock then stepped back 30 s (NTP): the board said -30 s until 2026-12-05."""
    queued = datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)
    await sqlite_store.enqueue("c-1", "general", Priority.NORMAL, queued)
    board = await live_board(sqlite_store, 0, queued - timedelta(seconds=30))
    assert board["waiting"] == 1 and board["longest_wait_seconds"] == 0


class _Listed:
    """A store that has its conversations already read: what :func:`period_figures` does after the store's read."""

    def __init__(self, conversations: list[Conversation]) -> None:
        self.conversations = conversations

    async def list_conversations(self, since: datetime, until: datetime) -> list[Conversation]:
        return self.conversations


async def test_a_years_figures_are_counted_with_the_loop_turning_between_parts(flows: FlowSet) -> None:
    """20,000 conversations (a national line's year): counted in one block after the store's read (routes, waits,
    channels, hours: ~15 µs each), they held the loop 0.3 s on a loaded 2-core machine until 2026-12-06, answering no
    one. Now a part at a time. The store's read itself is in parts (tests/store/test_contract_big_reads.py): the
    records here are already read, so the whole measure is the counting."""
    routes = ["danger_now", "harm_at_home", "fallback", "stop", None]
    conversations = []
    for n in range(20_000):
        conversation = record(Status.CLOSED, routes[n % 5], queued=n % 2 == 1, taken_after=90 if n % 4 == 1 else None)
        conversation.created_at = T0 - timedelta(minutes=20 * n)
        conversation.flow_version = flows.engine().version
        conversations.append(conversation)
    period = Period(T0 - timedelta(days=366), T0 + timedelta(days=1))
    figures, longest, took = await longest_hold(period_figures(_Listed(conversations), flows, period))  # type: ignore[arg-type]
    assert figures["total"] == 20_000 and figures["wait"]["answered"] == 5_000
    assert {r["key"]: r["value"] for r in figures["routes"]}["listener"] == 10_000
    assert longest < took / 2, (longest, took)
