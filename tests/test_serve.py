"""``gateway serve`` as a real process: start-up, SIGHUP reload, an invalid file refused, a restart mid-conversation.

What ``make run`` starts, minus the Makefile: the same command on a free port, a temporary store and a copy of
the default flows.yaml.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from gateway.testing import (
    BOT_TOKEN,
    DATA_KEY,
    SECRET_KEY,
    Failure,
    FakeTelegramAPI,
    stop_gently,
    telegram_headers,
    telegram_update,
)
from tests.conftest import ROOT
from tests.test_webchat import bot_texts, hello, say

GATEWAY = Path(sys.executable).parent / "gateway"
READY_SECONDS = 60.0  # how long ``Server.ready`` waits for a start on a slow machine
PROBE_SECONDS = 10.0  # a /readyz probe's answer (its store ping: 5 s at most, then 503); a port's silent holder: again


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.flows = tmp_path / "flows.yaml"
        self.log = tmp_path / "server.log"
        shutil.copy(ROOT / "flows.yaml", self.flows)
        self.env = {
            **os.environ,
            "GATEWAY_STORE": f"sqlite:///{tmp_path}/gateway.sqlite3",
            "GATEWAY_FLOWS": str(self.flows),
            "GATEWAY_SECRET_KEY": SECRET_KEY,
            "GATEWAY_DATA_KEY": DATA_KEY,
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
        }
        self.cwd = tmp_path
        self.process: subprocess.Popen[bytes] | None = None
        self._started_at = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._started_at = self.log.stat().st_size if self.log.exists() else 0  # this start's lines follow
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(GATEWAY), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def _port_taken(self) -> bool:
        """This start ended at once because its port was in use: chosen free when the server was made, the port may
        be taken by another process before it starts (a test starting a second instance late; until 2026-12-07 the
        test failed, 'address already in use', fresh clone 117)."""
        if self.process is None or self.process.poll() is None:
            return False
        with self.log.open("rb") as log:
            log.seek(self._started_at)
            return b"address already in use" in log.read()

    def stop(self) -> None:
        stop_gently(self.process)
        self.process = None

    async def log_once(self, fragment: str) -> str:
        """The log once ``fragment`` is in it: a wait on the server's work (a round trip to a fake API, a socket's
        close seen, then the line written), up to 30 s on a loaded machine, not a bound on how soon."""
        for _ in range(600):
            text = self.log.read_text()
            if fragment in text:
                return text
            await asyncio.sleep(0.05)
        raise AssertionError(f"{fragment!r} never logged:\n{self.log.read_text()}")

    async def ready(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """``/readyz``'s answer once it is 200, within ``READY_SECONDS``; a start that ended because its port was
        taken is made again on another port (three times at most). Each probe has a timeout of its own
        (``PROBE_SECONDS``, since 2026-12-07): until then a probe sent while the gateway was still starting to a port
        another program held, listening but never answering, waited for aiohttp's default timeout (5 minutes), and
        the loop never looked at the process that had ended meanwhile."""
        moved = 0
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self._port_taken() and moved < 3:  # another process took the port since ``free_port``: another one
                moved += 1
                self.port = free_port()
                self.env["GATEWAY_PUBLIC_URL"] = self.url
                self.start()
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                async with http.get(self.url + "/readyz", timeout=aiohttp.ClientTimeout(total=PROBE_SECONDS)) as answer:
                    if answer.status == 200:
                        body: dict[str, Any] = await answer.json()
                        return body
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("the server never became ready:\n" + self.log.read_text())


@contextmanager
def running(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def chat(http: aiohttp.ClientSession, server: Server) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with http.ws_connect(server.url + "/chat/ws") as ws:
        yield ws


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_serve_starts_tells_how_to_create_a_listener_and_serves_the_chat(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with running(tmp_path) as server:
        server.env["GATEWAY_ACCESS_LOG"] = "1"  # off by default
        server.start()
        ready = await server.ready(http)
        assert ready["ready"] is True
        async with http.get(server.url + "/chat") as page:
            assert page.status == 200
            assert "<html" in (await page.text()).lower()
        async with http.get(server.url + "/readyz?token=secret-in-query", headers={"User-Agent": "AgentOfAChild/1"}):
            pass
        log = await server.log_once('"GET /readyz"')
        assert "gateway listeners add" in log
        assert "secret-in-query" not in log and "AgentOfAChild" not in log  # no query, no user agent
        assert not re.search(r"127\.0\.0\.1 \[", log)  # aiohttp's default line starts with the client address
        assert f"http://127.0.0.1:{server.port}/chat" in log


async def test_a_port_taken_at_start_is_one_line_then_another_port_and_the_port_freed_serves(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The port held by another program that listens and never answers: the gateway says so in one line and exits
    (``connections.run``), the harness starts it on another port (``Server.ready``), and once the port is freed the
    gateway serves on it. Until 2026-12-07 that retry was checked by hand only: a harness test of it hung in the
    readiness loop, its probe sent to that holder while the gateway still started (a GET with aiohttp's default
    timeout, 5 minutes, before the loop looked again at the process's end)."""
    with socket.socket() as holder, running(tmp_path) as server:
        holder.bind(("127.0.0.1", 0))
        holder.listen()  # connections queued, none accepted: a probe's GET is never answered
        taken = holder.getsockname()[1]
        server.port = taken
        server.env["GATEWAY_PUBLIC_URL"] = server.url
        server.start()
        async with asyncio.timeout(READY_SECONDS + 30):
            assert (await server.ready(http))["ready"] is True
        assert server.port != taken
        log = server.log.read_text()
        assert f"gateway: cannot listen on 127.0.0.1:{taken}: " in log and "address already in use" in log, log
        assert "Traceback" not in log, log
        server.stop()
        holder.close()  # the port freed
        server.port = taken
        server.env["GATEWAY_PUBLIC_URL"] = server.url
        server.start()
        async with asyncio.timeout(READY_SECONDS + 30):
            assert (await server.ready(http))["ready"] is True
        assert server.port == taken


