"""The processed marks an erasure keeps on SQLite (``erasure.DELIVERED_AGAIN``: a redelivery of the erased person's
messages must stay a duplicate) hold a digest of the de-duplication key (``ids.seen_digest``, as Redis's day hashes
do), never the provider's message id: with Twilio's console, a SID in clear leads to the young person's number.
Until 2026-12-06 the row kept ``in:whatsapp:SM…`` in clear for its 8 days. A mark written in clear before (a store
upgraded in place) is still read as one."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from gateway.dispatcher import DEDUPE_TTL_SECONDS, Dispatcher
from gateway.erasure import Eraser
from gateway.flowset import FlowSet
from gateway.ids import inbound_key, seen_digest
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.store import ClaimState, open_store
from gateway.testing import store_keys
from tests.store.test_contract_retention import everything

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 6, 13, 0, tzinfo=UTC)
PHONE = "whatsapp:+33612345678"


def sid(number: int) -> str:
    return f"SM{number:032x}"


async def test_after_an_erasure_no_row_holds_the_sid_of_a_mark_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        dispatcher = Dispatcher(store, flows, clock=lambda: T0)
        keyed = KeyedHash("test-secret-key-0123456789")
        messages = [Inbound(ChannelName.WHATSAPP, PHONE, sid(n), text) for n, text in enumerate(["bonjour", "Non"])]
        for inbound in messages:
            await dispatcher.handle_inbound(inbound)
        eraser = Eraser(store, dispatcher, flows, lambda c, s: keyed.sender(c.value, s), clock=lambda: T0)
        erased = await eraser.erase_person(ChannelName.WHATSAPP, PHONE, "sam", "test")
        assert erased.conversations == 1

        dump = everything(url)
        for inbound in messages:
            assert inbound.message_id not in dump  # before: ('in:whatsapp:SM…', <expiry>, None, None) in `seen`
            assert await store.claim(inbound_key(inbound), "redelivery", 30) is ClaimState.DONE  # still a duplicate
        assert {seen_digest(inbound_key(m)) for m in messages} <= set(await store.seen_keys())
        files = b"".join(f.read_bytes() for f in tmp_path.glob("gateway.sqlite3*"))  # the file and its WAL, freed too
        assert not [m.message_id for m in messages if m.message_id.encode() in files]
    finally:
        await store.close()


async def test_a_mark_kept_in_clear_by_an_older_store_is_still_a_duplicate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    await store.close()
    old = inbound_key(Inbound(ChannelName.WHATSAPP, PHONE, sid(7), ""))
    with sqlite3.connect(tmp_path / "gateway.sqlite3") as conn:  # as the erasure left it before 2026-12-06
        expires_us = int(datetime.now(UTC).timestamp() * 1_000_000) + DEDUPE_TTL_SECONDS * 1_000_000
        conn.execute("INSERT INTO seen (key, expires_us, owner, conversation_id) VALUES (?, ?, NULL, NULL)",
                     (old, expires_us))  # fmt: skip
    conn.close()
    store = await open_store(url, keys=store_keys(url))
    try:
        assert await store.claim(old, "redelivery", 30) is ClaimState.DONE
        assert seen_digest(old) in await store.seen_keys()
        await store.forget_seen([seen_digest(old)])
        assert await store.claim(old, "redelivery", 30) is ClaimState.CLAIMED
    finally:
        await store.close()
