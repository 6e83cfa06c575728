"""Console sessions are kept in the store and end at once, through the real app: a password change, a
supervisor's "log out everywhere" and an account removed with the CLI end every session of that listener and
close their open sockets; across two instances on one Redis too. The policy refuses short and common passwords
with a reason, in French then English."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import redis
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.settings import Settings
from tests.conftest import PASSWORD, AppFactory, add_listener, login
from tests.console.conftest import other_session
from tests.store.conftest import redis_url  # noqa: F401  (the session's redis-server)
from tests.test_webchat import receive_until

Client = TestClient  # type: ignore[type-arg]
GATEWAY = Path(sys.executable).parent / "gateway"


async def opened(http: aiohttp.ClientSession | Client, path: str = "/api/events") -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(path)
    await receive_until(ws, lambda f: f["type"] == "hello")
    return ws


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Whether the server closes the socket: frames already on their way are read past, but an open socket gets
    presence beats for ever, so 40 frames without a close is a no; never a fixed wait."""
    for _ in range(40):
        message = await ws.receive(timeout=20)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return True
        if message.type == aiohttp.WSMsgType.ERROR:
            return True
    return False


async def test_a_password_change_keeps_to_the_policy_and_ends_the_other_sessions(client: Client) -> None:
    await add_listener(client, "anne")
    await login(client, "anne")
    elsewhere = await other_session(client, "anne")
    try:
        socket_elsewhere = await opened(elsewhere)
        change = "/api/me/password"
        short = await client.post(change, json={"current": PASSWORD, "new": "court123"})
        assert short.status == 400
        body = await short.json()
        assert (body["error"], body["reason"]) == ("weak_password", "too_short")
        assert body["message"].index("trop court") < body["message"].index("too short")
        common = await (await client.post(change, json={"current": PASSWORD, "new": "Motdepasse2024!"})).json()
        assert common["reason"] == "common" and "trop courant" in common["message"]
        wrong = await client.post(change, json={"current": "not my password", "new": "une phrase assez longue"})
        assert wrong.status == 403
        assert (await client.post(change, data="current=x&new=y")).status == 415
        assert (await elsewhere.get("/api/me")).status == 200  # nothing changed so far
        changed = await client.post(change, json={"current": PASSWORD, "new": "une phrase assez longue"})
        assert changed.status == 200
        assert await closed_by_server(socket_elsewhere)
        assert (await elsewhere.get("/api/me")).status == 401
        assert (await client.get("/api/me")).status == 200  # this browser got a new session
        assert (await client.post("/api/session", json={"name": "anne", "password": PASSWORD})).status == 401
        assert ("anne", "password_changed") in [(e.actor, e.action) for e in await client.app[STORE].audit_log()]
    finally:
        await elsewhere.close()


async def test_a_supervisor_logs_a_listener_out_everywhere(client: Client) -> None:
    await add_listener(client, "anne")
    await add_listener(client, "sam", supervisor=True)
    first, second, sam = [await other_session(client, name) for name in ("anne", "anne", "sam")]
    try:
        sockets = [await opened(first), await opened(second), await opened(second, "/api/events?watch=1")]
        supervisor_socket = await opened(sam)
        assert (await first.post("/api/listeners/sam/logout", json={})).status == 403  # supervisors only
        assert (await sam.post("/api/listeners/nobody/logout", json={})).status == 404
        answer = await sam.post("/api/listeners/anne/logout", json={})
        assert answer.status == 200 and (await answer.json()) == {"ended": 2}
        assert all([await closed_by_server(ws) for ws in sockets])
        assert (await first.get("/api/me")).status == 401 and (await second.get("/api/me")).status == 401
        assert not supervisor_socket.closed and (await sam.get("/api/me")).status == 200
        [entry] = await client.app[STORE].audit_log()
        assert (entry.actor, entry.action, entry.subject) == ("sam", "logout_everywhere", "anne")
    finally:
        for http in (first, second, sam):
            await http.close()


async def test_an_account_removed_with_the_cli_is_logged_out_with_its_open_console(
    make_client: AppFactory, settings: Settings
) -> None:
    """The CLI is another process: on SQLite its events do not reach the server, whose sweep closes the socket."""
    client = await make_client(settings)
    await add_listener(client, "anne")
    anne = await other_session(client, "anne")
    try:
        socket_ = await opened(anne)
        env = {**os.environ, "GATEWAY_STORE": settings.store}
        removed = await asyncio.to_thread(subprocess.run, [str(GATEWAY), "listeners", "remove", "anne"], env=env,
                                          capture_output=True, text=True, timeout=60)  # fmt: skip
        assert removed.returncode == 0 and "1 session(s) ended" in removed.stdout, removed.stderr
        assert await closed_by_server(socket_)
        assert (await anne.get("/api/me")).status == 401
    finally:
        await anne.close()


@pytest.mark.redis
async def test_ending_sessions_closes_the_sockets_held_by_another_instance(
    make_client: AppFactory,
    settings: Settings,
    redis_url: str,  # noqa: F811
) -> None:
    flush = redis.Redis.from_url(redis_url)
    try:
        flush.flushdb()
    finally:
        flush.close()
    shared = settings.replace(store=redis_url)
    one, two = await make_client(shared), await make_client(shared)
    await add_listener(one, "anne")
    await add_listener(one, "sam", supervisor=True)
    await login(one, "anne")
    cookie = {"hg_session": one.session.cookie_jar.filter_cookies(one.make_url("/"))["hg_session"].value}
    on_two = aiohttp.ClientSession(base_url=str(two.make_url("/")), cookies=cookie)  # the same session, instance two
    try:
        socket_one, socket_two = await opened(one), await opened(on_two)
        await login(two, "sam")
        assert (await two.post("/api/listeners/anne/logout", json={})).status == 200
        assert await closed_by_server(socket_one) and await closed_by_server(socket_two)
        assert (await one.get("/api/me")).status == 401
        await login(one, "anne")  # logging out: that session only, on whichever instance
        elsewhere = await other_session(two, "anne")
        socket_one, socket_elsewhere = await opened(one), await opened(elsewhere)
        assert (await elsewhere.delete("/api/session", json={})).status == 204
        assert await closed_by_server(socket_elsewhere)
        assert (await one.get("/api/me")).status == 200 and not socket_one.closed
        await socket_one.close()
        await elsewhere.close()
    finally:
        await on_two.close()
