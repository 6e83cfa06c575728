"""The web chat's forwarding keeps sending the store's events while it resynchronises its pages (a Redis reconnection,
the forwarding subscribing again): the pass over every page runs beside the events, one at a time, and the requests
made during a pass give one more, not one each.

Until 2026-12-07 the forwarder read no event while a pass ran: with thousands of pages open on a busy machine a pass
lasted seconds, the events queued meanwhile overflowed the subscription's buffer (``SUBSCRIBER_BUFFER``), which asked
for the whole pass again, and so on (``bench/pages.py --pages 4000 --drop`` at load 5-16: 7-15 resync frames a page,
a reply's p99 16-17 s). Shown here with the pass held by a store double the test releases, not in time: a slow machine
only makes the test slower.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, cast

from aiohttp.test_utils import TestClient

from gateway.app import STORE, WEBCHAT
from gateway.conversation import Status
from gateway.errors import StoreError
from gateway.events import EntryAdded, Resync, Typing
from gateway.messages import ChannelName
from gateway.sockets import SocketWriter
from gateway.store import Author, TranscriptEntry
from gateway.store.local import SUBSCRIBER_BUFFER
from gateway.webchat import WebChatHub

LIVE = SUBSCRIBER_BUFFER + 500  # events published while the pass is held: more than the subscription keeps
CHUNK = 100


class Page:
    """A socket's writer as the hub offers it frames: every frame kept, none ever refused."""

    limit = 10_000

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def offer(self, frame: dict[str, Any]) -> bool:
        self.frames.append(frame)
        return True

    def overflow(self) -> None:
        raise AssertionError("a page of the test overflowed")

    def resyncs(self) -> int:
        return sum(1 for frame in self.frames if frame["type"] == "resync")

    def entry_ids(self) -> list[str]:
        ids = [f["entry"]["id"] for f in self.frames if f["type"] == "entry"]
        return ids + [e["id"] for f in self.frames if f["type"] == "resync" for e in f["entries"]]


class Held:
    """The hub's store: counts each conversation's transcript reads (one a resync pass reads it), holds the first
    read of ``held`` until ``release`` is set, and fails the first read with StoreError when ``fail``."""

    def __init__(self, store: Any, held: str | None, fail: bool = False) -> None:
        self._store, self.held, self.fail = store, held, fail
        self.reads: Counter[str] = Counter()
        self.reading, self.release = asyncio.Event(), asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def transcript(self, conversation_id: str, *args: Any, **kwargs: Any) -> list[TranscriptEntry]:
        self.reads[conversation_id] += 1
        if self.fail:
            self.fail = False
            raise StoreError("the test's store failed a read")
        if conversation_id == self.held and not self.reading.is_set():
            self.reading.set()
            await self.release.wait()
        return cast(list[TranscriptEntry], await self._store.transcript(conversation_id, *args, **kwargs))


