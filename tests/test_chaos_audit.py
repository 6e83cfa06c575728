"""bench/chaos.py's audit of the replies' copies against the bound docs/guarantees.md and docs/deployment.md state
(since 2026-12-07: before, each copy no transcript records was labelled by the fault it was in flight at, "within the
bound", and the bound itself never checked). Made-up copies and faults on one clock; no process is started."""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from aiohttp import ClientSession

from bench.chaos import (
    FLOOD_BURST,
    FLOOD_DANGER_AT,
    FLOOD_LIMIT,
    IN_BOUND,
    LOGGED,
    SECRET_KEY,
    SEND_TIMEOUT,
    Audit,
    Fault,
    Platforms,
    Sent,
    at_failover,
    audit_floods,
    beyond_bound,
    cause,
    claimed,
    explained,
    extra_conversations,
    in_flight,
    note_moves,
    repeated,
    replies,
    sends_logged,
)
from bench.chaos_channels import Copy
from gateway.conversation import Conversation, Status
from gateway.ids import inbound_entry_id
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound, Outbound
from gateway.outbox import Outbox
from gateway.store import OutboxItem, open_store
from gateway.store.codec import encode_outbound
from tests.conftest import Clock

KILL = Fault("kill", start=100.0, end=104.0, target="a-1")
REDIS = Fault("redis", start=200.0, end=205.0)


def copy(pid: str, sender: str, at: float, held: float = 0.05, waited: float | None = None) -> Copy:
    return Copy("52000100000001", "Bonjour, je suis le bot.", pid, sender, at, held, waited)


def violations(copies: list[Copy], recorded: set[str], faults: list[Fault]) -> list[list[str]]:
    return [lines for anchor, group in replies(copies, recorded) if (lines := beyond_bound(anchor, group, faults, 0.0))]


def test_a_send_in_flight_at_a_kill_sent_again_after_the_lease_is_within_the_bound() -> None:
    killed, again = copy("p1", "a-1", 99.8), copy("p2", "b-1", 114.9)
    assert violations([killed, again], {"p2"}, [KILL]) == []


def test_a_send_in_flight_at_a_freeze_sent_again_by_the_other_instance_is_within_the_bound_once() -> None:
    """``freeze`` (since 2026-12-07): the frozen instance's copy accepted as it froze (or while it slept) and recorded
    nowhere is the freeze's; a second such copy of one reply is beyond the bound, as at a kill; another instance's
    copy is never the freeze's."""
    frozen = Fault("freeze", start=100.0, end=120.0, target="a-1")
    stopped, again = copy("p1", "a-1", 100.5), copy("p2", "b-1", 116.0)
    assert in_flight(stopped, [frozen]) == "freeze" and in_flight(again, [frozen]) is None
    assert violations([stopped, again], {"p2"}, [frozen]) == []
    (lines,) = violations([stopped, copy("p3", "a-1", 121.0), again], {"p2"}, [frozen])
    assert any("a second copy in flight at one freeze" in line for line in lines)


def test_ambiguous_sends_to_a_hung_provider_repeat_once_per_timed_out_attempt() -> None:
    hung = Fault("provider-hang-long", start=300.0, end=324.0, target="telegram")
    first = copy("p1", "a-1", 324.0, held=24.0, waited=SEND_TIMEOUT)
    second = copy("p2", "a-1", 324.0, held=8.0, waited=SEND_TIMEOUT)
    third = copy("p3", "a-1", 324.1)
    assert violations([first, second, third], {"p3"}, [hung]) == []
    assert explained(third, [first, second, third], [hung], 0.0) == (
        "a-1@324.0s timeout, a-1@324.0s timeout, a-1@324.1s recorded"
    )


def test_two_copies_in_flight_at_one_kill_are_beyond_the_bound() -> None:
    """Three copies of one reply, two of them labelled "kill" by the one kill: each within the bound for the copy's
    label (what the audit said before), but a crash repeats only the one send in flight at that instant."""
    copies = [copy("p1", "a-1", 99.5), copy("p2", "a-1", 99.9), copy("p3", "b-1", 115.0)]
    assert [in_flight(c, [KILL]) for c in copies[:2]] == ["kill", "kill"]  # the old audit: all within the bound
    (lines,) = violations(copies, {"p3"}, [KILL])
    assert any("a second copy in flight at one kill" in line for line in lines)
    assert any(line.startswith("received 3 times (the bound 2") for line in lines)
    assert all("nearest fault: kill a-1 at 100.0–104.0 s" in line for line in lines)


