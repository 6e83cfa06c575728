"""What ``store.begin_erasure`` leaves listed when a listing comes on another (``store.erasure_listed``; Redis and
Cluster: the script ``erasure_listed``), on SQLite, Redis and Cluster: a supervisor's or the CLI's asker
(``erasure.asked_by``) and a young person's confirmation (their message's key) kept both, whatever each listing
held. Until 2026-12-07 a listing holding both (an erasure taking over another's, ``Eraser._erase_one``) merged onto a
supervisor's alone dropped the confirmation, onto a young person's alone made three parts; two askers kept the first
only (the second named in the audit line from memory: lost when the erasure was cut before its line)."""

from __future__ import annotations

from gateway.erasure import _also, _asker, _confirmed, asked_by
from gateway.store import ASKERS_MOST, Store

SAM, ALEX = asked_by("sam", "asked to a supervisor"), asked_by("alex", "gateway erase")
OUI, OUI2 = "in:telegram:1:upd-1-20", "in:telegram:1:upd-1-30"


async def listed(store: Store, *keys: str) -> str:
    for key in keys:
        await store.begin_erasure("c1", key)
    return (await store.erasures_begun())["c1"]


async def test_a_combined_listing_onto_a_supervisors_keeps_the_confirmation(store: Store) -> None:
    found = await listed(store, SAM, ALEX + "\n" + OUI)
    assert _asker(found) == ("sam", "asked to a supervisor"), found
    assert _confirmed(found) == OUI, found  # before: None (the combined listing dropped whole)
    assert _also(found) == ("alex",), found


async def test_a_combined_listing_onto_a_young_persons_makes_two_parts(store: Store) -> None:
    found = await listed(store, OUI, SAM + "\n" + OUI2)
    assert found.count("\n") == 1, found  # before: 2 (asker, OUI2, OUI)
    assert _asker(found) == ("sam", "asked to a supervisor") and _confirmed(found) == OUI2, found


async def test_a_combined_listing_onto_a_combined_one_keeps_the_first_asker_and_the_newest_confirmation(
    store: Store,
) -> None:
    found = await listed(store, SAM + "\n" + OUI, ALEX + "\n" + OUI2)
    assert _asker(found) == ("sam", "asked to a supervisor") and _confirmed(found) == OUI2, found
    assert _also(found) == ("alex",), found


async def test_two_askers_are_both_named_bounded_each_once(store: Store) -> None:
    found = await listed(store, SAM, ALEX)
    assert _asker(found) == ("sam", "asked to a supervisor") and _also(found) == ("alex",), found  # before: ()
    others = [asked_by(f"sup-{n}/é", "asked to a supervisor") for n in range(ASKERS_MOST + 3)]
    found = await listed(store, ALEX, SAM, *others, OUI)
    assert _asker(found) == ("sam", "asked to a supervisor") and _confirmed(found) == OUI, found
    assert _also(found) == ("alex", *[f"sup-{n}/é" for n in range(ASKERS_MOST - 2)]), found  # the first ones
    assert found.count("\n") == 1, found


async def test_a_young_persons_key_and_an_asker_in_either_order(store: Store) -> None:
    assert await listed(store, OUI, SAM) == SAM + "\n" + OUI
    await store.end_erasure("c1")
    assert await listed(store, SAM, OUI) == SAM + "\n" + OUI
    await store.end_erasure("c1")
    assert await listed(store, OUI, OUI2) == OUI2  # a message's key replaces another's
