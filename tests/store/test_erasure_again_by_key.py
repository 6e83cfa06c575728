"""On every store (SQLite, Redis, Redis Cluster), through ``gateway erase --again KEY`` as an operator runs it after
restoring a backup (docs/deployment.md): the restored store holds no conversation of that person (all ended and
purged before the backup, or never opened: the gate refused them), only what is keyed by KEY itself, the keyed hash
of their channel identity: the gate's notices to them (``notice-KEY``) and their inbox entries.

Until 2026-12-07 ``--again`` looked for a conversation whose identity hashed to KEY and, finding none, did nothing
("erased 0 conversation(s)"): the notice (its recipient's number sealed in it) and the inbox entry (their words)
came back with the backup and stayed, though KEY is all that is needed to find them. Now they are erased as an
erasure by identity erases them, with one audit line (naming no identity), and asking again is harmless.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.alerts import Watch
from gateway.erasure import EPOCH, FAR, PERSON
from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Store
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.conftest import ROOT, Clock
from tests.store.test_erasure_identity_listed import (
    OTHER,
    PHONE,
    CutAt,
    eraser_on,
    person_with_no_conversation,
)
from tests.test_cli import run


def cli_env(monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """The CLI's settings, as the server's (the tests' one-node Cluster owns every slot: one client serves it)."""
    for name, value in {"GATEWAY_STORE": store_url, "GATEWAY_FLOWS": str(ROOT / "flows.yaml"),
                        "GATEWAY_SECRET_KEY": SECRET_KEY, "GATEWAY_DATA_KEY": DATA_KEY}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


async def test_erase_again_erases_what_its_key_names_in_a_store_without_their_conversations(
    store: Store, store_url: str, clock: Clock, settings: Settings, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    keyed = await person_with_no_conversation(store, clock, settings)
    assert await store.list_conversations(EPOCH, FAR) == []
    key, other = keyed.sender("whatsapp", PHONE), keyed.sender("whatsapp", OTHER)
    cli_env(monkeypatch, store_url)

    code, out, err = await asyncio.to_thread(run, capsys, "erase", "--again", key)

    assert code == 0, err
    assert await store.outbox_get("notice-" + key, "n-0") is None  # before: the gate's notice stayed
    assert not await store.inbox_waiting(key)  # before: their inbox entry stayed
    assert await store.outbox_get("notice-" + other, "n-1") is not None  # the other young person's stay
    assert await store.inbox_waiting(other)
    assert await store.erasures_begun() == {}
    lines = [(e.actor, e.detail) for e in await store.audit_log() if e.action == "erase"]
    assert [actor for actor, _ in lines] == ["cli"], lines  # before: none
    assert "gateway erase --again" in lines[0][1], lines
    for clear in (PHONE, "+33612345678"):
        assert clear not in out + err + str(lines)

    code, out, err = await asyncio.to_thread(run, capsys, "erase", "--again", key)  # again: harmless
    assert code == 0, err
    assert await store.outbox_get("notice-" + other, "n-1") is not None and await store.inbox_waiting(other)
    assert await store.erasures_begun() == {}


def test_erase_again_refuses_what_is_no_key(capsys: pytest.CaptureFixture[str]) -> None:
    """A KEY is 32 hex characters (``KeyedHash``): anything else (a number typed by mistake) is refused, never used
    as a key nor echoed."""
    assert len(KeyedHash(SECRET_KEY).sender("whatsapp", PHONE)) == 32
    code, out, err = run(capsys, "erase", "--again", "+33612345678")
    assert code == 1 and "--again" in err and "33612345678" not in out + err


async def test_erase_again_by_key_cut_short_is_finished_by_the_alert_check(
    store: Store, store_url: str, clock: Clock, settings: Settings
) -> None:
    """Listed by the person (``PERSON`` and KEY, no identity to seal: KEY is all there is) before its first delete:
    one cut (a reset connection, the CLI killed) is finished by the alert check, one line naming the CLI."""
    keyed = await person_with_no_conversation(store, clock, settings)
    key, other = keyed.sender("whatsapp", PHONE), keyed.sender("whatsapp", OTHER)
    with pytest.raises(StoreError):
        await eraser_on(CutAt(store, "inbox_forget"), clock, settings, store_url).erase_key(key, "cli", "again")
    assert list(await store.erasures_begun()) == [PERSON + key]

    eraser = eraser_on(store, clock, settings, store_url)
    watch = Watch(store, Metrics(), clock=clock, outbox_alert_seconds=60,
                  complete_erasure=lambda i, k: eraser.finish_confirmed(i, k, timeout=2.0))  # fmt: skip
    await watch.check()
    await watch.check()

    assert not await store.inbox_waiting(key) and await store.outbox_get("notice-" + key, "n-0") is None
    assert await store.inbox_waiting(other) and await store.erasures_begun() == {}
    assert [e.actor for e in await store.audit_log() if e.action == "erase"] == ["cli"]
