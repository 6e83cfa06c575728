"""A supervisor's "Chez d'autres écoutant·es" says, for each conversation another listener holds, whether that
listener has a console open now: the one whose listener left (a browser closed, a session expired) is the one to give
back before the automatic hand-back, ten minutes later; nobody else may answer it meanwhile.

The real app on SQLite; the listeners' consoles are real live sockets."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import API
from tests.conftest import Clock, add_listener
from tests.console.conftest import other_session
from tests.e2e.channel_support import eventually
from tests.test_timers import conversation_of, start
from tests.test_webchat import WALK_TO_QUEUE, receive_until

Client = TestClient  # type: ignore[type-arg]


async def _true(value: bool) -> bool:
    return value


async def test_a_supervisor_sees_which_holders_are_away(client: Client, clock: Clock) -> None:
    for name in ("anne", "bruno"):
        await add_listener(client, name)
    await add_listener(client, "sam", supervisor=True)
    first = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    second = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    anne, bruno, sam = [await other_session(client, n) for n in ("anne", "bruno", "sam")]
    try:
        assert (await anne.post(f"/api/conversations/{first.id}/take", json={})).status == 200
        assert (await bruno.post(f"/api/conversations/{second.id}/take", json={})).status == 200
        async with bruno.ws_connect("/api/events") as console:  # Bruno at his console; Anne's closed
            await receive_until(console, lambda f: f["type"] == "hello")
            await eventually(lambda: _true(client.app[API].presence.has("bruno")))
            others = (await (await sam.get("/api/queue")).json())["others"]
            away = {card["listener"]: card.get("listener_away") for card in others}
            assert away == {"anne": True, "bruno": False}
    finally:
        for http in (anne, bruno, sam):
            await http.close()