async def test_sighup_reloads_and_an_invalid_file_is_refused(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    with running(tmp_path) as server:
        server.start()
        first = (await server.ready(http))["flow"]
        assert server.process is not None

        good = server.flows.read_text(encoding="utf-8")
        server.flows.write_text(good.replace("next: urgency", "next: urgenci", 1), encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        refused = await until_reload(http, server, lambda r: r["ok"] is False)
        assert refused["version"] == first
        assert any(p.startswith(f"{server.flows}:") and "urgenci" in p for p in refused["problems"])
        assert "flow reload refused" in server.log.read_text()
        assert '"GET /readyz"' not in server.log.read_text()  # no access log by default (GATEWAY_ACCESS_LOG)

        server.flows.write_text(good.replace("Tu es toujours là ?", "Tu es encore là ?"), encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        accepted = await until_reload(http, server, lambda r: r["ok"] is True)
        assert accepted["version"] != first


async def until_reload(http: aiohttp.ClientSession, server: Server, predicate: Any) -> dict[str, Any]:
    for _ in range(300):
        async with http.get(server.url + "/readyz") as response:
            body = await response.json()
        if body["last_reload"] and predicate(body["last_reload"]):
            result: dict[str, Any] = body["last_reload"]
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("no reload seen:\n" + server.log.read_text())


async def test_a_restart_between_two_messages_loses_nothing(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    with running(tmp_path) as server:
        server.start()
        await server.ready(http)
        async with chat(http, server) as ws:
            token = (await hello(ws))["token"]
            await say(ws, "m1", "2")
        server.stop()

        server.start()
        await server.ready(http)
        async with chat(http, server) as ws:
            session = await hello(ws, token)
            frames = await say(ws, "m2", "1")
            again = await say(ws, "m2", "1")  # the same message id after the restart: no second reply
    assert [e["author"] for e in session["history"]].count("user") == 1
    assert any("âge" in t.lower() for t in bot_texts(frames))
    assert bot_texts(again) == []


async def test_serve_started_while_the_telegram_api_is_down_serves_and_answers_once_it_is_back(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The Bot API unreachable when an instance starts (an outage, a restart during it) must not take the web chat,
    the console and the other channels down with it (found by ``bench/chaos.py``: the instance exited 1)."""
    async with FakeTelegramAPI() as telegram:
        telegram.down()
        with running(tmp_path) as server:
            await start_with_telegram(server, telegram, http)
            await server.log_once("Telegram API is unreachable")
            telegram.up()
            await post_update(server, http, 900000001)
            await telegram.wait_accepted(1, timeout=60)


async def test_serve_started_with_a_bot_token_refused_serves_the_other_channels_and_says_so_at_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The Bot API refusing TELEGRAM_BOT_TOKEN at start (getMe answering 401: revoked in @BotFather) took the whole
    gateway down until 2026-12-05: ``gateway serve`` exited 1 (a restart loop under systemd), the web chat and the
    other channels with it, after printing "web chat http://…" and an asyncio "Unclosed client session" ERROR. Now
    it serves; Telegram is shown refused at once (``/readyz``'s ``channels_refused``, the metric, one ``alert:``
    line, never the token), getMe asked again in the background until the token is accepted, then ``alert over``."""
    async with FakeTelegramAPI(token="987654321:another-bots-token") as telegram:  # BOT_TOKEN answered 401
        with running(tmp_path) as server:
            server.env["TELEGRAM_TOKEN_RETRY_SECONDS"] = "0.2"
            await start_with_telegram(server, telegram, http)
            async with chat(http, server) as ws:  # the web chat serves
                await hello(ws)
                assert bot_texts(await say(ws, "m1", "bonjour"))
            for _ in range(600):
                async with http.get(server.url + "/readyz") as response:
                    ready = await response.json()
                if "channels_refused" in ready:
                    break
                await asyncio.sleep(0.1)
            assert ready["ready"] is True and "TELEGRAM_BOT_TOKEN" in ready["channels_refused"]["telegram"], ready
            async with http.get(server.url + "/metrics") as response:
                assert 'gateway_channel_credentials_refused{channel="telegram"} 1.0' in await response.text()
            telegram.token = BOT_TOKEN  # the Bot API takes the token again
            await server.log_once("alert over: telegram")
            await post_update(server, http, 900000003)
            await telegram.wait_accepted(1, timeout=60)
            log = server.log.read_text()
    assert len([line for line in log.splitlines() if " alert: " in line]) == 1, log
    assert "telegram refuses the line's credentials" in log
    assert BOT_TOKEN not in log and "Unclosed" not in log and "Traceback" not in log, log


async def test_serve_started_while_a_page_answers_for_the_bot_api_serves(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A firewall or proxy at TELEGRAM_API_URL answering getMe at start with its own 403 page: until 2026-12-05
    ``gateway serve`` exited 1 with a traceback quoting the page and an asyncio "Unclosed client session" ERROR,
    every channel down. Now it serves, as when the Bot API is out of reach, and Telegram's replies go once it
    answers."""
    page = f"<html><p>403 Forbidden: /bot{BOT_TOKEN}/getMe is blocked by policy</p></html>"
    async with FakeTelegramAPI() as telegram:
        telegram.fail_next(Failure(403, page=page), endpoint="getMe")
        with running(tmp_path) as server:
            await start_with_telegram(server, telegram, http)
            await server.log_once("getMe failed at start-up")
            await post_update(server, http, 900000004)
            await telegram.wait_accepted(1, timeout=60)
            log = server.log.read_text()
    assert BOT_TOKEN not in log and "blocked by policy" not in log and "Unclosed" not in log, log


async def test_a_port_in_use_is_said_without_claiming_to_serve(tmp_path: Path) -> None:
    """Until 2026-12-05 "web chat http://…" was printed before the app started, then a traceback: the line said the
    chat served at an address it never did. Now the line comes once the port listens, and the failure is one line."""
    with socket.socket() as taken, running(tmp_path) as server:
        taken.bind(("127.0.0.1", server.port))  # bound, not listening: the server's bind refused, a connect too
        server.env["GATEWAY_UNDERSTANDING"] = "off"
        server.start()
        assert server.process is not None and server.process.wait(timeout=60) == 1
        log = server.log.read_text()
    assert "web chat http://" not in log and "Traceback" not in log, log
    assert f"cannot listen on 127.0.0.1:{server.port}" in log, log


async def start_with_telegram(server: Server, telegram: FakeTelegramAPI, http: aiohttp.ClientSession) -> None:
    server.env.update(TELEGRAM_BOT_TOKEN=BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET="secret", TELEGRAM_API_URL=telegram.url)
    server.start()
    await server.ready(http)


async def post_update(server: Server, http: aiohttp.ClientSession, update_id: int) -> None:
    update = json.dumps(telegram_update(update_id, 424242, "bonjour"))
    async with http.post(server.url + "/webhooks/telegram", data=update, headers=telegram_headers("secret")) as sent:
        assert sent.status == 200


async def test_a_page_quoting_the_bot_token_at_the_bot_apis_address_never_reaches_the_log(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A firewall at TELEGRAM_API_URL answering a reply with its own 403 page, which quotes the request's URL (the
    bot's token): the reply is retried and delivered (the page is not the young person blocking the bot), and
    neither our lines nor the library's (python-telegram-bot logs an answer it cannot read whole, at ERROR) put the
    page or the token in the log."""
    page = f"<html><p>403 Forbidden: /bot{BOT_TOKEN}/sendMessage is blocked by policy</p></html>"
    async with FakeTelegramAPI() as telegram:
        telegram.fail_next(Failure(403, page=page), endpoint="sendMessage")
        with running(tmp_path) as server:
            await start_with_telegram(server, telegram, http)
            await post_update(server, http, 900000002)
            await telegram.wait_accepted(1, timeout=60)
            assert telegram.requests_to("sendMessage")[0].status == 403
            log = server.log.read_text()
        assert BOT_TOKEN not in log and "blocked by policy" not in log


async def test_a_misspelt_variable_is_said_at_start(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """``GATEWAY_TRUSTED_PROXY`` (for ``GATEWAY_TRUSTED_PROXIES``) was ignored without a word: the load balancer's
    header never believed, every young person behind it one client network."""
    with running(tmp_path) as server:
        server.env |= {"GATEWAY_TRUSTED_PROXY": "10.0.0.0/24", "GATEWAY_UNDERSTANDING": "off"}
        server.start()
        await server.ready(http)
        log = await server.log_once("GATEWAY_TRUSTED_PROXY")
        assert "WARNING gateway.settings: GATEWAY_TRUSTED_PROXY is not a setting: ignored (did you mean" in log


MALFORMED = [  # each refused by aiohttp's parser with 400, before any handler: its error quotes the bytes
    b"GET /chat HTTP/1.1\r\nHost: x\r\nX-Note\x01: ZZSECRET4242\r\n\r\n",
    b"POST /chat/leave HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz ZZSECRET4242\r\n0\r\n\r\n",
    b"ZZSECRET4242 /chat HTTP/1.1\r\nHost: x\r\n\r\n",  # a method that is not one (logged apart, at DEBUG)
]


async def test_a_malformed_request_puts_neither_its_bytes_nor_the_clients_address_in_the_log(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """aiohttp answers a request it cannot parse with 400 itself, and its server logger said so at ERROR (at DEBUG
    for a bad method): "Error handling request from <the client's address>" and a traceback whose message quotes
    the offending bytes (a header's line, a body's chunk): an address the access log never writes, words a client
    sent, and an ERROR line with a traceback for anyone, at will. Now one INFO line by class, nothing quoted."""
    with running(tmp_path) as server:
        server.env |= {"GATEWAY_UNDERSTANDING": "off", "GATEWAY_LOG_LEVEL": "DEBUG"}
        server.start()
        await server.ready(http)
        for raw in MALFORMED:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(raw)
            assert b" 400 " in await reader.readline()
            writer.close()
            await writer.wait_closed()
        log = await server.log_once("a malformed HTTP request refused (BadHttpMethod)")
    assert log.count("a malformed HTTP request refused (BadHttpMessage)") == 2, log
    assert "ZZSECRET4242" not in log and "Error handling request" not in log and " ERROR " not in log, log


async def test_a_socket_asking_for_a_sub_protocol_puts_neither_the_clients_address_nor_its_words_in_the_log(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A web chat socket whose handshake names sub-protocols (``Sec-WebSocket-Protocol``: a client's choice, an
    extension's, anyone's) the gateway does not speak: aiohttp's ``aiohttp.websocket`` logger said so at WARNING with
    the client's address and the protocols as sent, a line at will carrying an address the access log never writes.
    Now one DEBUG line, neither quoted; the socket still opens, without a protocol."""
    with running(tmp_path) as server:
        server.env |= {"GATEWAY_UNDERSTANDING": "off", "GATEWAY_LOG_LEVEL": "DEBUG"}
        server.start()
        await server.ready(http)
        async with http.ws_connect(server.url + "/chat/ws", protocols=("ZZPROTO4242", "v2")) as ws:
            assert ws.protocol is None
            await hello(ws)
        log = await server.log_once("sub-protocols the gateway does not speak")
    told = [line for line in log.splitlines() if "aiohttp.websocket" in line]
    assert len(told) == 1 and " DEBUG " in told[0], log
    assert "ZZPROTO4242" not in log and "127.0.0.1" not in told[0], log


async def test_a_photos_metadata_never_reaches_the_log_at_debug(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """A web chat photo's EXIF (who took it, where) is dropped by the re-encoding (gateway/images.py), but with
    ``GATEWAY_LOG_LEVEL=DEBUG`` Pillow logged every tag it read on the way, with its value: the author's name and
    the GPS position of the photo in the log."""
    exif = Image.Exif()
    exif[0x013B], exif[0x0112] = "ZZSECRET4242 Zoé", 6  # Artist, Orientation (read to turn it upright)
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPSInfo
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photo, "JPEG", exif=exif)
    with running(tmp_path) as server:
        server.env |= {"GATEWAY_UNDERSTANDING": "off", "GATEWAY_LOG_LEVEL": "DEBUG"}
        server.start()
        await server.ready(http)
        async with chat(http, server) as ws:
            token = str((await hello(ws))["token"])
            await say(ws, "m1", "2")
        headers = {"X-Chat-Token": token, "X-Upload-Id": "u-1"}
        async with http.post(server.url + "/chat/upload", data=photo.getvalue(), headers=headers) as answer:
            assert answer.status == 201
        log = server.log.read_text()
    assert "ZZSECRET4242" not in log and "GPS" not in log and "Artist" not in log, log


class HeldPipe:
    """``path`` made a named pipe whose writing end a thread opens once a reader comes (``reading`` set) and holds,
    writing nothing, until :meth:`release`: a flows.yaml on a share that stopped answering."""

    def __init__(self, path: Path) -> None:
        path.unlink()
        os.mkfifo(path)
        self.path, self.reading, self._release = path, threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        while not self._release.is_set():  # opened for writing without blocking: ENXIO until a reader has it open
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    return
                self._release.wait(0.01)
                continue
            self.reading.set()
            self._release.wait()
            os.close(fd)
            return

    def release(self) -> None:
        self._release.set()
        self._thread.join(timeout=10)


async def test_a_stop_while_a_reload_waits_for_the_file_ends_the_process(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A reload reads flows.yaml in a thread (FlowSet.reload_aside); a file that never answers leaves that thread
    blocked. SIGTERM must still end the process: before, it stopped serving, logged "stopped", and then waited for
    the thread forever (asyncio's default executor joined at the loop's close and at exit)."""
    with running(tmp_path) as server:
        server.start()
        await server.ready(http)
        assert server.process is not None
        pipe = HeldPipe(server.flows)
        try:
            server.process.send_signal(signal.SIGHUP)
            assert await asyncio.to_thread(pipe.reading.wait, 60), server.log.read_text()  # the reload is reading
            server.process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.to_thread(server.process.wait, 60)
            except subprocess.TimeoutExpired:
                raise AssertionError("still running 60 s after SIGTERM:\n" + server.log.read_text()) from None
            assert code == 0, server.log.read_text()
            assert "stopped in" in server.log.read_text()
        finally:
            pipe.release()
