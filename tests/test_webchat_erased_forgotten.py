"""The web chat hub forgets an erased conversation once no socket of this instance follows it any more, whichever
way its last socket left it: closed, or moved to a new conversation by a second hello on the same socket.

``WebChatHub.erased`` holds the followed conversations erased meanwhile (no gone timer is armed for them when their
socket closes). Until 2026-12-07 only a socket that closed, or a hello answered with an end or refused
(``ChatSession._leave``), took its conversation out of it: a socket that said hello again after its conversation's
erasure (a page not chat.js, or a client looping "efface mes données", "oui", hello on one socket) moved to a new
conversation and left the erased one's id in the set for the life of the process (4 cycles: 4 ids left).
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from gateway.app import WEBCHAT
from tests.test_webchat import hello, receive_until, say

Client = TestClient  # type: ignore[type-arg]


async def test_an_erased_conversation_left_for_a_new_one_on_the_same_socket_is_forgotten(client: Client) -> None:
    hub = client.app[WEBCHAT]
    async with client.ws_connect("/chat/ws") as ws:
        for n in range(4):
            erased = (await hello(ws))["conversation"]
            await say(ws, f"m{n}", "Efface mes données stp")
            await ws.send_json({"type": "message", "id": f"yes{n}", "text": "oui"})
            await receive_until(ws, lambda f: f["type"] == "status" and f["status"] == "closed")
            async with asyncio.timeout(20):  # its Erased event reached the hub while the socket followed it
                while erased not in hub.erased:
                    await asyncio.sleep(0.01)
        fresh = await hello(ws)  # the page's next conversation, on the same socket
        assert fresh["status"] == "bot" and fresh["conversation"] != erased
        assert hub.erased == set()  # before: the 4 erased conversations' ids, kept for the process's life