def test_a_send_recorded_then_sent_again_is_beyond_the_bound_whatever_fault_is_near() -> None:
    """The recorded send accepted at 199.0 s, a Redis restart from 200 s, the same reply sent again at 203 s: the
    copy's label is "redis" (within the bound by the copy alone) but it repeats a send already recorded as sent."""
    recorded, again = copy("p1", "a-1", 199.0), copy("p2", "a-1", 203.0)
    assert in_flight(again, [REDIS]) in IN_BOUND
    (lines,) = violations([recorded, again], {"p1"}, [REDIS])
    assert lines == [
        "a-1@203.0s sent again 3.9 s after the provider accepted the recorded send (a-1@199.0s);"
        " nearest fault: redis at 200.0–205.0 s, -1.0 s from its start"
    ]


def test_a_copy_no_fault_explains_is_shown_with_the_fault_nearest_it() -> None:
    (lines,) = violations([copy("p1", "a-1", 150.0), copy("p2", "a-1", 151.0)], {"p2"}, [KILL, REDIS])
    assert lines == [
        "a-1@150.0s, held 0.1 s, the gateway hung up never: no fault explains it;"
        " nearest fault: kill a-1 at 100.0–104.0 s, +50.0 s from its start"
    ]


def test_the_same_text_sent_twice_to_one_recipient_is_two_replies() -> None:
    """Two entries of one text (a question asked again) each recorded: two replies of one copy, nothing repeated."""
    assert violations([copy("p1", "a-1", 10.0), copy("p2", "a-1", 40.0)], {"p1", "p2"}, []) == []
    assert [len(group) for _, group in replies([copy("p1", "a-1", 10.0), copy("p2", "a-1", 40.0)], {"p1", "p2"})] == [
        1,
        1,
    ]


def test_an_attempt_timed_out_before_a_kill_is_a_timeout_not_a_second_copy_of_the_kill() -> None:
    """Seed 90's WhatsApp hang (68.8–91.7 s) and kill of b-3 at 88.0 s: b-3's first attempt timed out at 15 s, its
    retry was held when b-3 was killed, both accepted as the hang ended, then a-1's resend after the lease: one copy
    per timed-out attempt and the send in flight at the crash, within the bound. Before, both were labelled "kill"
    (a kill named first for any copy its instance never heard of) and the reply shown beyond the bound."""
    hang = Fault("provider-hang-long", start=68.8, end=91.7, target="whatsapp")
    kill = Fault("kill", start=88.0, end=91.9, target="b-3")
    timed_out = copy("p1", "b-3", 91.7, held=22.0, waited=SEND_TIMEOUT)
    killed = copy("p2", "b-3", 91.7, held=6.5, waited=3.5)
    resent = copy("p3", "a-1", 104.0)
    assert [in_flight(c, [hang, kill]) for c in (timed_out, killed)] == ["timeout", "kill"]
    assert violations([timed_out, killed, resent], {"p3"}, [hang, kill]) == []


FAILOVER = Fault("failover", start=44.0, end=45.0, target="planned")


def violations_told(copies: list[Copy], recorded: set[str], sends: dict[str, Sent]) -> list[list[str]]:
    return [
        lines
        for anchor, group in replies(copies, recorded, sends)
        if (lines := beyond_bound(anchor, group, [FAILOVER], 0.0))
    ]


def heard(item: str, lease: str = "2026-12-07T15:52:00.100000+00:00") -> Sent:
    return Sent(item, lease, "b", "2026-12-07 15:51:45,400")


