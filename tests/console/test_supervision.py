"""Supervision through the real app: supervisors only, the live board, a period's figures and their CSV, the
flow diagram; bad periods are 400."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.testing import no_new_thread
from tests.conftest import add_listener, login
from tests.console.conftest import other_session
from tests.test_webchat import say


async def test_supervision_is_for_supervisors(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    paths = ("/api/supervision", "/api/supervision/flags", "/api/stats", "/api/stats.csv", "/api/flow/diagram.svg",
             "/api/flow/diagram.mmd")  # fmt: skip
    for path in paths:
        response = await client.get(path)
        assert response.status == 403, path
        assert (await response.json())["error"] == "supervisors_only"


async def test_figures_follow_a_conversation_to_its_close(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    sam = await other_session(client, "sam")
    try:
        board = await (await sam.get("/api/supervision")).json()
        assert board["live"]["waiting"] == 1 and board["live"]["in_progress"] == 0
        assert board["flow"]["last_reload"]["ok"] is True
        assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200
        board = await (await sam.get("/api/supervision")).json()
        assert board["live"] | {"listeners_online": 0} == {
            "waiting": 0, "urgent": 0, "in_progress": 1, "listeners_online": 0, "longest_wait_seconds": 0,
            "told_closed": 0,
        }  # fmt: skip
        closed = await client.post(f"/api/conversations/{conversation_id}/close", json={"outcome": "cyberbullying"})
        assert closed.status == 200
        figures = await (await sam.get("/api/stats")).json()
    finally:
        await sam.close()
    assert figures["total"] == 1
    assert {r["key"]: r["value"] for r in figures["per_channel"]}["webchat"] == 1
    assert sum(r["value"] for r in figures["per_hour"]) == 1
    assert [(r["key"], r["value"]) for r in figures["outcomes"]] == [("cyberbullying", 1)]
    assert [(r["key"], r["value"]) for r in figures["routes"]] == [("listener", 1)]
    assert figures["wait"]["answered"] == 1 and figures["wait"]["buckets"][0]["value"] == 1
    assert "pseudonym" not in str(figures) and conversation_id not in str(figures)


async def test_flags_of_open_conversations_never_their_text(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    ws, conversation_id = queued
    sam = await other_session(client, "sam")
    try:
        assert (await (await sam.get("/api/supervision/flags")).json())["flagged"] == []  # no risk read yet
        assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200
        await say(ws, "risky", "il a un couteau il arrive")  # while anne holds it
        [shown] = (await (await sam.get("/api/supervision/flags")).json())["flagged"]
        closed = await client.post(f"/api/conversations/{conversation_id}/close", json={"outcome": "cyberbullying"})
        assert closed.status == 200
        after = (await (await sam.get("/api/supervision/flags")).json())["flagged"]
    finally:
        await sam.close()
    assert shown["id"] == conversation_id and shown["status"] == "with_listener" and shown["listener"] == "anne"
    assert shown["flag"]["risk"] == "imminent_danger" and shown["flag"]["source"] == "keywords"
    [message] = shown["messages"]
    assert message["flag"] == shown["flag"] and set(message) == {"id", "at", "flag"}  # never the text
    conversation = await client.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and conversation.sender and conversation.sender not in str(shown)
    assert "summary" not in shown and "couteau il arrive" not in str(shown)
    assert after == []  # closed: no longer on the board


async def test_csv_has_the_same_figures_and_nothing_identifying(client: TestClient, queued: Any) -> None:  # type: ignore[type-arg]
    _, conversation_id = queued
    sam = await other_session(client, "sam")
    try:
        response = await sam.get("/api/stats.csv", params={"from": "2026-03-01", "to": "2026-03-31"})
        text = await response.text()
    finally:
        await sam.close()
    assert response.status == 200 and response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {"section": "total", "key": "", "label": "", "value": "1"} in rows
    assert {"section": "per_channel", "key": "webchat", "label": "webchat", "value": "1"} in rows
    assert {"section": "route", "key": "listener", "label": "Écoutant·e", "value": "1"} in rows
    assert conversation_id not in text


@pytest.mark.parametrize(
    "query",
    [{"from": "yesterday"}, {"from": "2026-03-10", "to": "2026-03-01"}, {"from": "2020-01-01", "to": "2026-01-01"},
     {"to": "2026-13-45"}, {"from": "x" * 100}],
)  # fmt: skip
async def test_bad_periods_are_400(client: TestClient, query: dict[str, str]) -> None:  # type: ignore[type-arg]
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    for path in ("/api/stats", "/api/stats.csv"):
        response = await client.get(path, params=query)
        assert response.status == 400, (path, query)
        assert (await response.json())["error"] == "bad_request"


async def test_the_flow_diagram_is_svg_or_mermaid(client: TestClient) -> None:  # type: ignore[type-arg]
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    svg = await client.get("/api/flow/diagram.svg")
    assert svg.status == 200 and svg.content_type == "image/svg+xml"
    assert "sandbox" in svg.headers["Content-Security-Policy"]
    assert b"<svg" in await svg.read()
    mermaid = await client.get("/api/flow/diagram.mmd")
    assert mermaid.status == 200 and (await mermaid.text()).startswith("flowchart")


async def test_a_supervisor_watching_the_board_is_not_a_listener_online(client: TestClient) -> None:  # type: ignore[type-arg]
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")

    async def online() -> int:
        return int((await (await client.get("/api/supervision")).json())["live"]["listeners_online"])

    async with client.ws_connect("/api/events?watch=1") as board:
        assert (await board.receive_json(timeout=10))["type"] == "hello"
        assert await online() == 0
        async with client.ws_connect("/api/events") as console:
            assert (await console.receive_json(timeout=10))["type"] == "hello"
            assert await online() == 1
        for _ in range(200):  # the console's socket closing is seen by the server a moment later
            if await online() == 0:
                break
            await asyncio.sleep(0.025)
        assert await online() == 0


async def test_a_diagram_without_a_thread_is_a_503_said_in_french_then_english(client: TestClient) -> None:  # type: ignore[type-arg]
    """The diagrams are drawn in a thread of their own (since 2026-12-06): when the system refuses it, a 503 that
    says so, and the next request, a thread given, draws it."""
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    for path in ("/api/flow/diagram.mmd", "/api/flow/diagram.svg"):
        with no_new_thread():
            refused = await client.get(path)
            body = await refused.json()
        assert (refused.status, body["error"]) == (503, "no_thread"), body
        assert body["message"].startswith("le schéma n'a pas pu être dessiné"), body
        assert "the diagram could not be drawn" in body["message"], body
        assert refused.headers["Retry-After"]
        assert (await client.get(path)).status == 200
