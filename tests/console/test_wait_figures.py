"""The waits a listener and a supervisor are shown, through the real app with a pinned clock: a conversation handed
back waits since it was handed back (its place in line kept), the period's figures measure the first wait (arrival
to the first take), and every young person who reached the queue counts once: answered, left unanswered, or still
waiting."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import Clock
from tests.console.conftest import other_session
from tests.test_webchat import receive_until


async def _shown_wait(client: TestClient, conversation_id: str) -> int:  # type: ignore[type-arg]
    waiting = (await (await client.get("/api/queue")).json())["waiting"]
    return int(next(c for c in waiting if c["id"] == conversation_id)["waiting_seconds"])


async def test_a_hand_back_waits_from_then_first_wait_counted(client: TestClient, queued: Any, clock: Clock) -> None:  # type: ignore[type-arg]
    """Answered within a minute, talked with anne for 25 minutes, handed back: the card said "attend depuis 26 min",
    the board's longest wait 26 min and, taken again 2 min later, the figures a 28-minute wait (until 2026-12-05)."""
    _, conversation_id = queued
    base = f"/api/conversations/{conversation_id}"
    sam = await other_session(client, "sam")
    try:
        clock.advance(seconds=50)
        assert (await client.post(base + "/take", json={})).status == 200
        clock.advance(minutes=25)
        assert (await client.post(base + "/hand-back", json={})).status == 200
        assert await _shown_wait(client, conversation_id) == 0  # back without a human since now
        assert (await (await sam.get("/api/supervision")).json())["live"]["longest_wait_seconds"] == 0
        clock.advance(minutes=2)
        assert await _shown_wait(client, conversation_id) == 120
        assert (await (await sam.get("/api/supervision")).json())["live"]["longest_wait_seconds"] == 120
        assert (await sam.post(base + "/take", json={})).status == 200
        figures = await (await sam.get("/api/stats")).json()
    finally:
        await sam.close()
    assert figures["wait"]["answered"] == 1 and figures["wait"]["median_seconds"] == 50
    assert figures["wait"]["buckets"][0] == {"key": "< 1 min", "label": "< 1 min", "value": 1}


async def test_transferred_then_gone_left_before_retake(client: TestClient, queued: Any, clock: Clock) -> None:  # type: ignore[type-arg]
    """Taken after 3 minutes, transferred, then the young person ends the chat before anyone takes it again: counted
    in neither "answered" nor "left unanswered" (until 2026-12-05), then "answered" (until 2026-12-06), now left
    before being taken again, their first wait in the distribution."""
    ws, conversation_id = queued
    base = f"/api/conversations/{conversation_id}"
    clock.advance(minutes=3)
    assert (await client.post(base + "/take", json={})).status == 200
    clock.advance(minutes=10)
    assert (await client.post(base + "/transfer", json={"queue": "listeners"})).status == 200
    clock.advance(minutes=4)
    assert await _shown_wait(client, conversation_id) == 4 * 60  # since the transfer: anne was there before
    await ws.send_json({"type": "end"})
    await receive_until(ws, lambda f: f["type"] == "status" and f["status"] in ("abandoned", "closed"))
    sam = await other_session(client, "sam")
    try:
        wait = (await (await sam.get("/api/stats")).json())["wait"]
    finally:
        await sam.close()
    assert (wait["answered"], wait["left_before_retake"], wait["unanswered"], wait["waiting"]) == (0, 1, 0, 0)
    assert wait["median_seconds"] == 180


async def test_still_waiting_is_in_the_figures(client: TestClient, queued: Any, clock: Clock) -> None:  # type: ignore[type-arg]
    """Still waiting when the figures are drawn (the line closed on them): in no figure of the period until
    2026-12-05, only "en attente" on the live board."""
    clock.advance(minutes=20)
    sam = await other_session(client, "sam")
    try:
        wait = (await (await sam.get("/api/stats")).json())["wait"]
        csv_text = await (await sam.get("/api/stats.csv")).text()
    finally:
        await sam.close()
    assert (wait["answered"], wait["unanswered"], wait["waiting"]) == (0, 0, 1)
    assert "wait,waiting,,1\n" in csv_text


async def test_handed_back_then_gone_left_before_retake(client: TestClient, queued: Any, clock: Clock) -> None:  # type: ignore[type-arg]
    """Taken after 2 minutes, handed back (Rendre à la file), then the young person ends the chat before anyone takes
    them again: until 2026-12-06 counted "answered", as one a listener kept to the end, and in no figure of those left
    waiting. Now in ``left_before_retake``, their first wait still in the distribution; one handed back and still
    waiting counts as still waiting. Each young person who reached the queue counts once."""
    ws, conversation_id = queued
    base = f"/api/conversations/{conversation_id}"
    clock.advance(minutes=2)
    assert (await client.post(base + "/take", json={})).status == 200
    clock.advance(minutes=5)
    assert (await client.post(base + "/hand-back", json={})).status == 200
    clock.advance(minutes=1)
    sam = await other_session(client, "sam")
    try:
        waiting = (await (await sam.get("/api/stats")).json())["wait"]
        await ws.send_json({"type": "end"})
        await receive_until(ws, lambda f: f["type"] == "status" and f["status"] in ("abandoned", "closed"))
        gone = (await (await sam.get("/api/stats")).json())["wait"]
        csv_text = await (await sam.get("/api/stats.csv")).text()
    finally:
        await sam.close()
    assert (waiting["answered"], waiting["left_before_retake"], waiting["unanswered"], waiting["waiting"]) == (
        0, 0, 0, 1,
    )  # fmt: skip
    assert (gone["answered"], gone["left_before_retake"], gone["unanswered"], gone["waiting"]) == (0, 1, 0, 0)
    assert gone["median_seconds"] == 120 and sum(b["value"] for b in gone["buckets"]) == 1  # the first wait
    assert "wait,left_before_retake,,1\n" in csv_text