def test_a_floods_replies_of_one_text_recorded_nowhere_are_told_apart_by_their_items() -> None:
    """Seed 90's 15:51 run: four copies of one text to a flood's sender from b-2 within 0.3 s of a planned failover,
    one recorded. By text alone (before 2026-12-07) one reply received 4 times, beyond the bound; with the items
    the instances logged, four replies of one copy each (their entries lost with the old primary)."""
    copies = [copy(f"p{n}", "b-2", 45.4 + n / 10) for n in range(4)]
    assert violations_told(copies, {"p0"}, {}) != []  # the audit before: "received 4 times (the bound 2"
    sends = {LOGGED.provider_id(f"p{n}"): heard(f"item-{n}") for n in range(4)}
    assert [len(group) for _, group in replies(copies, {"p0"}, sends)] == [1, 1, 1, 1]
    assert violations_told(copies, {"p0"}, sends) == []
    # two of them with no entry either (~855 before: "both entries lost looks like one reply"): two replies
    assert [len(g) for _, g in replies(copies[2:], set(), sends)] == [1, 1]


def test_one_item_sent_under_several_claims_stays_one_reply_beyond_the_bound_and_is_named_a_resend() -> None:
    copies = [copy(f"p{n}", "b-2", 45.4 + n / 10) for n in range(3)]
    sends = {LOGGED.provider_id(f"p{n}"): heard("item-0", f"2026-12-07T15:52:0{n}.000000+00:00") for n in range(3)}
    ((anchor, group),) = replies(copies, {"p2"}, sends)
    assert anchor is copies[2] and len(group) == 3
    assert violations_told(copies, {"p2"}, sends) != []
    assert repeated(group, sends) == (
        "3 of 3 copies heard accepted: 1 item(s), 3 claim(s); one item sent under several claims: a send made again"
    )
    assert explained(anchor, group, [FAILOVER], 0.0, sends).endswith(
        "b-2@45.6s recorded [item item-0 lease 15:52:02.000]"
    )


def test_the_items_accepted_under_more_than_one_claim_are_counted_by_claims() -> None:
    """The run's own measure of sends made again, whatever the transcripts lost: an item accepted under two claims
    (its send made again), another once, a reply in two parts accepted under one claim (one send)."""
    sends = {
        LOGGED.provider_id("p1"): heard("item-x", "2026-12-07T15:52:00.1+00:00"),
        LOGGED.provider_id("p2"): heard("item-x", "2026-12-07T15:52:18.3+00:00"),
        LOGGED.provider_id("p3"): heard("item-y"),
        LOGGED.provider_id("p4.1"): heard("item-z"),
        LOGGED.provider_id("p4.2"): heard("item-z"),
    }
    assert claimed(sends) == "3 items, under more than one claim 1 {2: 1}"


def test_a_copy_no_instance_heard_goes_with_the_item_sent_after_it() -> None:
    """A copy sent as b-2 was killed (never heard) and the resend of its item heard, beside another item of the same
    text: two replies, the unheard copy with the item resent after it arrived."""
    killed, resent, other = copy("p1", "b-2", 45.0), copy("p2", "a-1", 60.0), copy("p3", "a-1", 45.2)
    sends = {LOGGED.provider_id("p2"): heard("item-x"), LOGGED.provider_id("p3"): heard("item-y")}
    grouped = [sorted(c.provider_id for c in g) for _, g in replies([killed, resent, other], set(), sends)]
    assert grouped == [["p1", "p3"], ["p2"]]  # p3's item heard at 45.2 s, the first after p1 arrived (44.95 s)


