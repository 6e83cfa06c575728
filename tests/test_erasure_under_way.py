"""A supervisor's "Effacer" from an earlier conversation of a young person whose own erasure (their "oui" in the
open one) is under way, on SQLite, Redis and a Redis Cluster: the supervisor's waits for the person's lock
(``erasing-person-<keyed identity>``), finds its listing taken over and everything erased by the other
(``Eraser._erase_one``), which wrote the one audit line. Until 2026-12-07 the console was answered
``{"conversations": 0, "entries": 0}`` and ``gateway erase`` printed "erased 0 conversation(s)", as though nothing
had been erased; now the answer says ``under_way`` (the console: "Données effacées par un effacement déjà en
cours"), the counts being in the other's line.

The interleaving: the real store behind a double holding the "oui"'s erasure at its first delete
(tests/store_holds.py's :class:`Holds`), nothing of the gateway patched."""

from __future__ import annotations

import asyncio
from typing import cast

from gateway.app import STORE
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.store.conftest import redis_cluster_url, redis_url, store_url
from tests.store.test_erasure_asked_resumed import eraser_on
from tests.store.test_erasure_cross import OUI, person_lock_asked, told_and_lines
from tests.store_holds import Holds, holds
from tests.test_erasure_cut import nothing_left_of_the_person, person_with_two_conversations

__all__ = ["holds", "redis_cluster_url", "redis_url", "store_url"]  # fixtures used below


async def test_a_supervisors_erasure_finding_the_person_erased_by_one_under_way_says_so(
    holds: tuple[Settings, Holds], make_client: AppFactory, clock: Clock
) -> None:
    settings, held = holds
    store = held.real
    earlier, later, marks = await person_with_two_conversations(store, clock, settings)
    held.hold("inbox_forget")
    console = await make_client(settings, store=cast(Store, held))
    assert console.app[STORE] is held
    await add_listener(console, "sam", supervisor=True)
    await login(console, "sam")
    await store.begin_erasure(later, OUI)  # as the dispatcher's commit of the "oui" does
    oui = asyncio.create_task(eraser_on(held, clock, settings).finish_confirmed(later, OUI))
    await asyncio.wait_for(held.reached.wait(), 30)
    sam = asyncio.create_task(console.post(f"/api/conversations/{earlier}/erase", json={"confirm": True}))
    waiting = asyncio.create_task(person_lock_asked(held).wait())  # Sam's erasure waiting for the person's lock
    await asyncio.wait({sam, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    held.go.set()
    await asyncio.wait_for(oui, 30)
    answer = await asyncio.wait_for(sam, 30)

    assert answer.status == 200
    body = await answer.json()
    assert body.get("under_way") is True, body  # before: {"conversations": 0, "entries": 0}, nothing more
    await nothing_left_of_the_person(store, settings, marks, earlier, later)
    _, lines = await told_and_lines(store)  # the goodbye: the app's outbox worker may have it (told once: cross)
    assert [actor for actor, _ in lines] == ["sam"], lines
