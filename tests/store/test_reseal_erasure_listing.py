"""Key rotation (``gateway data-key rotate``, the real command) and a person's erasure listing, on each store: an
erasure by identity of a person with no conversation left, cut short, is listed with their identity sealed
(``erasure.IDENTITY``); the rotation reseals it with the records, and once the old key is gone the alert check
still opens it and finishes the erasure.

Until 2026-12-07 the rotation resealed the records only: the listing kept the old key's sealing, and once that key
was forgotten (``GATEWAY_DATA_KEYS_OLD`` removed, as the rotation says to; the key file's old keys dropped by the
rotation itself) it could never be opened: the erasure stuck, ``DataKeyError`` at every round of the alert check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from gateway.alerts import Watch
from gateway.crypto import DataKeys, new_key
from gateway.erasure import PERSON, Eraser
from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.conftest import Clock
from tests.console.test_handback_crash import instance
from tests.store.test_erasure_identity_listed import PHONE, CutAt, nothing_left_of_phone, person_with_no_conversation
from tests.store.test_reseal import env_keys, gateway


def eraser(store: Any, clock: Clock, keys: DataKeys) -> Eraser:
    dispatcher, _ = instance(store, clock)
    keyed = KeyedHash(SECRET_KEY)
    return Eraser(cast(Any, store), dispatcher, dispatcher.flows, lambda c, s: keyed.sender(c.value, s), clock=clock,
                  erased_key=lambda c, s: keyed.erased(c.value, s), keys=keys)  # fmt: skip


async def test_a_persons_erasure_listing_is_resealed_and_opens_once_the_old_key_is_gone(
    store: Store, store_url: str, clock: Clock, settings: Settings, tmp_path: Path
) -> None:
    keyed = await person_with_no_conversation(store, clock, settings)
    with pytest.raises(StoreError):
        await eraser(CutAt(store, "keep_erased"), clock, env_keys(store_url, DATA_KEY)).erase_identity(
            ChannelName.WHATSAPP, PHONE, "cli", "gateway erase"
        )
    assert list(await store.erasures_begun()) == [PERSON + keyed.sender("whatsapp", PHONE)]

    new = new_key()
    rotate = {"GATEWAY_STORE": store_url, "GATEWAY_DATA_KEY": new, "GATEWAY_SECRET_KEY": SECRET_KEY}
    code, out, err = await gateway(tmp_path, "data-key", "rotate", **rotate, GATEWAY_DATA_KEYS_OLD=DATA_KEY)
    assert code == 0, err
    assert "1 erasure listing" in out, out  # before: not counted, left under the old key

    keys = env_keys(store_url, new)  # the old key forgotten, as the rotation says
    rotated = await open_store(store_url, keys=keys)
    try:
        after = eraser(rotated, clock, keys)
        watch = Watch(rotated, Metrics(), clock=clock, outbox_alert_seconds=60,
                      complete_erasure=lambda i, k: after.finish_confirmed(i, k, timeout=2.0))  # fmt: skip
        await watch.check()
        await nothing_left_of_phone(rotated, keyed)  # before: still listed, DataKeyError at every round
        assert [e.actor for e in await rotated.audit_log() if e.action == "erase"] == ["cli"]
    finally:
        await rotated.close()
