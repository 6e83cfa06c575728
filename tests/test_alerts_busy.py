"""One conversation the alert check cannot repair now (its lock held by another instance, or changed meanwhile) is
skipped until the next round; the rest of the round is made: the other erasures cut short, the hand-backs due, the
other repairs, the outbox alert. Said in one WARNING line (the step, the id, the error's class) and counted in
``gateway_alert_steps_skipped_total{step, error}``. Until 2026-12-07 a ``LockTimeout`` (or a ``Conflict``) ended the
whole round, every 10 s for as long as the lock was held (a supervisor's erasure on another instance, say).

On SQLite, Redis and a Redis Cluster (``store_url``); the watch wired as the app wires it (``gateway/app.py``), the
lock held by the test as another instance would hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, cast

import pytest

from gateway.alerts import REPAIR_LOCK_SECONDS, Watch
from gateway.console.actions import Actions
from gateway.console.presence import Presence
from gateway.conversation import Conversation, Status
from gateway.crypto import DataKeys, new_key
from gateway.dispatcher import Dispatcher
from gateway.erasure import EPOCH, ERASING, FAR, Eraser
from gateway.errors import Conflict, IllegalTransition, LockLost, LockTimeout
from gateway.flowset import FlowSet
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import OutboxItem, Store, open_store
from gateway.testing import SECRET_KEY, store_keys
from tests.conftest import ROOT, Clock
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.test_alerts_holders import held

__all__ = ["redis_cluster_url", "redis_url", "store_url"]  # fixtures used below

GRACE = 600.0


class Line:
    """A store, a dispatcher, the eraser and the listeners' actions, and the alert check wired as the app wires it
    (the repairs on their own ``Actions``, the conversation's lock and the erasure's waited for 2 s), on the test's
    clock; Bea's console closed."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock, self.metrics, self.presence = store, clock, Metrics(), Presence()
        self.flows = FlowSet(ROOT / "flows.yaml")
        self.flows.reload()
        self.dispatcher = Dispatcher(store, self.flows, clock=clock)
        keyed = KeyedHash("k" * 32)
        self.eraser = Eraser(store, self.dispatcher, self.flows, lambda c, s: keyed.sender(c.value, s), clock=clock)
        self.actions = Actions(self.dispatcher, store, self.flows, clock=clock)  # the console's: 10 s
        self.repairs = Actions(self.dispatcher, store, self.flows, clock=clock, lock_seconds=REPAIR_LOCK_SECONDS)
        self.watch = self.watching()

    def watching(self, **instead: Callable[..., Awaitable[bool]]) -> Watch:
        """The watch, with ``instead`` some of its repairs (by the Watch's parameter's name)."""
        actions = self.repairs
        repairs: dict[str, Callable[..., Awaitable[bool]]] = dict(
            hand_back=lambda i, listener: actions.hand_back_absent(i, listener, absent=lambda name: True),
            complete=actions.complete_hand_back, complete_close=actions.complete_close,
            complete_move=actions.complete_move, complete_take=actions.complete_take,
            complete_leaving=actions.complete_leaving,
            complete_erasure=lambda i, key: self.eraser.finish_confirmed(i, key, timeout=REPAIR_LOCK_SECONDS),
            back_in_line=actions.back_in_line,
        )  # fmt: skip
        return Watch(self.store, self.metrics, clock=self.clock, outbox_alert_seconds=60,
                     listener_present=self.presence.has, held_alert_seconds=300, handback_seconds=GRACE,
                     **(repairs | instead))  # fmt: skip

    async def erasure_cut_short(self, sender: str) -> str:
        """A young person's confirmed erasure whose instance died once "oui" was committed: listed, nothing erased."""
        cut: list[str] = []

        async def died(conversation: Conversation, key: str) -> None:
            cut.append(conversation.id)

        self.dispatcher.eraser = died
        for number, text in enumerate(["bonjour", "efface mes données", "oui"]):
            assert await self.dispatcher.handle_inbound(Inbound(ChannelName.TELEGRAM, sender, f"u-{sender}-{number}",
                                                                text))  # fmt: skip
        [conversation_id] = cut
        return conversation_id

    async def senders(self) -> list[str]:
        return sorted(c.sender for c in await self.store.list_conversations(EPOCH, FAR))

    async def status(self, conversation_id: str) -> Status | None:
        conversation = await self.store.get_conversation(conversation_id)
        return None if conversation is None else conversation.status

    async def bea_away_too_long(self) -> str:
        """A young person Bea holds, her console closed: her absence seen by a check, then the grace over."""
        conversation_id = await held(self.store, self.clock, 1, "bea")
        await self.watch.check()
        self.clock.advance(seconds=GRACE + 1)
        return conversation_id

    def skipped(self, step: str, error: str) -> float:
        labels = {"step": step, "error": error}
        return self.metrics.registry.get_sample_value("gateway_alert_steps_skipped_total", labels) or 0.0

    def stuck(self) -> float | None:
        return self.metrics.registry.get_sample_value("gateway_alert_conversations_stuck")


