"""On every store (SQLite, Redis, Redis Cluster): an erasure asked by a supervisor (the console's "Effacer") or by
``gateway erase --channel --identity`` and cut short after its first delete (a crash, a 503 while Redis restarts)
is finished by the alert check (``Watch.check``, wired as the app wires it), nobody asking again: nothing of the
person left, the other young person's kept, one ``erase`` audit line with the original actor and wording, no goodbye
sent to the young person (a supervisor's erasure says none), nothing left listed.

Until 2026-12-07 only a young person's own erasure was listed (``store.begin_erasure``): one asked by a supervisor or
the CLI and cut short stayed half done (the conversation asked from, with the identity, left) until someone asked
again. And a web chat page coming back while a supervisor's erasure ran (``Eraser.finish_cut``) ran a second copy of
it, which wrote a second audit line (actor ``gateway``).

The cut and the interleaving: tests/store_holds.py's :class:`Holds` (the real store, nothing of the gateway patched):
``cut_at`` raising StoreError at the store's deletion of one conversation as a reset connection does, its writes
before it made; ``held_at`` holding the erasure's last step while a second one asks for the lock.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from gateway.alerts import Watch
from gateway.erasure import ASKED_BY, FAR, Eraser
from gateway.errors import StoreError
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import Clock
from tests.console.test_handback_crash import instance
from tests.store_holds import Holds, cut_at, held_at
from tests.test_erasure_cut import CHAT, nothing_left_of_the_person, person_with_two_conversations


def eraser_on(store: Any, clock: Clock, settings: Settings) -> Eraser:
    """The eraser as the app wires it, on ``store`` (the real one, or a double in front of it)."""
    dispatcher, _ = instance(store, clock)
    keyed = KeyedHash(settings.secret_key.get_secret_value())
    eraser = Eraser(cast(Any, store), dispatcher, dispatcher.flows, lambda c, s: keyed.sender(c.value, s), clock=clock)
    dispatcher.eraser = lambda conversation, key: eraser.finish_confirmed(conversation.id, key)
    return eraser


async def alert_checks(store: Store, clock: Clock, settings: Settings) -> None:
    """The next instance's alert check, twice (the second finds nothing more to do), wired as the app wires it."""
    eraser = eraser_on(store, clock, settings)
    watch = Watch(store, Metrics(), clock=clock, outbox_alert_seconds=60,
                  complete_erasure=lambda i, key: eraser.finish_confirmed(i, key, timeout=2.0))  # fmt: skip
    await watch.check()
    await watch.check()


async def finished_once(store: Store, actor: str, how: str) -> None:
    lines = [e for e in await store.audit_log() if e.action == "erase"]
    assert [e.actor for e in lines] == [actor], [(e.actor, e.detail) for e in lines]
    assert how in lines[0].detail, lines[0].detail
    told = [str(item.payload) for item in await store.outbox_due(FAR, 50, run=100)]
    assert not [text for text in told if "3114" in text], told  # no erasure.done: nobody asked the young person
    assert await store.erasures_begun() == {}


@pytest.mark.parametrize("cut", ["later", "earlier"])
async def test_a_supervisors_erasure_cut_short_is_finished_by_the_alert_check(
    store: Store, clock: Clock, settings: Settings, cut: str
) -> None:
    """Sam erases the person from their earlier conversation; the store fails at the deletion of the ``later``
    conversation's record (its content deleted, the first conversation erased) or of the ``earlier`` one's (the
    last step, everything else gone): the request fails (the console answers 503). Nobody asks again: the alert
    check finishes it. Before: nothing listed, the check did nothing, the earlier conversation (with the identity)
    left, no audit line."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    cutting = cut_at(store, later if cut == "later" else earlier)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    assert cutting.failed["erase_conversation"] == 1
    assert await store.get_conversation(earlier) is not None  # cut short: the one asked from is still there

    await alert_checks(store, clock, settings)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    await finished_once(store, "sam", "asked to a supervisor")


@pytest.mark.parametrize("cut", ["earlier", "later"])
async def test_the_clis_erasure_by_identity_cut_short_is_finished_by_the_alert_check(
    store: Store, clock: Clock, settings: Settings, cut: str
) -> None:
    """``gateway erase --channel telegram --identity <chat>`` (``Eraser.erase_identity``, what the CLI calls) dies
    at the deletion of a record: the alert check finishes it, one line by ``cli``. Before (``erase_person``, nothing
    listed): the later conversation, the open one with the identity, left for good (the earlier cut) or the check
    finishing nothing."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    cutting = cut_at(store, later if cut == "later" else earlier)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings).erase_identity(ChannelName.TELEGRAM, CHAT, "cli", "gateway erase")
    assert cutting.failed["erase_conversation"] == 1

    await alert_checks(store, clock, settings)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    await finished_once(store, "cli", "gateway erase")