async def test_the_outbox_logs_each_send_for_the_audit_without_text_recipient_or_provider_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox's DEBUG lines (since 2026-12-07) as ``gateway serve`` formats them are read back by
    :func:`sends_logged`: each provider id's digest names its item and claim, a reply in parts each part's; they
    hold neither the text, nor the recipient, nor a provider id."""

    class Parts:
        async def send(self, message: Outbound, first_part: int = 0) -> str | None:
            return f"mid.{message.id}.1 mid.{message.id}.2"  # a reply in two parts

    store = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    clock = Clock(datetime(2026, 12, 7, 15, 0, tzinfo=UTC))
    try:
        outbound = Outbound("r1", "c1", ChannelName.TELEGRAM, "52000100000001", "Bonjour, je suis le bot.")
        await store.outbox_put(OutboxItem("r1", "c1", encode_outbound(outbound), clock.now))
        with caplog.at_level(logging.DEBUG, logger="gateway.outbox"):
            outbox = Outbox(store, {ChannelName.TELEGRAM: Parts()}, clock=clock, keyed=KeyedHash(SECRET_KEY))
            assert await outbox.deliver_due() == 1  # the instances' key (bench/load.py's): the audit's hashes
    finally:
        await store.close()
    form = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")  # gateway/cli.py's
    lines = [form.format(r) for r in caplog.records if r.name == "gateway.outbox" and r.levelno == logging.DEBUG]
    assert len(lines) == 2  # sending, accepted
    assert not any(secret in line for line in lines for secret in ("52000100000001", "Bonjour", "mid.r1"))
    sends = sends_logged([("a", lines)])
    assert set(sends) == {LOGGED.provider_id("mid.r1.1"), LOGGED.provider_id("mid.r1.2")}
    item = LOGGED.logged_id("r1")  # the item named by its keyed form (since 2026-12-07), never its id
    assert {(s.item, s.by, s.lease[:19]) for s in sends.values()} == {(item, "a", "2026-12-07T15:00:15")}
    assert not any("r1 " in line or line.endswith("r1") for line in lines)


def test_a_floods_messages_lost_with_a_failovers_old_primary_are_neither_refused_nor_silenced() -> None:
    """Seed 90 behind Sentinel (both runs at 17:20 and 17:26): a Messenger burst met the planned failover at 44 s, 9
    of its first 20 messages (a word of danger among them) acknowledged then never recorded, shown as "refused (of
    the first 20: 9)" and "silenced beyond the bound 1", as if the gate had refused them: they were lost with the
    old primary (asynchronous replication), as the walks' messages acknowledged then, which are counted apart."""
    platforms = Platforms([], cast(ClientSession, None), random.Random(0), 0.0)
    users: Counter[str] = Counter()
    sender, messenger = "flood-1", ChannelName.MESSENGER
    lost = {3, *range(5, 13)}  # the word of danger at 3 among them
    for index in range(FLOOD_BURST):
        message_id = f"mid.{index}"
        platforms.flooded[messenger, message_id] = (sender, index)
        platforms.acknowledged_at[messenger, message_id] = 99.0 + index / 10
        past = index >= FLOOD_LIMIT and index not in FLOOD_DANGER_AT  # plain words past the limit: refused
        users[inbound_entry_id(Inbound(messenger, sender, message_id))] = 0 if index in lost or past else 1
    platforms.bursts[messenger, sender] = (99.0, 103.5)
    results = {messenger: Audit()}
    audit_floods(platforms, results, users, {}, [Fault("failover", start=99.5, end=100.6, target="planned")], 0.0)
    flood = results[messenger].flood
    assert (flood.within_refused, flood.silenced, flood.lost_at_failover) == (0, 0, 9)
    assert flood.past_bound == 0 and flood.refused == 9 + 17  # and the plain words past the limit


def test_a_failovers_window_lasts_until_the_instances_moved_to_the_new_primary_by_their_logs() -> None:
    """A failover's window (``at_failover``, ``cause``) follows the instances' logs since 2026-12-07 (night): an
    instance's "the store failed briefly" line comes ``SETTLE`` s after its last failure, its connections to the old
    primary cut, and until then its writes went there. Until then it ended 2 s after the Sentinels named the new
    primary: an answer 2.6 s after it, from an instance that moved 2.9 s after it (soak67's run S), was counted as a
    loss beyond the window. A line from before the failover, or from another instance's kill, moves nothing."""
    offset = datetime(2026, 12, 7, 21, 37, 0).timestamp() - 1000.0  # the wall clock at monotonic 1000.0 (local time)
    fault = Fault("failover", start=1055.0, end=1057.6, target="planned :41199 → :44657")

    def line(second: float, spent: float) -> str:
        at = datetime(2026, 12, 7, 21, 37, 0) + timedelta(seconds=second)
        return (f"{at:%Y-%m-%d %H:%M:%S},{at.microsecond // 1000:03d} WARNING gateway.outage_log: the store failed"
                f" briefly: 6 failures in {spent:.1f} s (outbox 1, http 1 answered 503); it answers again")  # fmt: skip

    assert at_failover(1059.5, [fault]) and not at_failover(1060.2, [fault])  # the Sentinels' end + 2 s, alone
    logs = [
        ("a", [line(40.0, 0.0), line(60.5, 0.0), line(61.2, 0.3)]),
        ("b", ["a line of something else"]),
        ("c", [line(68.0, 0.1)]),
    ]  # c's failures began 8 s after the Sentinels: a restart's, not a move
    note_moves([fault], logs, offset)
    assert fault.moved == pytest.approx({"a": 1058.5})  # 60.5 s less SETTLE: the first after the failover's start
    assert at_failover(1060.2, [fault]) and not at_failover(1060.6, [fault])
    assert cause(copy("p1", "a-1", 1060.2), [fault]) == ("failover", fault)
    killed = Fault("failover", start=1055.0, end=1057.6, target="kill -9 :41199 → :44657")
    note_moves([killed], logs, offset)  # the old primary answered nothing after its kill: no move
    assert killed.moved == {}


