"""The line's own texts stored once (gateway/store/texts.py), and entries written by earlier versions, on both
stores: what the transcript shows is exactly what was written, whatever flows.yaml says since."""

from __future__ import annotations

import binascii
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.crypto import key_id, parse_key
from gateway.flowset import OwnStrings
from gateway.messages import Choice
from gateway.store import Author, Delivery, Store, TranscriptEntry, open_store
from gateway.store import redis_keys as K
from gateway.testing import DATA_KEY, kept_provider_id, store_keys

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
GREETING = "Bonjour, ici le 3018 💬 Ce chat est gratuit, anonyme et confidentiel."
CHOICES = (Choice("yes", "Oui"), Choice("no", "Non"))
QUEUED = "Tu es en position {position} dans la file ({wait})."
FLOW_V1 = {GREETING, QUEUED, "yes", "Oui", "no", "Non"}
FLOW_V2 = {"Salut ! Un autre accueil.", "yes", "Oui"}  # flows.yaml reloaded with other words


def own(strings: set[str]) -> OwnStrings:
    found = OwnStrings()
    found.add(strings)
    return found


SAID = "je dors dans la voiture depuis lundi"


def entry(conversation: str, n: int, text: str, author: Author = Author.BOT, **more: object) -> TranscriptEntry:
    return TranscriptEntry(f"{conversation}-e{n}", conversation, T0, author, text, **more)  # type: ignore[arg-type]


def shared_count(store_url: str) -> int:
    """How many shared texts the raw store holds."""
    if store_url.startswith("redis://"):
        client = redis.Redis.from_url(store_url)
        try:
            return int(client.hlen("hg:texts"))
        finally:
            client.close()
    with sqlite3.connect(Path(store_url.removeprefix("sqlite:///"))) as conn:
        return int(conn.execute("SELECT count(*) FROM texts").fetchone()[0])


async def test_a_bot_message_of_flows_yaml_is_kept_once_and_reads_back_exactly_after_a_reload(
    store: Store, store_url: str
) -> None:
    store.share_texts(own(FLOW_V1))
    greeted = [entry(c, 1, GREETING, choices=CHOICES, provider_message_id=f"mid-{c}") for c in ("c1", "c2")]
    others = [
        entry("c1", 2, SAID, Author.USER),  # a young person's words: never shared
        entry("c1", 3, "Tu es en position 3 dans la file (environ 5 min)."),  # a template filled: its values kept
        entry("c1", 4, "Tu es en position {position} dans la file."),  # not a string of flows.yaml: kept whole
        entry("c1", 5, GREETING, choices=(Choice("yes", "Oui"), Choice("x", "un choix d'ailleurs"))),
        entry("c2", 2, "Tu es en position 1 dans la file ({wait})."),
    ]
    async with store.batch():
        for item in [*greeted, *others]:
            await store.append_transcript(item)
    assert shared_count(store_url) == 2  # the greeting with its choices once for both conversations; the template

    store.share_texts(own(FLOW_V2))
    greeted = [replace(e, provider_message_id=kept_provider_id(store, f"mid-{e.conversation_id}")) for e in greeted]
    assert await store.transcript("c1") == [greeted[0], *others[:-1]]
    assert await store.transcript("c2") == [greeted[1], others[-1]]
    again = await open_store(store_url, keys=store_keys(store_url))  # another instance: nothing opened yet
    try:
        assert await again.transcript("c2") == [greeted[1], others[-1]]
        assert await again.find_by_provider_id("mid-c1") == greeted[0]
        assert await again.set_delivery("c2", "c2-e1", Delivery.READ)
        assert [e.delivery for e in await again.transcript("c2")] == [Delivery.READ, Delivery.PENDING]
    finally:
        await again.close()


async def test_until_told_which_texts_are_the_lines_every_entry_keeps_its_text(store: Store, store_url: str) -> None:
    await store.append_transcript(entry("c1", 1, GREETING, choices=CHOICES))
    store.share_texts(own(set()))
    await store.append_transcript(entry("c1", 2, GREETING))
    assert shared_count(store_url) == 0
    assert [e.text for e in await store.transcript("c1")] == [GREETING, GREETING]


def sealed_v1(kind: str, text: str) -> str:
    """A record as the previous version sealed it: ``~g1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>``."""
    key, nonce = parse_key(DATA_KEY, "test"), b"\x05" * 12
    body = nonce + AESGCM(key).encrypt(nonce, text.encode(), kind.encode())
    return f"~g1:{key_id(key)}:{binascii.b2a_base64(body, newline=False).decode()}"


async def test_entries_written_by_the_previous_version_still_read(store: Store, store_url: str) -> None:
    """Its compact form with the text inline, sealed in base64 text: read as they are (``gateway data-key rotate``
    rewrites them in the binary form)."""
    data = '["c1",1899537600000000,"bot","Quel âge as-tu ?",[["unknown","Je préfère pas dire"]]]'
    if store_url.startswith("redis://"):
        client = redis.Redis.from_url(store_url)
        try:
            client.rpush(K.transcript("c1"), "old-1\nsmid-old\n" + sealed_v1("entry", data))
        finally:
            client.close()
    else:
        await store.ping()  # the file and its tables exist
        with sqlite3.connect(Path(store_url.removeprefix("sqlite:///"))) as conn:
            conn.execute(
                "INSERT INTO transcript (id, conversation_id, delivery, provider_message_id, data)"
                " VALUES ('old-1', 'c1', 'sent', 'mid-old', ?)",
                (sealed_v1("entry", data),),
            )
    await store.append_transcript(entry("c1", 2, "quinze", Author.USER))
    old, new = await store.transcript("c1")
    assert (old.id, old.text, old.choices, old.delivery) == (
        "old-1", "Quel âge as-tu ?", (Choice("unknown", "Je préfère pas dire"),), Delivery.SENT,
    )  # fmt: skip
    assert old.at == datetime(2030, 3, 12, 9, 20, tzinfo=UTC) and new.text == "quinze"
    assert (await store.reseal())["entry"] == 1
    assert [e.text for e in await store.transcript("c1")] == ["Quel âge as-tu ?", "quinze"]