async def test_a_supervisors_erasure_cut_before_its_audit_line_gets_it_with_its_actor(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """Everything erased, the instance dead before the audit line (the line and the unlisting go together): the
    alert check writes the line with Sam's name and wording, nothing counted."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)

    with pytest.raises(StoreError):
        await eraser_on(no_line(store), clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    assert [e for e in await store.audit_log() if e.action == "erase"] == []

    await alert_checks(store, clock, settings)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    await finished_once(store, "sam", "asked to a supervisor")


def no_line(store: Store) -> Holds:
    """The store double failing at the audit line (everything before it made)."""
    holds = Holds(store)
    holds.fail("audit", times=None)
    return holds


def lock_asked(holds: Holds, conversation_id: str) -> asyncio.Event:
    """Set once another lock naming that conversation is asked for (a second erasure got there and waits)."""
    return holds.told("lock", lambda name, *args, **kwargs: name.endswith(conversation_id))


async def test_a_page_back_during_a_supervisors_erasure_waits_for_it_and_writes_no_second_line(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """Sam's erasure is at its last step (the record of the conversation asked from) when that conversation's page
    comes back (``Eraser.finish_cut``, which a web chat hello finding the erasure's mark calls): it waits for Sam's,
    finds it done and does nothing. Before: it ran a second copy after Sam's, which wrote a second ``erase`` line
    (actor ``gateway``)."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    holding = held_at(store, "erase_conversation", earlier)
    eraser = eraser_on(holding, clock, settings)
    sam = asyncio.create_task(eraser.erase_conversation(earlier, "sam", "asked to a supervisor"))
    await asyncio.wait_for(holding.reached.wait(), 30)
    page = asyncio.create_task(eraser.finish_cut(earlier))
    await asyncio.wait_for(lock_asked(holding, earlier).wait(), 30)
    holding.go.set()
    assert (await asyncio.wait_for(sam, 30)) is not None
    await asyncio.wait_for(page, 30)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    await finished_once(store, "sam", "asked to a supervisor")


async def test_a_young_persons_oui_during_a_supervisors_erasure_cut_short_keeps_both_for_the_alert_check(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """Sam erases the person from their open conversation; between its first conversation and the last, the young
    person's "oui" (confirming their own erasure) is committed there (``store.begin_erasure`` with their message's
    key, as the dispatcher's commit does); then the store fails. The alert check finishes it: one line naming Sam,
    the young person told once (``erasure.done``, with where to turn), their instance's ``finish_confirmed`` after
    it finding nothing to do. Before: the "oui" replaced Sam's listing, the line said "young person"."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    oui = "in:telegram:70707070:upd-70707070-20"

    cutting = Holds(store)  # the "oui" listed, then the deletion of the earlier one cut (before the last one's lock)
    cutting.run("erase_conversation", lambda _: store.begin_erasure(later, oui), earlier)
    cutting.fail("erase_conversation", earlier)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings).erase_conversation(later, "sam", "asked to a supervisor")
    listed = (await store.erasures_begun())[later]
    assert listed.startswith(ASKED_BY) and '"sam"' in listed and listed.endswith("\n" + oui), listed

    await alert_checks(store, clock, settings)
    assert not await eraser_on(store, clock, settings).finish_confirmed(later, oui)  # the "oui"'s own: done already

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    lines = [e for e in await store.audit_log() if e.action == "erase"]
    assert [e.actor for e in lines] == ["sam"], [(e.actor, e.detail) for e in lines]  # before: ["young person"]
    told = [str(item.payload) for item in await store.outbox_due(FAR, 50, run=100)]
    assert len([text for text in told if "3114" in text]) == 1, told
    assert await store.erasures_begun() == {}