def test_a_copy_sent_from_the_old_primary_before_its_instance_moved_is_not_a_recorded_send_sent_again() -> None:
    """A planned failover's two primaries (the old one writable until the Sentinels make it a replica): b moved at
    once and claimed a lapsed item on the new primary, sent it and recorded it there; a, still on the old primary
    until 76.1 s, claimed the same item there and sent it 0.1 s later, its claim and mark lost with the old primary:
    the documented repeat of a failover ("a reply whose sent mark was lost goes out twice"), not a recorded send sent
    again. Until 2026-12-07 (night) the audit counted it beyond the bound (seed 111, 8 replies). A copy from an
    instance that had moved, or whose move no log told, still is beyond it."""
    fault = Fault("failover", start=74.1, end=75.4, target="planned :58189 → :60615", moved={"a": 76.1, "b": 75.4})
    recorded, blind_copy = copy("p1", "b-4", 75.5), copy("p2", "a-4", 75.6)
    assert violations([recorded, blind_copy], {"p1"}, [fault]) == []
    late = copy("p3", "a-4", 76.5)  # a had moved: it read the new primary, where the send was recorded
    assert len(violations([recorded, late], {"p1"}, [fault])) == 1
    unknown = Fault("failover", start=74.1, end=75.4, target="planned :58189 → :60615", moved={"b": 75.4})
    assert len(violations([recorded, blind_copy], {"p1"}, [unknown])) == 1


def conversation(
    at: int, closed: int | None = None, listener: str | None = None, left: str | None = None
) -> Conversation:
    """One Telegram sender's conversation begun ``at`` s into the hour, closed ``closed`` s into it (by ``listener``,
    or the young person leaving, ``left``)."""
    hour = datetime(2026, 12, 7, 23, tzinfo=UTC)
    return Conversation(
        id=f"c{at}",
        channel=ChannelName.TELEGRAM,
        sender="42",
        pseudonym="p",
        created_at=hour + timedelta(seconds=at),
        updated_at=hour + timedelta(seconds=at),
        status=Status.QUEUED if closed is None else Status.CLOSED,
        listener=listener,
        left_how=left,
        closed_at=None if closed is None else hour + timedelta(seconds=closed),
    )


def test_a_senders_next_conversation_after_a_listeners_close_is_not_beyond_one() -> None:
    """A flood's sender writing on after a listener closed the conversation its words of danger queued: a new one,
    the gateway's rule. Until 2026-12-07 (night) counted "beyond one per sender" (seed 101 ``--floods --console 2``:
    1-2 flood senders, each after a close, from the run's own description of their conversations)."""
    closed = conversation(60, closed=77, listener="chaos-listener-0")
    assert extra_conversations([conversation(78), closed]) == (0, 1)
    assert extra_conversations([closed]) == (0, 0)
    assert extra_conversations([conversation(60), conversation(61)]) == (1, 0)  # two open at once: extra
    assert extra_conversations([conversation(60, closed=65), conversation(66)]) == (1, 0)  # no listener's close
    left = conversation(60, closed=65, listener="chaos-listener-0", left="quick_exit")
    assert extra_conversations([left, conversation(66)]) == (1, 0)  # the young person left: not a listener's close
    assert extra_conversations([conversation(60, closed=70, listener="l"), conversation(66)]) == (1, 0)  # overlap