async def opened(store_url: str) -> Store:
    return await open_store(store_url, keys=store_keys(store_url))


async def test_an_erasure_under_way_elsewhere_skips_only_itself(
    store_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Two young people's erasures cut short, one of them under way on another instance (its lock ``erasing-<id>``
    held: a supervisor's erasure, or the CLI's); Bea away past the grace; a message waiting in the outbox for 90 s.
    One round finishes the other erasure, hands Bea's conversation back and says the outbox alert; the busy one is
    skipped (one line, counted), finished by the next round once its lock is free. Before: its LockTimeout ended the
    round, the erasure listed after it left undone (every 10 s for as long as the other instance held the lock)."""
    caplog.set_level(logging.INFO, logger="gateway")
    store = await opened(store_url)
    try:
        line = Line(store, clock)
        given_back = await line.bea_away_too_long()
        first, _ = sorted([await line.erasure_cut_short("70707070"), await line.erasure_cut_short("80808080")])
        await store.outbox_put(OutboxItem("o1", "elsewhere", {"text": "Tu n'es pas seul"}, clock()))
        clock.advance(seconds=90)
        async with store.lock(ERASING + first):  # another instance erasing the first
            await line.watch.check()
        assert set(await store.erasures_begun()) == {first}  # the second finished in the same round
        assert await line.status(given_back) == Status.QUEUED  # and Bea's conversation handed back
        assert any("90 s in the outbox" in r.getMessage() for r in caplog.records)
        assert line.skipped("erasure", "LockTimeout") == 1
        [said] = [r.getMessage() for r in caplog.records if "skipped until the next check" in r.getMessage()]
        assert said.startswith(f"alerts: erasure of conversation {first} skipped") and "LockTimeout" in said
        assert not any(secret in r.getMessage() for r in caplog.records for secret in ("70707070", "80808080", "seul"))
        await line.watch.check()  # its lock free: finished by the next round
        assert await store.erasures_begun() == {} and await line.senders() == ["bea-1"]
    finally:
        await store.close()


async def test_a_conversation_busy_early_in_the_round_holds_up_no_later_repair(store_url: str, clock: Clock) -> None:
    """A young person queued with no entry waiting (a take cut short after its queue step, or one under way) whose
    lock another instance holds past the repair's wait (2 s); Bea away past the grace; an erasure cut short. One
    round hands Bea's conversation back and finishes the erasure; the busy one is put back in line by the next round.
    Before: ``back_in_line``'s LockTimeout ended the round, the hand-back and the erasure after it skipped."""
    store = await opened(store_url)
    try:
        line = Line(store, clock)
        given_back = await line.bea_away_too_long()
        erased = await line.erasure_cut_short("70707070")
        lost, _ = await store.active_conversation(ChannelName.TELEGRAM, "lost", clock())
        await store.save_conversation(replace(lost, status=Status.QUEUED, queue="listeners", queued_at=clock()))
        async with store.lock(lost.id):  # held elsewhere longer than the check waits
            await line.watch.check()
        assert await line.status(given_back) == Status.QUEUED
        assert await store.erasures_begun() == {} and erased not in {c.id for c in await store.list_conversations(
            EPOCH, FAR)}  # fmt: skip
        assert line.skipped("back_in_line", "LockTimeout") == 1
        assert lost.id not in await store.waiting_ids()
        await line.watch.check()
        assert lost.id in await store.waiting_ids()  # back in line once its lock is free
    finally:
        await store.close()


