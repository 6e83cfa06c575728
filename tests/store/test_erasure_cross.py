"""On every store (SQLite, Redis, Redis Cluster): a supervisor erases a young person from an EARLIER conversation
(the console's "Effacer" on a closed one: every conversation of theirs) while the young person's "oui", confirming
their own erasure ("J'efface tout"), is committed in the open one. The two erasures are listed by two conversations
(``store.begin_erasure``) under two ``erasing-<id>`` locks.

Until 2026-12-07 they ran at once: the "oui"'s ``finish_confirmed`` finding the open conversation's record erased by
the supervisor's wrote a "cut short before this line" audit line and told the young person nothing; else each wrote
its own line; cut short, the alert check wrote a line for each. Now every erasure of a person holds the person's lock
(``erasing-person-<keyed identity>``) and the one that runs takes over the other's listing (``Eraser._erase_one``):
one line naming the supervisor (the young person's confirmation noted), the young person told once, nothing left.

The interleavings: tests/store_holds.py's :class:`Holds` (the real store, nothing of the gateway patched) holding
or cutting the supervisor's erasure at one store call.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.erasure import ERASING, FAR, asked_by
from gateway.errors import StoreError
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import Clock
from tests.store.test_erasure_asked_resumed import alert_checks, eraser_on
from tests.store_holds import Holds, cut_at, held_at
from tests.test_erasure_cut import nothing_left_of_the_person, person_with_two_conversations

OUI = "in:telegram:70707070:upd-70707070-20"  # the key of the young person's "oui" (their message's)


def person_lock_asked(held: Holds) -> asyncio.Event:
    """Set once a person's erasure lock is asked for while the hold waits (another erasure of the person got
    there)."""
    return held.told("lock", lambda name, *args, **kwargs: name.startswith(ERASING + "person-"))


async def told_and_lines(store: Store) -> tuple[int, list[tuple[str, str]]]:
    told = [str(item.payload) for item in await store.outbox_due(FAR, 50, run=100)]
    lines = [(e.actor, e.detail) for e in await store.audit_log() if e.action == "erase"]
    return len([text for text in told if "3114" in text]), lines


@pytest.mark.parametrize("when", ["record-gone", "at-once"])
async def test_a_oui_in_the_open_conversation_during_a_supervisors_erasure_from_an_earlier_one_is_told_once(
    store: Store, clock: Clock, settings: Settings, when: str
) -> None:
    """The "oui" committed in the later (open) conversation before Sam's erasure from the earlier one reaches it;
    its ``finish_confirmed`` runs while Sam's is held: ``record-gone``, at Sam's last step (the later conversation
    erased already); ``at-once``, before Sam's first delete. Before: ``record-gone``, lines by Sam and by "young
    person" ("cut short before this line"), 0 goodbyes; ``at-once``, the same two lines (each erasure its own)."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    await store.begin_erasure(later, OUI)  # as the dispatcher's commit of the "oui" does
    held = held_at(store, "erase_conversation", earlier) if when == "record-gone" else held_at(store, "inbox_forget")
    sam = asyncio.create_task(
        eraser_on(held, clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    )
    await asyncio.wait_for(held.reached.wait(), 30)
    oui = asyncio.create_task(eraser_on(held, clock, settings).finish_confirmed(later, OUI))
    waiting = asyncio.create_task(person_lock_asked(held).wait())
    await asyncio.wait({oui, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)  # done, or waiting for Sam's
    waiting.cancel()
    held.go.set()
    assert (await asyncio.wait_for(sam, 30)) is not None
    await asyncio.wait_for(oui, 30)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    told, lines = await told_and_lines(store)
    assert [actor for actor, _ in lines] == ["sam"], lines  # before: ["young person", "sam"] or ["sam", "young person"]
    assert "asked to a supervisor" in lines[0][1] and "young person confirmed" in lines[0][1], lines
    assert told == 1  # before: 0 (record-gone)
    assert await store.erasures_begun() == {}


async def test_a_supervisors_erasure_from_an_earlier_conversation_cut_short_after_a_oui_is_finished_once(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """The "oui" committed in the later conversation; Sam's erasure from the earlier one is cut at the later one's
    record (a reset connection); the "oui"'s ``finish_confirmed`` then runs, and the alert check. Before: two lines
    ("young person" for the "oui"'s run, then Sam's "cut short before this line" by the check)."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    await store.begin_erasure(later, OUI)
    cutting = cut_at(store, later)
    with pytest.raises(StoreError):  # the console's 503
        await eraser_on(cutting, clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    assert cutting.failed["erase_conversation"] == 1
    await eraser_on(store, clock, settings).finish_confirmed(later, OUI)
    await alert_checks(store, clock, settings)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    told, lines = await told_and_lines(store)
    assert [actor for actor, _ in lines] == ["sam"], lines  # before: ["young person", "sam"]
    assert "young person confirmed" in lines[0][1], lines
    assert told == 1
    assert await store.erasures_begun() == {}


async def test_a_oui_erasure_running_takes_over_a_supervisors_waiting_from_an_earlier_conversation(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """The other way round: the "oui"'s erasure runs (held at its first delete) when Sam asks from the earlier
    conversation; Sam's waits for it, finds its listing taken over and done. One line naming Sam (first asker in
    the listing), one goodbye."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    await store.begin_erasure(later, OUI)
    held = held_at(store, "inbox_forget")
    oui = asyncio.create_task(eraser_on(held, clock, settings).finish_confirmed(later, OUI))
    await asyncio.wait_for(held.reached.wait(), 30)
    sam = asyncio.create_task(
        eraser_on(held, clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    )
    waiting = asyncio.create_task(person_lock_asked(held).wait())
    await asyncio.wait({sam, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    held.go.set()
    await asyncio.wait_for(oui, 30)
    await asyncio.wait_for(sam, 30)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    told, lines = await told_and_lines(store)
    assert [actor for actor, _ in lines] == ["sam"], lines
    assert told == 1
    assert await store.erasures_begun() == {}


async def test_two_supervisors_erasures_merged_and_cut_before_the_line_name_both(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """Sam's erasure from the earlier conversation is listed there and cut at once (a 503, Redis restarting); Alex
    erases from the later one: Alex's takes Sam's listing over (``Eraser._erase_one``), then is cut at the later
    conversation's record; the alert check finishes it. Until 2026-12-07 the store kept Alex alone in the merged
    listing (Sam only in the cut erasure's memory): the one line named Alex, not Sam."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    await store.begin_erasure(earlier, asked_by("sam", "asked to a supervisor"))  # as Sam's first step, then cut
    cutting = cut_at(store, later)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings).erase_conversation(later, "alex", "asked to a supervisor")
    assert cutting.failed["erase_conversation"] == 1
    assert list(await store.erasures_begun()) == [later]  # Sam's moved into Alex's listing
    await alert_checks(store, clock, settings)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    told, lines = await told_and_lines(store)
    assert [actor for actor, _ in lines] == ["alex"], lines
    assert "asked too by sam" in lines[0][1], lines  # before: Sam named nowhere
    assert told == 0
    assert await store.erasures_begun() == {}
