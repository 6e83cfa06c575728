"""A warm referral's messages while the conversation's ending is cut short on Redis (an idle close or "Terminer" of a
held conversation, cut after its goodbye and before its record: listed as begun, the record still held): refused, as a
reply and "Orienter" are (``Actions._not_ending``), never told after the goodbye. Before, ``Referrals.ask`` and
``Referrals._tell`` did not look at the endings begun: the consent question went out after the goodbye (a review of the
listener's actions done twice or cut, 2027-01)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import pytest

from gateway.errors import ActionRefused
from gateway.notices.referrals import Referrals
from gateway.store import Author, Store
from tests.conftest import Clock
from tests.console.test_handback_crash import held_by_anne, instance, redis_store
from tests.console.test_take_crash import next_check
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url
from tests.test_leaving_cut import cut_at, timers_of

__all__ = ["redis_store", "redis_url"]  # fixtures used below


def referrals(store: Store, clock: Clock) -> Referrals:
    """The warm referrals of one instance, on ``store`` (no SMTP server: a yes is not tried here)."""
    dispatcher, actions = instance(store, clock)
    return Referrals(dispatcher, cast(Any, store), actions.flows, None, clock=clock)


@pytest.mark.redis
@pytest.mark.parametrize("action", ["ask", "declined"])
async def test_a_referral_on_a_held_conversation_whose_idle_close_was_cut_tells_nothing_after_the_goodbye(
    redis_store: Store, redis_url: str, clock: Clock, action: str
) -> None:
    """Anne holds a Messenger conversation and nobody writes for a day: the idle timer closes it, its goodbye written,
    the instance dies before the record (still held by Anne). Within those seconds Anne asks the consent question
    or records a "no": refused (``not_active``), as a reply is, nothing told after the goodbye. After the check:
    closed as the idle close, the goodbye the last thing told."""
    conversation_id = await held_by_anne(redis_store, clock)
    [idle] = await redis_store.due_timers(clock() + timedelta(days=2))  # the idle close, its only timer
    clock.now = idle.due_at
    since = len(await redis_store.transcript(conversation_id))
    fire: Callable[[Store], Awaitable[object]] = lambda store: timers_of(store, clock).fire_due()  # noqa: E731
    await cut_at(redis_url, clock, conversation_id, script_text("put_conversation"), fire)
    [goodbye] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]

    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
    with pytest.raises(ActionRefused) as refusal:
        if action == "ask":
            await referrals(redis_store, clock).ask(conversation_id, "anne", "116006")
        else:
            await referrals(redis_store, clock).refer(conversation_id, "anne", "116006", False, [], "", "r1")
    assert refusal.value.code == "not_active", refusal.value
    await next_check(redis_store, clock)

    written = (await redis_store.transcript(conversation_id))[since:]
    to_them = [e for e in written if e.author in (Author.BOT, Author.LISTENER)]
    assert [e.id for e in to_them] == [goodbye.id], [e.text for e in to_them]  # the goodbye, nothing after it
