"""On every store (SQLite, Redis, Redis Cluster): ``gateway erase --channel whatsapp --identity`` of a young person
with no conversation left (all ended and purged, or never opened: the gate refused them), only the gate's notices
to them (``notice-<keyed hash>``), their inbox entries (keyed by the same hash) and, on WhatsApp, the catch-up's
mark to write (``ErasedStore``, which needs the identity itself), cut short at one of those steps (a reset
connection, the CLI killed).

Until 2026-12-07 such an erasure was not listed: nothing finished it (the alert check found nothing), the notice and
the inbox entry stayed, and the catch-up's mark was never written, until someone asked again. Now it is listed by
the person (``erasure.PERSON`` and the keyed identity), the identity sealed in the listing as records are (never in
clear, not even while listed), and the alert check finishes it: one line naming the CLI, nothing left listed.

The cut: a double of the real store raising StoreError at the first call of one step; nothing of the gateway
patched.
"""

from __future__ import annotations

import base64
from typing import Any, cast

import pytest

from gateway.alerts import Watch
from gateway.erasure import PERSON, Eraser
from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import InboxItem, OutboxItem, Store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import instance
from tests.store.test_contract_retention import everything

PHONE, OTHER = "whatsapp:+33612345678", "whatsapp:+33698765432"


def eraser_on(store: Any, clock: Clock, settings: Settings, store_url: str) -> Eraser:
    """The eraser as the app and the CLI wire it (the catch-up's mark, the data keys), on ``store``."""
    dispatcher, _ = instance(store, clock)
    keyed = KeyedHash(settings.secret_key.get_secret_value())
    return Eraser(cast(Any, store), dispatcher, dispatcher.flows, lambda c, s: keyed.sender(c.value, s), clock=clock,
                  erased_key=lambda c, s: keyed.erased(c.value, s), keys=store_keys(store_url))  # fmt: skip


class CutAt:
    """The real store, except that the first call of ``method`` raises StoreError before running (a reset
    connection): what was written before it stays."""

    def __init__(self, store: Store, method: str) -> None:
        self._store, self._method, self.cuts = store, method, 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name != self._method or self.cuts:
            return found

        async def cut(*args: Any, **kwargs: Any) -> Any:
            self.cuts += 1
            raise StoreError("the connection to the store was reset")

        return cut


async def person_with_no_conversation(store: Store, clock: Clock, settings: Settings) -> KeyedHash:
    """The gate's notice to PHONE and their inbox entry waiting; the same for OTHER, who is not erased."""
    keyed = KeyedHash(settings.secret_key.get_secret_value())
    for number, sender in enumerate((PHONE, OTHER)):
        key = keyed.sender("whatsapp", sender)
        await store.outbox_put(OutboxItem(f"n-{number}", "notice-" + key, {"recipient": sender, "text": "x"}, clock()))
        await store.inbox_put([InboxItem(f"in:whatsapp:SM{number}", key, {"sender": sender}, clock())])
    return keyed


async def nothing_left_of_phone(store: Store, keyed: KeyedHash) -> None:
    key, other = keyed.sender("whatsapp", PHONE), keyed.sender("whatsapp", OTHER)
    assert await store.outbox_get("notice-" + key, "n-0") is None  # before: the notice stayed
    assert not await store.inbox_waiting(key)
    assert await store.erased_at(keyed.erased("whatsapp", PHONE)) is not None  # the catch-up leaves theirs
    assert await store.outbox_get("notice-" + other, "n-1") is not None  # the other young person's stays
    assert await store.inbox_waiting(other)
    assert await store.erasures_begun() == {}


@pytest.mark.parametrize("cut", ["keep_erased", "erase_conversation", "inbox_forget"])
async def test_an_erasure_by_identity_with_no_conversation_cut_short_is_finished_by_the_alert_check(
    store: Store, store_url: str, clock: Clock, settings: Settings, cut: str
) -> None:
    keyed = await person_with_no_conversation(store, clock, settings)
    cutting = CutAt(store, cut)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings, store_url).erase_identity(
            ChannelName.WHATSAPP, PHONE, "cli", "gateway erase"
        )
    assert cutting.cuts == 1

    listed = await store.erasures_begun()
    assert list(listed) == [PERSON + keyed.sender("whatsapp", PHONE)], listed  # before: {} (nothing to finish it)
    dump = everything(store_url)
    for clear in (PHONE, "+33612345678", "33612345678"):  # the identity kept sealed only, even while listed
        assert clear not in dump and clear not in str(listed), clear
    assert base64.b64encode(PHONE.encode()).decode() not in str(listed)

    eraser = eraser_on(store, clock, settings, store_url)
    watch = Watch(store, Metrics(), clock=clock, outbox_alert_seconds=60,
                  complete_erasure=lambda i, key: eraser.finish_confirmed(i, key, timeout=2.0))  # fmt: skip
    await watch.check()
    await watch.check()

    await nothing_left_of_phone(store, keyed)
    lines = [(e.actor, e.detail) for e in await store.audit_log() if e.action == "erase"]
    assert [actor for actor, _ in lines] == ["cli"], lines
    assert "gateway erase" in lines[0][1] and PHONE not in lines[0][1], lines


async def test_an_erasure_by_identity_asked_again_after_a_cut_names_both_askers(
    store: Store, store_url: str, clock: Clock, settings: Settings
) -> None:
    """The CLI's erasure cut short, a DPO asks again before the alert check: one line naming the first asker, the
    second noted (before: nothing listed, the line named the DPO alone)."""
    keyed = await person_with_no_conversation(store, clock, settings)
    with pytest.raises(StoreError):
        await eraser_on(CutAt(store, "inbox_forget"), clock, settings, store_url).erase_identity(
            ChannelName.WHATSAPP, PHONE, "cli", "gateway erase"
        )
    erased = await eraser_on(store, clock, settings, store_url).erase_identity(
        ChannelName.WHATSAPP, PHONE, "dpo", "gateway erase"
    )
    assert erased.conversations == 0 and not erased.under_way

    await nothing_left_of_phone(store, keyed)
    lines = [(e.actor, e.detail) for e in await store.audit_log() if e.action == "erase"]
    assert [actor for actor, _ in lines] == ["cli"], lines
    assert "asked too by dpo" in lines[0][1], lines