@pytest.mark.parametrize(
    "error",
    [
        Conflict("the conversation is not waiting in a queue"),  # its queue entry changed meanwhile
        LockLost("the conversation's lock was no longer this holder's"),  # the lock's fence refused the commit
    ],
    ids=["conflict", "lock_lost"],
)
async def test_a_conflict_or_a_lost_lock_skips_that_conversation_only(
    sqlite_store: Store, clock: Clock, error: Conflict | LockLost
) -> None:
    """A repair that meets a ``Conflict`` (the conversation changed meanwhile) or a ``LockLost`` (the Redis lock's
    fence refused its writes: its lease lapsed on the way, a failover) skips that one; the next queued young person
    with no entry is put back in line, the hand-back due made, in the same round, the skip counted by class; the next
    round makes it. Before: the round ended (a ``LockLost`` until 2026-12-07, late, as an outage would)."""
    line, busy = Line(sqlite_store, clock), set()

    async def back_in_line(conversation_id: str) -> bool:
        if conversation_id in busy:  # as the store answers it
            await asyncio.sleep(0)
            raise error
        return await line.actions.back_in_line(conversation_id)

    line.watch = line.watching(back_in_line=back_in_line)
    given_back = await line.bea_away_too_long()
    ids = []
    for n in range(2):
        lost, _ = await sqlite_store.active_conversation(ChannelName.TELEGRAM, f"lost-{n}", clock())
        await sqlite_store.save_conversation(replace(lost, status=Status.QUEUED, queue="listeners", queued_at=clock()))
        ids.append(lost.id)
    first, second = sorted(ids)
    busy.add(first)
    await line.watch.check()
    assert await sqlite_store.waiting_ids() == {second, given_back}  # the first left to the next round
    assert await line.status(given_back) == Status.QUEUED
    assert line.skipped("back_in_line", type(error).__name__) == 1
    busy.clear()
    await line.watch.check()  # the next round makes it
    assert await sqlite_store.waiting_ids() == {first, second, given_back}


