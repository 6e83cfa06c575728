"""The app as a service: health, readiness, and reloading flows.yaml without a restart."""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import threading
import weakref
from dataclasses import replace
from pathlib import Path

from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, STORE, prune_flows
from gateway.conversation import Status
from gateway.flowset import FlowSet
from gateway.settings import Settings
from gateway.understanding import Model
from tests.conftest import ROOT, AppFactory, Clock, add_listener, login, shipped_model
from tests.test_webchat import bot_texts, hello, say

Client = TestClient  # type: ignore[type-arg]


def flow_copy(tmp_path: Path) -> Path:
    target = tmp_path / "flows.yaml"
    shutil.copy(ROOT / "flows.yaml", target)
    return target


def with_flow(settings: Settings, flows: Path) -> Settings:
    return settings.replace(flows=str(flows))


async def test_healthz_and_readyz(client: Client) -> None:
    health = await client.get("/healthz")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 200
    assert body["ready"] is True and body["store"] == "ok"
    assert body["flow"] == client.app[FLOWS].version and body["last_reload"]["ok"] is True


async def test_readyz_is_503_when_the_store_is_gone(client: Client) -> None:
    await client.app[STORE].close()
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["store"] == "unreachable"


async def test_an_invalid_reload_is_refused_and_the_old_flow_keeps_serving(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    version = client.app[FLOWS].version
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")

    text = flows.read_text(encoding="utf-8")
    flows.write_text(text.replace("next: urgency", "next: urgenci", 1), encoding="utf-8")
    response = await client.post("/api/admin/reload", json={})
    assert response.status == 422
    result = await response.json()
    assert result["ok"] is False and result["version"] == version
    assert any(
        p.startswith(f"{flows}:") and "'urgenci'" in p and "did you mean 'urgency'" in p for p in result["problems"]
    ), result["problems"]

    ready = await (await client.get("/readyz")).json()
    assert ready["ready"] is True and ready["flow"] == version
    assert ready["last_reload"]["problems"] == result["problems"]
    async with client.ws_connect("/chat/ws") as ws:  # the old flow still answers
        await hello(ws)
        assert any("anglais" in t for t in bot_texts(await say(ws, "a", "2")))


async def test_a_valid_change_is_picked_up_from_the_file_and_pins_running_conversations(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    old_version = client.app[FLOWS].version
    async with client.ws_connect("/chat/ws") as ws:
        old_token = (await hello(ws))["token"]
        await say(ws, "a", "2")

    text = flows.read_text(encoding="utf-8")
    assert "Tu es toujours là ?" in text
    flows.write_text(text.replace("Tu es toujours là ?", "Tu es encore là ?"), encoding="utf-8")
    result = client.app[FLOWS].reload_if_changed()  # what the file watcher does every 2 s
    assert result is not None and result.ok
    new_version = client.app[FLOWS].version
    assert new_version != old_version

    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
    store = client.app[STORE]
    bot = await store.conversations_by_status(Status.BOT)
    pinned = {c.sender == old_token: c.flow_version for c in bot}
    assert pinned == {True: old_version, False: new_version}

    async with client.ws_connect("/chat/ws") as ws:  # the old conversation goes on where it was
        await hello(ws, old_token)
        frames = await say(ws, "b", "1")
    assert any("âge" in t.lower() for t in bot_texts(frames))


async def test_the_file_watcher_reloads_by_itself(make_client: AppFactory, settings: Settings, tmp_path: Path) -> None:
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows), flow_watch_seconds=0.05)
    old_version = client.app[FLOWS].version
    text = flows.read_text(encoding="utf-8")
    flows.write_text(text.replace("Tu es toujours là ?", "Es-tu encore là ?"), encoding="utf-8")
    for _ in range(400):  # the watcher looks every 0.05 s here (2 s in production); a slow machine gets 20 s
        if client.app[FLOWS].version != old_version:
            break
        await asyncio.sleep(0.05)
    assert client.app[FLOWS].version != old_version


