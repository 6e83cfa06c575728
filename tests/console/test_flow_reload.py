"""flows.yaml reloaded while conversations are with listeners: the console offers the new flow's queues, partners and
closing categories (``GET /api/flow``), and they work on the conversations started before the reload too (which
keep their own flow version for the bot's part). Before, an outcome, partner or queue added by ops was refused
(409) on every conversation begun earlier: a listener could not close, refer or transfer them as the console offered.

The real app on SQLite, its flows.yaml a copy the test edits and reloads as the file watcher does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, STORE
from gateway.conversation import Status
from gateway.settings import Settings
from tests.conftest import PARIS, AppFactory, Clock, add_listener, login
from tests.test_app import flow_copy, with_flow
from tests.test_timers import bot_lines, conversation_of, fire_and_wait, start
from tests.test_webchat import WALK_TO_QUEUE

Client = TestClient  # type: ignore[type-arg]

OUTCOME = "  - {id: information_only, label: {fr: Demande d'information, en: Information only}}\n"
QUEUE = "    schedule: listeners\n    average_minutes: 12\n"
PARTNER = "  brigade_numerique:\n"


def add_to_the_flow(path: Path) -> None:
    """What ops add: a closing category, a queue and a partner."""
    text = path.read_text(encoding="utf-8")
    assert OUTCOME in text and QUEUE in text and PARTNER in text
    text = text.replace(OUTCOME, OUTCOME + "  - {id: grooming, label: {fr: Pédopiégeage, en: Grooming}}\n", 1)
    text = text.replace(QUEUE, QUEUE + "  lawyers:\n    name: {fr: Juristes, en: Lawyers}\n" + QUEUE, 1)
    partner = ('  e_enfance:\n    name: {fr: e-Enfance, en: e-Enfance}\n    url: https://e-enfance.org\n'
               '    schedule: always\n    message:\n      fr: "L\'association e-Enfance t\'aide aussi."\n'
               '      en: "The e-Enfance association can help you too."\n\n')  # fmt: skip
    path.write_text(text.replace(PARTNER, partner + PARTNER, 1), encoding="utf-8")


async def test_what_a_reload_adds_works_on_the_conversations_begun_before_it(
    make_client: AppFactory, settings: Settings, tmp_path: Path, clock: Clock
) -> None:
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(settings, flows))
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    path = f"/api/conversations/{conversation.id}"
    assert (await client.post(path + "/take", json={})).status == 200

    add_to_the_flow(flows)
    reloaded = client.app[FLOWS].reload_if_changed()  # what the file watcher does every 2 s
    assert reloaded is not None and reloaded.ok, reloaded
    offered = await (await client.get("/api/flow")).json()
    assert "grooming" in [o["id"] for o in offered["outcomes"]]
    assert "lawyers" in [q["id"] for q in offered["queues"]]
    assert "e_enfance" in [p["id"] for p in offered["partners"]]

    referred = await client.post(path + "/refer", json={"partner": "e_enfance"})
    assert referred.status == 201, await referred.text()
    assert (await referred.json())["text"] == "L'association e-Enfance t'aide aussi."
    transferred = await client.post(path + "/transfer", json={"queue": "lawyers"})
    assert transferred.status == 200, await transferred.text()
    count = len(await bot_lines(client, conversation.id))
    clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)  # the new queue's hours are over

    async def told() -> bool:
        return len(await bot_lines(client, conversation.id)) > count

    await fire_and_wait(client, told)  # its hours are the reloaded flow's: where to turn now, not a reassurance
    assert "Le chat du 3018 est fermé" in (await bot_lines(client, conversation.id))[-1]
    assert (await client.post(path + "/take", json={})).status == 200
    closed = await client.post(path + "/close", json={"outcome": "grooming"})
    assert closed.status == 200, await closed.text()

    ended = await client.app[STORE].get_conversation(conversation.id)
    assert ended is not None and (ended.status, ended.outcome, ended.queue) == (Status.CLOSED, "grooming", "lawyers")
    assert ended.flow_version != client.app[FLOWS].version  # still pinned to the version it began on


async def test_a_closing_category_unknown_to_every_version_is_still_refused(client: Client, clock: Clock) -> None:
    conversation = await conversation_of(client, await start(client, WALK_TO_QUEUE), clock)
    await add_listener(client, "anne")
    await login(client, "anne")
    path = f"/api/conversations/{conversation.id}"
    assert (await client.post(path + "/take", json={})).status == 200
    closed = await client.post(path + "/close", json={"outcome": "no-such-category"})
    assert closed.status == 409 and (await closed.json())["error"] == "unknown_outcome"
    assert (await client.post(path + "/refer", json={"partner": "nobody"})).status == 409
    assert (await client.post(path + "/transfer", json={"queue": "nowhere"})).status == 409