async def test_the_outbox_alert_is_said_before_the_repairs_that_wait_for_a_lock(
    sqlite_store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A message waiting 90 s in the outbox, and a repair waiting for a conversation's lock another instance holds
    (up to 10 s, then skipped): the outbox alert is said as the round reads the store, not once its repairs are done.
    Until 2026-12-07 it came after them: each busy conversation delayed the alert (and the ``outbox_oldest`` gauge)
    by up to 10 s, a stuck outbox told late while the repairs waited."""
    caplog.set_level(logging.INFO, logger="gateway")
    line = Line(sqlite_store, clock)
    lost, _ = await sqlite_store.active_conversation(ChannelName.TELEGRAM, "lost", clock())
    await sqlite_store.save_conversation(replace(lost, status=Status.QUEUED, queue="listeners", queued_at=clock()))
    await sqlite_store.outbox_put(OutboxItem("o1", "elsewhere", {"text": "Tu n'es pas seul"}, clock()))
    clock.advance(seconds=90)

    def alerted() -> bool:
        return any("90 s in the outbox" in r.getMessage() for r in caplog.records)

    async with sqlite_store.lock(lost.id):  # held elsewhere: the repair waits for it
        check = asyncio.create_task(line.watch.check())
        async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
            while not (alerted() or check.done()):
                await asyncio.sleep(0.01)
        assert alerted() and not check.done()  # before: said only after the repair's wait ended
        assert line.metrics.registry.get_sample_value("gateway_outbox_oldest_pending_seconds") == 90
    await check
    assert lost.id in await sqlite_store.waiting_ids()  # the lock freed within its wait: the repair made


async def test_a_conversation_whose_repair_fails_by_a_bug_holds_up_no_other_and_is_said_once_an_hour(
    sqlite_store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A young person queued with no entry waiting (a take cut short) whose repair fails by an error not the store's
    (a record in a state no step expects: ``IllegalTransition``, its text quoting the record); Bea away past the
    grace; an erasure cut short. Each round hands back, finishes the erasure, skips that one: counted, one ERROR
    line by class and code place (never the error's text), not repeated every 10 s but once an hour while it fails,
    and ``gateway_alert_conversations_stuck`` 1; repaired, 0. Before: ``check`` raised, every round (the supervisor
    restarting the worker), the repairs after it never made."""
    caplog.set_level(logging.INFO, logger="gateway")
    line, broken = Line(sqlite_store, clock), set()

    async def back_in_line(conversation_id: str) -> bool:
        if conversation_id in broken:  # as a record no step expects makes a lifecycle step refuse it
            raise IllegalTransition("queued 0612345678", "requeue")
        return await line.actions.back_in_line(conversation_id)

    line.watch = line.watching(back_in_line=back_in_line)
    given_back = await line.bea_away_too_long()
    erased = await line.erasure_cut_short("70707070")
    stuck, _ = await sqlite_store.active_conversation(ChannelName.TELEGRAM, "stuck", clock())
    await sqlite_store.save_conversation(replace(stuck, status=Status.QUEUED, queue="listeners", queued_at=clock()))
    broken.add(stuck.id)

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "alerts:" in r.getMessage()]

    await line.watch.check()
    assert await line.status(given_back) == Status.QUEUED  # the hand-back after it made
    assert await sqlite_store.erasures_begun() == {} and await line.status(erased) is None  # and the erasure
    [first] = said()
    assert first.startswith(f"alerts: back_in_line of conversation {stuck.id} failed by IllegalTransition at ")
    assert "test_alerts_busy.py" in first and "0612345678" not in first  # where, never the error's text
    assert line.skipped("back_in_line", "IllegalTransition") == 1 and line.stuck() == 1
    for _ in range(5):  # every 10 s: counted, not said again
        clock.advance(seconds=10)
        await line.watch.check()
    assert len(said()) == 1 and line.skipped("back_in_line", "IllegalTransition") == 6 and line.stuck() == 1
    clock.advance(seconds=3600)
    await line.watch.check()  # an hour on, still failing: said again
    assert len(said()) == 2 and "it failed 5 more time(s) since last said" in said()[1]
    broken.clear()
    await line.watch.check()  # the bug gone: back in line, nothing stuck
    assert line.stuck() == 0 and stuck.id in await sqlite_store.waiting_ids()


async def test_a_record_this_instance_cannot_open_is_skipped_and_said_as_such_not_as_an_outage(
    store_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Two young people's records sealed with a data key this instance does not have (a rotation half deployed: the
    instance that wrote them has the new key): one queued with no entry waiting (``back_in_line`` reads it), one held
    by Bea (read once she is away long enough). Bea's other conversation is due to go back, an erasure cut short.
    One round hands back, finishes the erasure, skips the two: ``gateway_store_up`` 1, no store failure counted, no
    "store is unreachable", one ERROR line each saying the record does not open here. Before: the DataKeyError ended
    the round and was counted as the store's failure (its outage alert said two seconds on), the rest never made."""
    caplog.set_level(logging.INFO, logger="gateway")
    rotated = DataKeys.from_settings(Settings(store=store_url, data_key=new_key(), secret_key=SECRET_KEY))
    other = await open_store(store_url, keys=rotated)  # the instance with the new key
    try:
        unopened, _ = await other.active_conversation(ChannelName.TELEGRAM, "unopened", clock())
        await other.save_conversation(replace(unopened, status=Status.QUEUED, queue="listeners", queued_at=clock()))
        bea_unopened = await held(other, clock, 2, "bea")
    finally:
        await other.close()
    store = await opened(store_url)
    try:
        line = Line(store, clock)
        given_back = await line.bea_away_too_long()
        erased = await line.erasure_cut_short("70707070")
        await line.watch.check()
        assert await line.status(given_back) == Status.QUEUED  # the hand-back made
        assert await store.erasures_begun() == {} and await line.status(erased) is None  # the erasure finished
        assert line.skipped("back_in_line", "DataKeyError") == 2  # at both rounds (Bea's absence seen, then due)
        assert line.skipped("held", "DataKeyError") == 1
        assert line.metrics.registry.get_sample_value("gateway_store_up") == 1
        failures = [s for m in line.metrics.registry.collect() if m.name == "gateway_store_failures"
                    for s in m.samples if s.name.endswith("_total") and s.value]  # fmt: skip
        assert failures == []  # not the store's failure: no outage told
        said = [r.getMessage() for r in caplog.records if "does not open on this instance" in r.getMessage()]
        assert sorted(m.split(" of conversation ")[1].split()[0] for m in said) == sorted([unopened.id, bea_unopened])
        assert not any("unreachable" in r.getMessage() for r in caplog.records)
        assert line.stuck() == 2
    finally:
        await store.close()


