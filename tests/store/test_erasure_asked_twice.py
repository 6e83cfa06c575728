"""On every store (SQLite, Redis, Redis Cluster): Sam's erasure of a conversation (the console's "Effacer") is cut
short (a 503 while Redis restarts, listed ``asked-by:`` Sam), then Alex, another supervisor, asks to erase the same
conversation before the alert check finishes it.

Until 2026-12-07 Alex's erasure finished Sam's and the line named Sam alone: Alex's name was replaced by Sam's and
recorded nowhere (not in the listing, not in the line), also when cut again and finished by the alert check. Now
Alex is merged into the listing (``store.erasure_listed``, one call) and the line says ``asked too by alex``. A web
chat page coming back (``Eraser.finish_cut``, actor ``gateway``) adds no name.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import StoreError
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import Clock
from tests.store.test_erasure_asked_resumed import alert_checks, eraser_on, lock_asked, no_line
from tests.store_holds import cut_at, held_at
from tests.test_erasure_cut import nothing_left_of_the_person, person_with_two_conversations


async def erase_lines(store: Store) -> list[tuple[str, str]]:
    return [(e.actor, e.detail) for e in await store.audit_log() if e.action == "erase"]


async def test_a_second_supervisor_asking_after_a_cut_before_the_line_is_named_in_it(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """Sam's erasure cut at its audit line (everything erased, still listed): Alex's writes the line, naming Sam
    and Alex (before: Sam alone)."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    with pytest.raises(StoreError):
        await eraser_on(no_line(store), clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    assert await eraser_on(store, clock, settings).erase_conversation(earlier, "alex", "asked to a supervisor")

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    lines = await erase_lines(store)
    assert [actor for actor, _ in lines] == ["sam"], lines
    assert "cut short before this line" in lines[0][1] and "asked too by alex" in lines[0][1], lines
    assert await store.erasures_begun() == {}


@pytest.mark.parametrize("again", ["done", "cut-again"])
async def test_a_second_supervisor_asking_after_a_cut_is_named_in_the_line(
    store: Store, clock: Clock, settings: Settings, again: str
) -> None:
    """``done``: Alex's erasure finishes Sam's; ``cut-again``: Alex's is cut too (at the earlier record, its last
    step), the alert check finishes it. Before: one line naming Sam, Alex nowhere."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    cutting = cut_at(store, later)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    if again == "done":
        erased = await eraser_on(store, clock, settings).erase_conversation(earlier, "alex", "asked to a supervisor")
        assert erased is not None and not erased.under_way
    else:
        cutting.fail("erase_conversation", earlier)
        with pytest.raises(StoreError):
            await eraser_on(cutting, clock, settings).erase_conversation(earlier, "alex", "asked to a supervisor")
        assert cutting.failed["erase_conversation"] == 2
        await alert_checks(store, clock, settings)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    lines = await erase_lines(store)
    assert [actor for actor, _ in lines] == ["sam"], lines
    assert "asked too by alex" in lines[0][1], lines  # before: Alex named nowhere
    assert await store.erasures_begun() == {}


async def test_a_web_chat_page_back_after_a_cut_adds_no_name(store: Store, clock: Clock, settings: Settings) -> None:
    """The web chat's finish path (``finish_cut``, actor ``gateway``) finishes Sam's cut erasure: Sam alone."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    cutting = cut_at(store, later)
    with pytest.raises(StoreError):
        await eraser_on(cutting, clock, settings).erase_conversation(earlier, "sam", "asked to a supervisor")
    await eraser_on(store, clock, settings).finish_cut(earlier)

    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    lines = await erase_lines(store)
    assert [actor for actor, _ in lines] == ["sam"], lines
    assert "asked too" not in lines[0][1], lines


async def test_a_second_supervisor_reaching_the_lock_after_the_first_erased_it_is_told_erased_not_missing(
    store: Store, clock: Clock, settings: Settings
) -> None:
    """Sam's erasure is at its last step (the record asked from) when Alex asks to erase the same conversation:
    Alex's waits for the lock ``erasing-<id>``, then finds the record gone. Before: None (the console's 404 « Cette
    conversation n'existe pas. » / "no such conversation", the CLI's ``no conversation``); now erased by an
    erasure already under way (the console's ``under_way``, « Données effacées par un effacement déjà en cours »)."""
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    holding = held_at(store, "erase_conversation", earlier)
    eraser = eraser_on(holding, clock, settings)
    sam = asyncio.create_task(eraser.erase_conversation(earlier, "sam", "asked to a supervisor"))
    await asyncio.wait_for(holding.reached.wait(), 30)
    alex = asyncio.create_task(eraser.erase_conversation(earlier, "alex", "asked to a supervisor"))
    await asyncio.wait_for(lock_asked(holding, earlier).wait(), 30)  # Alex's waits for the lock
    holding.go.set()
    assert (await asyncio.wait_for(sam, 30)) is not None
    erased = await asyncio.wait_for(alex, 30)

    assert erased is not None and erased.under_way, erased  # before: None (404)
    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    assert [actor for actor, _ in await erase_lines(store)] == ["sam"]
    assert await store.erasures_begun() == {}