async def test_the_file_watcher_never_serves_a_file_still_being_written(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """An editor or ``cp`` writing flows.yaml in place: the watcher's look fell between two writes and loaded the
    file's first lines, a valid flow of their own without the erasure, the closures and their partners' numbers, and
    served it until its next look (conversations begun meanwhile kept it). A change is loaded once the file looks
    the same at two looks in a row."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    flowset = client.app[FLOWS]
    old_version, reloads = flowset.version, flowset.last_reload
    text = flows.read_text(encoding="utf-8")
    half = text[: text.index("\nerasure:") + 1]  # its first lines: a flow without the erasure and its tests
    (tmp_path / "half.yaml").write_text(half, encoding="utf-8")
    assert FlowSet(tmp_path / "half.yaml").reload().ok  # valid: served, before, until the watcher's next look

    flows.write_text(half, encoding="utf-8")  # the watcher looks while the file is half written
    assert flowset.reload_if_settled() is None
    assert flowset.version == old_version and flowset.last_reload is reloads
    flows.write_text(text.replace("Tu es toujours là ?", "Es-tu encore là ?"), encoding="utf-8")  # then written
    assert flowset.reload_if_settled() is None  # changed since the last look: maybe still being written
    result = flowset.reload_if_settled()  # the same at two looks in a row
    assert result is not None and result.ok and flowset.version != old_version
    assert flowset.engine().flow.erasure is not None
    assert flowset.reload_if_settled() is None  # loaded: nothing more until the next change


async def test_the_reload_endpoint_needs_a_supervisor(client: Client) -> None:
    assert (await client.post("/api/admin/reload", json={})).status == 401
    await add_listener(client, "alice")
    await login(client, "alice")
    assert (await client.post("/api/admin/reload", json={})).status == 403


async def test_the_quick_exit_url_is_escaped_in_the_chat_page(make_client: AppFactory, settings: Settings) -> None:
    client = await make_client(settings.replace(quick_exit_url='https://exit.example/?a=1&b="><script>x</script>'))
    response = await client.get("/chat")
    page = await response.text()
    assert 'data-quick-exit="https://exit.example/?a=1&amp;b=&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page
    assert "<script>x" not in page


async def test_a_transcript_shows_what_was_sent_after_flows_yaml_changed_its_words(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """The bot's messages are stored once for every conversation, by reference (gateway/store/texts.py): a
    reload with other words, then a restart, never changes what an earlier transcript shows."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
    sent = [(e["text"], e["choices"]) for e in session["history"]]
    assert "Bonjour, ici le 3018" in sent[0][0] and sent[-1][1]
    text = flows.read_text(encoding="utf-8")
    flows.write_text(text.replace("Bonjour, ici le 3018", "Salut, c'est le 3018").replace("Je ne sais pas",
                                  "Aucune idée"), encoding="utf-8")  # fmt: skip
    assert client.app[FLOWS].reload_if_changed() is not None
    await client.close()

    again = await make_client(with_flow(settings, flows))  # another process on the same store: nothing cached
    async with again.ws_connect("/chat/ws") as ws:
        assert [(e["text"], e["choices"]) for e in (await hello(ws, session["token"]))["history"]] == sent
    async with again.ws_connect("/chat/ws") as ws:
        assert "Salut, c'est le 3018" in (await hello(ws))["history"][0]["text"]


async def test_a_closed_app_lets_go_of_its_model_and_ends_its_thread(
    make_client: AppFactory, settings: Settings
) -> None:
    """What a closed app held must not outlive it (a test run builds hundreds of apps in one process; a gateway
    reopens what it reconnects): its Reader's thread has ended and its model is freed, although aiohttp keeps a
    closed app that served requests in a module-level cache (``web_app._cached_build_middleware``). A model still
    loading when the app closes is waited for."""
    shared, loading = shipped_model(), threading.Event()
    box = [Model(shared.embedder, shared.classifier)]  # the app's own model (the engine in it is shared)
    held = weakref.ref(box[0])

    def load() -> Model:
        loading.wait(timeout=30)
        return box.pop()

    client = await make_client(settings, understanding=load)
    assert (await client.get("/readyz")).status == 200
    thread = next(t for t in threading.enumerate() if t.name == "understanding")
    closing = asyncio.ensure_future(client.close())
    done, _ = await asyncio.wait({closing}, timeout=0.5)
    assert not done  # the close waits for the worker, whose load is under way
    loading.set()
    await closing
    assert not thread.is_alive()
    gc.collect()
    assert held() is None


async def test_a_file_written_in_two_goes_within_one_clock_tick_is_reloaded(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """An editor saving in place truncates flows.yaml, then writes it: the watcher read it in between ("the file is
    empty": refused, the old flow kept, as it should), then the complete file got the same modification time (a
    filesystem's clock tick is 1 to 10 ms, a second on some shared volumes) and was never looked at again: the
    gateway served the old flow while its last reload said the file was empty, until the next save."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    flowset = client.app[FLOWS]
    old_version = flowset.version
    text = flows.read_text(encoding="utf-8")
    tick = flows.stat().st_mtime_ns + 1_000_000_000

    flows.write_text("", encoding="utf-8")  # the editor truncated the file
    os.utime(flows, ns=(tick, tick))
    refused = flowset.reload_if_changed()
    assert refused is not None and not refused.ok and refused.version == old_version
    flows.write_text(text.replace("Tu es toujours là ?", "Es-tu encore là ?"), encoding="utf-8")  # then wrote it
    os.utime(flows, ns=(tick, tick))  # within the same tick of the filesystem's clock
    result = flowset.reload_if_changed()
    assert result is not None and result.ok
    assert flowset.version != old_version and flowset.last_reload is not None and flowset.last_reload.ok


async def test_flow_versions_no_open_conversation_uses_are_forgotten(
    make_client: AppFactory, settings: Settings, tmp_path: Path
) -> None:
    """Each reload kept its flow in memory for the process's life (3–4 MB an engine: ~200 MB after 61 reloads). Now
    the watcher forgets a version replaced for a while that no open conversation is pinned to; one still in use is
    kept, and its conversation goes on on it; the current one is never forgotten."""
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    flowset, store = client.app[FLOWS], client.app[STORE]
    first = flowset.version
    async with client.ws_connect("/chat/ws") as ws:  # a conversation pinned to the first version
        token = (await hello(ws))["token"]
        await say(ws, "a", "2")
    text = flows.read_text(encoding="utf-8")
    versions = [first]
    for number in range(3):  # three reloads; nobody starts a conversation on the two middle versions
        flows.write_text(text.replace("Tu es toujours là ?", f"Tu es là ({number}) ?"), encoding="utf-8")
        result = flowset.reload()
        assert result.ok and result.version not in versions
        versions.append(flowset.version)
    assert set(flowset.engines) == set(versions)

    assert await prune_flows(flowset, store, settled=0) == 2  # the two middle ones
    assert set(flowset.engines) == {first, versions[-1]} and flowset.version == versions[-1]
    assert await prune_flows(flowset, store, settled=0) == 0  # the first still in use: kept
    async with client.ws_connect("/chat/ws") as ws:  # and its conversation goes on on it
        await hello(ws, token)
        frames = await say(ws, "b", "1")
    assert any("âge" in t.lower() for t in bot_texts(frames))
    [conversation] = await store.conversations_by_status(Status.BOT)
    assert conversation.flow_version == first

    await store.save_conversation(replace(conversation, status=Status.CLOSED))  # it ends
    assert await prune_flows(flowset, store, settled=0) == 1
    assert set(flowset.engines) == {versions[-1]}
    assert flowset.prune([], settled=0) == 0  # the current one is never forgotten


async def test_the_web_chat_is_found_at_the_root_and_with_a_trailing_slash(client: Client) -> None:
    """A link written "…/chat/" (a site's editor adds the slash) or to the bare address lands on the chat, with its
    query; before, 404: a young person following the helpline's link found nothing. Relative, so that a gateway
    served under a path prefix behind a proxy keeps it."""
    for path, location in (("/chat/", "../chat"), ("/chat/?lang=en", "../chat?lang=en"), ("/", "chat")):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (302, location), path
    followed = await client.get("/chat/")
    assert followed.status == 200 and followed.url.path == "/chat"
    assert "text/html" in followed.headers["Content-Type"]