class Waits:
    """The real store, except that a conversation's lock (``locked_batch``) in :attr:`busy` is held elsewhere: each
    wait asked for it is recorded (:attr:`waited`: the conversation's id and how long), then refused with the
    ``LockTimeout`` the store gives once that wait is over, at once (no wall clock)."""

    def __init__(self, store: Store) -> None:
        self._store, self.busy, self.waited = store, set[str](), list[tuple[str, float]]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def locked_batch(self, conversation_id: str, timeout: float = 10.0, **kwargs: Any) -> Any:
        if conversation_id not in self.busy:
            return self._store.locked_batch(conversation_id, timeout, **kwargs)
        self.waited.append((conversation_id, timeout))

        @contextlib.asynccontextmanager
        async def refused() -> AsyncIterator[None]:
            raise LockTimeout(f"conversation {conversation_id}'s lock not had within {timeout} s")
            yield

        return refused()


async def test_the_checks_repairs_wait_two_seconds_for_a_busy_lock_a_listeners_action_ten(
    sqlite_store: Store, clock: Clock
) -> None:
    """Two conversations whose locks another instance holds: Bea's, due to go back (``hand_back_absent``), and a
    young person queued with no entry (``back_in_line``). The round asks each lock for 2 s, skips both; a listener's
    take of the second still waits 10 s. Before: each repair waited 10 s (``locked_batch``'s default), so a few busy
    conversations held the round up for tens of seconds, a hundred for a quarter of an hour."""
    waits = Waits(sqlite_store)
    line = Line(cast(Store, waits), clock)
    given_back = await line.bea_away_too_long()
    lost, _ = await sqlite_store.active_conversation(ChannelName.TELEGRAM, "lost", clock())
    await sqlite_store.save_conversation(replace(lost, status=Status.QUEUED, queue="listeners", queued_at=clock()))
    waits.busy |= {given_back, lost.id}
    await line.watch.check()
    assert sorted(waits.waited) == sorted([(given_back, REPAIR_LOCK_SECONDS), (lost.id, REPAIR_LOCK_SECONDS)])
    assert REPAIR_LOCK_SECONDS == 2.0
    assert line.skipped("hand_back", "LockTimeout") == 1 and line.skipped("back_in_line", "LockTimeout") == 1
    waits.waited.clear()
    with pytest.raises(LockTimeout):
        await line.actions.take(lost.id, "anne", 3)  # a listener's click
    assert waits.waited == [(lost.id, 10.0)]
    waits.busy.clear()
    await line.watch.check()  # free again: both made
    assert await line.status(given_back) == Status.QUEUED and lost.id in await sqlite_store.waiting_ids()


