"""The access log (``gateway/access_log.py``) through a real aiohttp server: one line per request, whatever path a
client sends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.access_log import QUIETED, PrivateAccessLogger, private_logging
from gateway.app import _errors, create_app
from gateway.channels.telegram import TelegramChannel
from gateway.metrics import Metrics
from gateway.settings import Settings

FORGED = "2026-12-07 05:00:00,000 ERROR gateway.app: forged"


async def test_a_path_cannot_write_a_line_of_its_own_in_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    """A red-team review, 2026-12-07: the access line carried the path decoded (``%0A`` a new line, ``%1B`` a terminal
    escape): a client wrote a line of its choosing into the log (a forged ERROR, a false alert, a line that clears the
    operator's terminal). Now the path as the client sent it, still percent-encoded: one line, its own."""
    runner = web.AppRunner(web.Application(), access_log_class=PrivateAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            path = "/x%0D%0A" + FORGED.replace(" ", "%20") + "%1B[2J"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert b" 404 " in await reader.readline()
            await reader.read()
            writer.close()
            for _ in range(400):  # the access line is written once the answer went out
                if any(r.name == "aiohttp.access" for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
    [line] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line, repr(line)  # before: the forged line
    assert line.startswith('"GET /x%0D%0A2026-12-07') and line.endswith("s"), line


async def test_a_path_cannot_write_a_line_of_its_own_in_an_unexpected_failure_s_line(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for the gateway's own lines naming a request (``gateway/app.py``'s ``_errors``: a bug while serving
    a route whose path holds a variable, a conversation id say): until 2026-12-07 the decoded path, so ``%0A`` in the
    id wrote a line of the client's choosing next to a real ERROR."""

    async def bug(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[_errors(Metrics().outages)])
    app.router.add_get("/api/conversations/{id}/view", bug)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.INFO, logger="gateway.app"):
        answer = await client.get("/api/conversations/c%0D%0A" + FORGED.replace(" ", "%20") + "%1B[2J/view")
    assert answer.status == 503
    [line] = [r.getMessage() for r in caplog.records if r.name == "gateway.app"]
    assert "\n" not in line and "\r" not in line and "\x1b" not in line, repr(line)  # before: the forged line
    assert "unexpected RuntimeError while serving GET /api/conversations/c%0D%0A2026-12-07" in line, line


async def test_the_gateway_served_by_aiohttps_own_runner_writes_no_clients_address_in_the_access_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """``create_app`` served otherwise than by ``gateway serve`` (aiohttp's ``AppRunner`` with its defaults, as
    ``web.run_app``, a Gunicorn worker or a test server make it), ``private_logging()`` called as the docstring asks:
    until 2026-12-08 its access lines were aiohttp's own, the client's address, its User-Agent and Referer and the
    query (Meta's verify token) in each. Now the app names its access logger itself (``handler_args``)."""
    before = {name: logging.getLogger(name).level for name in QUIETED}
    private_logging()  # as the docstring asks of any server of create_app
    runner = web.AppRunner(await create_app(settings))  # aiohttp's defaults: its AccessLogger, unless the app says
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz?hub.verify_token=ZZTOKEN4242 HTTP/1.1\r\nHost: x\r\nUser-Agent: ZZAGENT4242"
                         b"\r\nReferer: https://example.org/ZZREF4242\r\nConnection: close\r\n\r\n")  # fmt: skip
            assert b" 200 " in await reader.readline()
            await reader.read()
            writer.close()
            for _ in range(400):  # the access line is written once the answer went out
                if any(r.name == "aiohttp.access" for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
    finally:
        await runner.cleanup()
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
    [line] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert not [secret for secret in ("127.0.0.1", "ZZAGENT", "ZZREF", "ZZTOKEN") if secret in line], line
    assert line.startswith('"GET /healthz" 200 '), line  # before: '127.0.0.1 [08/Dec/2026:…] "GET /healthz?hub.…'


async def test_the_bot_apis_calls_put_no_token_in_a_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    """``LOG_LEVEL=DEBUG``: httpcore (python-telegram-bot's HTTP client under httpx) writes each answer's headers at
    DEBUG, and a proxy's redirect (``Location:``, to https) names the URL asked, ``/bot<token>/getMe``. Until
    2026-12-08 httpcore was not among :data:`QUIETED` (httpx was): the bot's token went to the log."""
    token = "123456789:ZZTOKEN-in-a-proxys-redirect"

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"https://api.example.org{request.path}")

    api = web.Application()
    api.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(api, access_log=None)  # the fake proxy's own lines are not the gateway's
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    before = {name: logging.getLogger(name).level for name in QUIETED}
    try:
        port = runner.addresses[0][1]
        settings = Settings(
            public_url="https://helpline.example.org/", telegram_bot_token=token,
            telegram_webhook_secret="webhook_secret-123", telegram_api_url=f"http://127.0.0.1:{port}",
        )  # fmt: skip
        with caplog.at_level(logging.DEBUG):  # the root at DEBUG, as ``gateway serve`` sets LOG_LEVEL
            private_logging()
            async with aiohttp.ClientSession() as session:
                channel = TelegramChannel(settings, session)
                await channel.start()  # getMe answered 302: out of reach, serving all the same
                await channel.stop()
    finally:
        await runner.cleanup()
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
    assert telegram_asked(caplog)  # the call was made, and logged by the adapter
    leaked = [f"{r.name}: {r.getMessage()}" for r in caplog.records if "ZZTOKEN" in r.getMessage()]
    assert leaked == [], leaked


def telegram_asked(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.name == "gateway.channels.telegram" for r in caplog.records)