async def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait for ``condition`` (a safety net against a hang, not a timing assumption)."""
    try:
        async with asyncio.timeout(seconds):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {seconds:g} s: {what}") from None


@contextlib.asynccontextmanager
async def forwarding(
    client: TestClient[Any, Any], held: Held, count: int
) -> AsyncIterator[tuple[WebChatHub, list[str], list[Page]]]:
    """A hub of its own on the app's store (behind ``held``), ``count`` conversations each shown by one page, and its
    forwarding running (cancelled at the end)."""
    app_hub, store = client.app[WEBCHAT], client.app[STORE]
    hub = WebChatHub(held, app_hub.dispatcher, app_hub.flows, app_hub.metrics, app_hub.gate, clock=app_hub.clock)
    conversations = [
        (await store.active_conversation(ChannelName.WEBCHAT, f"resync-pass-{n}", app_hub.clock()))[0].id
        for n in range(count)
    ]
    if held.held == "first":
        held.held = conversations[0]
    pages = [Page() for _ in conversations]
    for conversation_id, page in zip(conversations, pages, strict=True):
        await hub.follow(conversation_id)
        hub.attach(conversation_id, cast(SocketWriter, page))
        hub.opened(conversation_id, cast(SocketWriter, page), None)
    task = asyncio.create_task(hub.forward_events())
    try:
        yield hub, conversations, pages
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def entry(conversation_id: str, entry_id: str, clock: Callable[[], Any]) -> EntryAdded:
    return EntryAdded(conversation_id, TranscriptEntry(entry_id, conversation_id, clock(), Author.BOT, "Je suis là."))


async def test_events_are_forwarded_while_a_pass_runs_and_requests_meanwhile_make_one_more_pass(
    client: TestClient[Any, Any],
) -> None:
    store = client.app[STORE]
    held = Held(store, "first")
    async with forwarding(client, held, 2) as (hub, (first, second), (first_page, second_page)):
        clock = hub.clock
        async with asyncio.timeout(30):
            await held.reading.wait()  # the subscription's first pass reads the first conversation, held
        await until(lambda: second_page.resyncs() == 1, "the second conversation's resync frame")
        await store.publish(entry(first, "first-live", clock))  # its read is under way: after its resync frame
        await store.publish(Typing(first, "listener"))  # nothing a read says: at once
        for start in range(0, LIVE, CHUNK):
            for n in range(start, start + CHUNK):
                await store.publish(entry(second, f"live-{n}", clock))
            if start == CHUNK:
                await store.publish(Resync())  # asked twice while the pass runs: one more pass, not two
                await store.publish(Resync())
            last = f"live-{start + CHUNK - 1}"
            await until(lambda: last in second_page.entry_ids(), f"{last} (and those before) while the pass is held")  # noqa: B023
        assert first_page.frames == [{"type": "typing", "on": True}]  # the entry held until its resync frame
        held.release.set()
        await until(lambda: first_page.resyncs() == 2 and second_page.resyncs() == 2, "the one more pass")
        await store.publish(entry(second, "after", clock))
        await until(lambda: "after" in second_page.entry_ids(), "an entry after the passes")
    assert [frame["type"] for frame in first_page.frames] == ["typing", "resync", "entry", "resync"]
    assert first_page.entry_ids() == ["first-live"]  # after the frame of what it may have missed, once
    assert held.reads == {first: 2, second: 2}  # two passes: the first, and one more for the two requests
    ids = second_page.entry_ids()
    assert len(ids) == len(set(ids)) == LIVE + 1  # every live entry, once (none in the transcript read)


async def test_a_conversation_the_pass_has_still_to_read_is_sent_its_events_by_that_read(
    client: TestClient[Any, Any],
) -> None:
    """While the pass reads its first conversations, one it has still to read gets nothing live: its read, after
    the event, says it (the entry once, in the resync frame; no frame that read makes older), and a Resync asked
    then gives it no second read."""
    store = client.app[STORE]
    held = Held(store, "first")
    count = 40  # more than RESYNC_AT_ONCE: the last ones wait for the first batch
    async with forwarding(client, held, count) as (hub, conversations, pages):
        async with asyncio.timeout(30):
            await held.reading.wait()
        last, last_page = conversations[-1], pages[-1]
        said = TranscriptEntry("stored-then-told", last, hub.clock(), Author.BOT, "Je suis là.")
        await store.append_transcript(said)
        await store.publish(EntryAdded(last, said))
        await store.publish(Resync())
        await store.publish(entry(conversations[1], "marker", hub.clock))  # read already: after the two
        await until(lambda: "marker" in pages[1].entry_ids(), "the forwarding past the events")
        assert last_page.frames == []
        held.release.set()
        await until(lambda: pages[0].resyncs() == 2, "the first conversation's second read")
        await until(lambda: hub._passes is not None and not hub._passes.running, "the passes made")
    assert [frame["type"] for frame in last_page.frames] == ["resync"]
    assert last_page.entry_ids() == ["stored-then-told"]
    assert held.reads[last] == 1 and held.reads[conversations[0]] == 2


async def test_a_failed_pass_ends_the_subscription_which_is_made_again_and_nothing_is_left_running(
    client: TestClient[Any, Any],
) -> None:
    store = client.app[STORE]
    held = Held(store, None, fail=True)
    apps = forwarding_tasks()  # the app's own hub's
    async with forwarding(client, held, 1) as (hub, (only,), (page,)):
        await until(lambda: page.resyncs() == 1, "the resync frame of the subscription made again")
        assert held.reads[only] == 2  # the failed read, then the new subscription's pass
        await store.publish(entry(only, "live", hub.clock))
        await until(lambda: "live" in page.entry_ids(), "an event on the new subscription")
        held.held, held.reading = only, asyncio.Event()  # the next pass held: the forwarding stopped during it
        await store.publish(Resync())
        async with asyncio.timeout(30):
            await held.reading.wait()
    assert forwarding_tasks() == apps


def forwarding_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task.get_name() in ("webchat-resync", "webchat-events")}


class Placed(Held):
    """``Held`` whose queue answers the places the test sets (``places``), not the store's."""

    def __init__(self, store: Any) -> None:
        super().__init__(store, None)
        self.places: dict[str, int] = {}

    async def position(self, conversation_id: str) -> int | None:
        return self.places.get(conversation_id)


async def test_a_place_told_while_the_pass_reads_the_conversation_never_ends_up_after_a_newer_one(
    client: TestClient[Any, Any],
) -> None:
    """A place in line the positions' worker told while the pass read that conversation (held until its resync frame
    is out) was read before the frame's: the page is left with the frame's, the newer. Until 2026-12-07 the held
    status frame came after the resync frame: the page showed "position 2" while the hub took it told 1, and the
    next passes of the places, finding 1 unchanged, never told it again."""
    store = client.app[STORE]
    held = Placed(store)
    async with forwarding(client, held, 1) as (hub, (only,), (page,)):
        await until(lambda: page.resyncs() == 1, "the subscription's first pass")
        conversation = await store.get_conversation(only)
        assert conversation is not None
        await store.save_conversation(replace(conversation, status=Status.QUEUED, queue="listeners"))
        held.places[only] = 3
        await store.publish(Resync())
        await until(lambda: page.resyncs() == 2, "a pass that reads its place")
        assert page.frames[-1]["position"] == 3 and hub.positions[only].position == 3
        held.held, held.reading = only, asyncio.Event()
        await store.publish(Resync())
        async with asyncio.timeout(30):
            await held.reading.wait()  # the pass reads it (its record read already), held
        held.places[only] = 2  # the first ahead of it taken: the positions' worker reads and tells it
        await hub._refresh_positions()
        held.places[only] = 1  # the next one taken before the pass reads its place
        held.release.set()
        await until(lambda: page.resyncs() == 3, "the held pass's resync frame")
        await until(lambda: hub._passes is not None and not hub._passes.running, "the pass made")
        await hub._refresh_positions()  # the place unchanged since the pass: nothing more told
    told = [frame["position"] for frame in page.frames if "position" in frame]
    assert told[-1] == 1, told
    assert hub.positions[only].position == 1
