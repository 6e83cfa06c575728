"""The outbox's DEBUG lines of a send (since 2026-12-07) never let a provider's message id be tested against them: a
provider id is there only as its keyed hash (``KeyedHash.provider_id``, keyed with GATEWAY_SECRET_KEY), never as
its plain SHA-256 (what the Redis entries keep, ``store.provider_digest``), which anyone holding the id (the provider,
a leaked export) can compute. A real send to the fake Graph API on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import logging
from pathlib import Path

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Outbound
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import OutboxItem, open_store
from gateway.store.codec import encode_outbound
from gateway.testing import FakeGraphAPI
from tests.conftest import Clock


def plain_digests(provider_id: str) -> set[str]:
    """Every unkeyed SHA-256 form of ``provider_id`` a log line could carry: hex (whole, cut) and base64url."""
    digest = hashlib.sha256(provider_id.encode()).digest()
    return {digest.hex()[:16], base64.urlsafe_b64encode(digest[:12]).decode()[:12]}


async def send_logged(
    tmp_path: Path, settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture, keyed: KeyedHash | None
) -> tuple[list[str], list[str]]:
    """Two replies of one conversation sent through Messenger: the outbox's DEBUG lines, the provider's ids."""
    store = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    try:
        async with FakeGraphAPI() as graph, aiohttp.ClientSession() as session:
            messenger = MessengerChannel(settings.replace(messenger_api_url=graph.url,
                                                          messenger_page_access_token="token"), session)  # fmt: skip
            for n in (1, 2):
                reply = Outbound(f"r{n}", "c1", ChannelName.MESSENGER, "psid-1", f"Bonjour {n}")
                await store.outbox_put(OutboxItem(f"r{n}", "c1", encode_outbound(reply), clock()))
            given = {} if keyed is None else {"keyed": keyed}  # none: the outbox's default
            outbox = Outbox(store, {ChannelName.MESSENGER: messenger}, clock=clock, **given)
            with caplog.at_level(logging.DEBUG, logger="gateway.outbox"):
                while await outbox.deliver_due():
                    pass
            answered = list(graph.answered)
    finally:
        await store.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.outbox" and r.levelno == logging.DEBUG]
    return lines, answered


async def test_a_sends_debug_lines_carry_the_provider_id_keyed_never_its_plain_digest(
    tmp_path: Path, settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-07 the "accepted as" line carried ``#`` and the base64 of the id's plain SHA-256: the provider
    could find which log line was a young person's reply. Now the keyed hash, the same for the same id and key (the
    chaos audit computes it again, bench/chaos.py), told apart by item; the item named on both lines of its send."""
    keyed = KeyedHash("a key of the test's")
    lines, answered = await send_logged(tmp_path, settings, clock, caplog, keyed)
    assert len(answered) == 2 and len(lines) == 4  # each send: sending, accepted
    for provider_id in answered:
        assert not any(plain in line for line in lines for plain in plain_digests(provider_id))
        assert not any(provider_id in line for line in lines)
    accepted = [line for line in lines if " accepted as " in line]
    assert accepted == [
        f"outbox: {keyed.logged_id(f'r{n}')}: accepted as {keyed.provider_id(pid)} under the lease to "
        f"{line.rsplit(' ', 1)[-1]}"
        for n, pid, line in zip((1, 2), answered, accepted, strict=True)
    ]
    assert [line.split(":")[1].strip() for line in lines] == [keyed.logged_id(f"r{n}") for n in (1, 1, 2, 2)]
    assert keyed.provider_id(answered[0]) == KeyedHash("a key of the test's").provider_id(answered[0])
    assert keyed.provider_id(answered[0]) != KeyedHash("another key").provider_id(answered[0])


async def test_an_outbox_given_no_key_logs_no_plain_digest_either(
    tmp_path: Path, settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """An outbox built without the app's key (tests, tools) hashes with a random key of its own: its lines still
    tell one id from another, and nothing outside the process can compute them."""
    lines, answered = await send_logged(tmp_path, settings, clock, caplog, None)
    assert len(answered) == 2
    for provider_id in answered:
        assert not any(plain in line for line in lines for plain in plain_digests(provider_id))
    accepted = {line.split(" accepted as ")[1].split()[0] for line in lines if " accepted as " in line}
    assert len(accepted) == 2