class LockWaits:
    """The real store, except that each wait asked for a lock (``lock``: a conversation's, or ``erasing-<id>``) is
    recorded (:attr:`waited`: the lock's name and how long); one in :attr:`busy` is then refused with the
    ``LockTimeout`` the store gives once that wait is over, at once (no wall clock)."""

    def __init__(self, store: Store) -> None:
        self._store, self.busy, self.waited = store, set[str](), list[tuple[str, float]]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def lock(self, name: str, timeout: float = 10.0) -> Any:
        self.waited.append((name, timeout))
        if name not in self.busy:
            return self._store.lock(name, timeout)

        @contextlib.asynccontextmanager
        async def refused() -> AsyncIterator[None]:
            raise LockTimeout(f"lock {name} not had within {timeout} s")
            yield

        return refused()


async def test_an_erasure_the_check_finishes_waits_two_seconds_for_each_conversations_lock(
    sqlite_store: Store, clock: Clock
) -> None:
    """A young person's erasure cut short, their conversation's lock held elsewhere (a message being processed on
    another instance): the check asks ``erasing-<id>``'s lock and the conversation's for 2 s each, skips it (still
    listed), and finishes it at the next round once the lock is free. Before: the conversation's lock was asked for
    10 s (``_erase_one``'s default), so each busy conversation of that person held the round up 10 s, not 2."""
    waits = LockWaits(sqlite_store)
    line = Line(cast(Store, waits), clock)
    erased = await line.erasure_cut_short("70707070")
    waits.busy.add(erased)
    waits.waited.clear()
    await line.watch.check()
    person = [name for name, _ in waits.waited if name.startswith(ERASING + "person-")]  # since 2026-12-07
    assert len(person) == 1
    expected = [
        (ERASING + erased, REPAIR_LOCK_SECONDS),
        (person[0], REPAIR_LOCK_SECONDS),
        (erased, REPAIR_LOCK_SECONDS),
    ]
    assert waits.waited == expected
    assert line.skipped("erasure", "LockTimeout") == 1 and set(await sqlite_store.erasures_begun()) == {erased}
    waits.busy.clear()
    waits.waited.clear()
    await line.watch.check()  # free again: finished, every lock asked for 2 s
    assert await sqlite_store.erasures_begun() == {} and await line.status(erased) is None
    assert {timeout for _, timeout in waits.waited} == {REPAIR_LOCK_SECONDS}


async def test_a_conversation_busy_round_after_round_is_said_once_then_once_an_hour(
    sqlite_store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A young person queued with no entry waiting whose lock another instance keeps (a slow step, a lock left by a
    dead instance until its lease lapses): each round (every 10 s) skips it and counts it; one WARNING line the first
    time, none for the next rounds, one again an hour on saying how many skips it did not say; once made, forgotten:
    busy again, said at once. Before: one WARNING line every round, on every instance (360 an hour)."""
    caplog.set_level(logging.INFO, logger="gateway")
    waits = Waits(sqlite_store)
    line = Line(cast(Store, waits), clock)
    lost, _ = await sqlite_store.active_conversation(ChannelName.TELEGRAM, "lost", clock())
    await sqlite_store.save_conversation(replace(lost, status=Status.QUEUED, queue="listeners", queued_at=clock()))
    waits.busy.add(lost.id)

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "skipped until the next check" in r.getMessage()]

    for _ in range(6):  # a minute of rounds
        await line.watch.check()
        clock.advance(seconds=10)
    assert len(said()) == 1 and line.skipped("back_in_line", "LockTimeout") == 6
    assert (
        said()[0].startswith(f"alerts: back_in_line of conversation {lost.id} skipped") and "LockTimeout" in said()[0]
    )
    clock.advance(seconds=3600)
    await line.watch.check()  # an hour on, still busy: said again
    assert len(said()) == 2 and "skipped 5 more time(s) since last said" in said()[1]
    assert line.skipped("back_in_line", "LockTimeout") == 7 and line.stuck() == 0  # busy is not stuck
    waits.busy.clear()
    await line.watch.check()  # free: made, forgotten
    assert lost.id in await sqlite_store.waiting_ids()
    assert await sqlite_store.remove_from_queue(lost.id)  # its entry lost again, its lock busy again
    waits.busy.add(lost.id)
    await line.watch.check()
    assert len(said()) == 3 and "more time(s)" not in said()[2]  # said at once, as a new incident
