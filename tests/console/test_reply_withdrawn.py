"""A listener's reply cut before its listing, then the conversation closed: withdrawn, never sent after the goodbye,
never left pending (issue 8: nothing stuck).

On Redis a listener's reply (``Actions.reply``, under the conversation's lock, not a batch) writes its transcript entry
and outbox item, then lists the item to be sent (``outbox_list``, another slot), then the record. Cut in between, the
console's request fails: the listener sees the reply failed, and the same reply sent again (the same key, its entry's
id derived from it) lists it, sent once. But closed before it is sent again, nothing listed it any more: it stayed
pending for good (the console's entry, the outbox item). Sending it at the close would deliver, after or around the
goodbye, a reply the listener believes failed. The close now withdraws it, before its goodbye: failed with its reason,
its entry shown failed, an audit line (``reply_withdrawn``) and a log line, no text.

Real cuts, no part of the gateway changed: a Redis connection reset before the reply's ``outbox_list``
(``tests/cutting_proxy.py``); then the real close and the real check.
"""

from __future__ import annotations

import logging

import pytest

from gateway.errors import ActionRefused
from gateway.store import Author, Delivery, OutboxStatus, Store
from tests.conftest import Clock
from tests.console.test_close_crash import ENDED
from tests.console.test_handback_crash import cut_while, held_by_anne, instance, redis_store
from tests.console.test_take_crash import next_check
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

WORDS = "Tu peux compter sur nous"  # Anne's reply


@pytest.mark.redis
@pytest.mark.parametrize("then", ["closed", "closed_by_a_supervisor", "sent_again"])
async def test_a_reply_cut_before_its_listing_then_closed_is_withdrawn_not_left_pending(
    redis_store: Store, redis_url: str, clock: Clock, caplog: pytest.LogCaptureFixture, then: str
) -> None:
    """Anne replies to the young person she holds; the reply is cut after its entry and item were written and before
    the item was listed to be sent: her console's request fails. Then Anne closes the conversation (or Sam, a
    supervisor, does) before she sends the reply again: the close withdraws it before its goodbye (the item failed
    with its reason, the entry shown failed, never handed to the outbox), one ``reply_withdrawn`` line naming Anne and
    one log line, no text; the goodbye is the outbox's; the reply sent again afterwards is refused (closed) and sends
    nothing; the checks add nothing. ``sent_again`` is the control: Anne sends it again (the same key) before the
    close: listed and told once, nothing withdrawn. Before, a close left the reply pending for good."""
    conversation_id = await held_by_anne(redis_store, clock)
    since = len(await redis_store.transcript(conversation_id))
    await cut_while(redis_url, clock, conversation_id, "outbox_list",
                    lambda first: first.reply(conversation_id, "anne", WORDS, key="r-1"))  # fmt: skip
    [cut] = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.LISTENER]
    assert WORDS in cut.text and cut.delivery is Delivery.PENDING  # the gap: written, listed nowhere
    clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s), the reply's claim too
    _, actions = instance(redis_store, clock)
    if then == "sent_again":
        assert (await actions.reply(conversation_id, "anne", WORDS, key="r-1")).id == cut.id
    with caplog.at_level(logging.WARNING):
        if then == "closed_by_a_supervisor":
            await actions.close(conversation_id, "sam", "cyberbullying", supervisor=True)
        else:
            await actions.close(conversation_id, "anne", "cyberbullying")
        await next_check(redis_store, clock)
    await next_check(redis_store, clock)  # nothing more
    with pytest.raises(ActionRefused):  # her console sends it again: closed, refused, nothing sent
        await actions.reply(conversation_id, "anne", WORDS, key="r-1")

    item = await redis_store.outbox_get(conversation_id, cut.id)
    assert item is not None
    handed_out = {i.id for i in await redis_store.outbox_due(clock(), 10, run=100)}
    transcript = await redis_store.transcript(conversation_id)
    assert [e.id for e in transcript if e.author is Author.LISTENER and WORDS in e.text] == [cut.id]  # once
    goodbyes = [e.id for e in transcript if e.author is Author.BOT and ENDED in e.text]
    assert len(goodbyes) == 1 and set(goodbyes) <= handed_out  # the goodbye: the outbox's, told once
    lines = [e for e in await redis_store.audit_log() if e.action.endswith("_withdrawn")]
    said = [r.getMessage() for r in caplog.records if "withdrawn" in r.getMessage()]
    if then == "sent_again":
        assert item.status is OutboxStatus.PENDING and cut.id in handed_out  # listed: the outbox's, sent once
        assert not lines and not said
        return
    assert item.status is OutboxStatus.FAILED and "withdrawn" in (item.last_error or ""), item
    assert cut.id not in handed_out, "a withdrawn reply handed to the outbox"
    assert [e.delivery for e in transcript if e.id == cut.id] == [Delivery.FAILED]  # the console shows it failed
    assert transcript.index(next(e for e in transcript if e.id == cut.id)) < transcript.index(
        next(e for e in transcript if e.id == goodbyes[0]))  # fmt: skip
    assert [(e.action, e.subject) for e in lines] == [("reply_withdrawn", conversation_id)], lines
    assert "anne" in lines[0].detail and WORDS not in lines[0].detail
    assert len(said) == 1 and WORDS not in said[0], said
    pending = [e for e in transcript if e.delivery is Delivery.PENDING and e.id not in handed_out]
    assert not pending, "an entry left pending, listed nowhere"
    assert await redis_store.closes_begun() == {}
