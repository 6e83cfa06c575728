"""Someone who is not the young person in danger writes: a parent, a teacher, a friend. Through the web chat's
socket and Telegram (fake Bot API), the real app and the shipped model: the words they are given and what the
listener reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import BOT_TOKEN, FakeTelegramAPI, telegram_headers, telegram_update
from tests.e2e.channel_support import Client, offline
from tests.e2e.test_risk_paths import broken_model
from tests.e2e.test_understanding import Start, start
from tests.test_webchat import bot_texts, hello, say

__all__ = ["offline", "start"]
SECRET = "webhook_secret-123"
CHAT = 616161
HOW_TO_HELP = "parles-en vite à un adulte de confiance"


@pytest.fixture
def telegram_settings(settings: Settings, telegram: FakeTelegramAPI) -> Settings:
    return settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url)


async def the_conversation(client: Client) -> Any:
    [conversation] = [c for s in Status for c in await client.app[STORE].conversations_by_status(s)]
    return conversation


@pytest.mark.parametrize("message", ["ma fille a envie de mourir", "mon fils m'a dit qu'il pense au suicide",
                                     "une élève m'a dit qu'elle avait des idées suicidaires"])  # fmt: skip
async def test_a_parent_or_teacher_told_someone_elses_suicidal_words_gets_how_to_help(
    start: Start, settings: Settings, message: str
) -> None:
    """The model reads these as someone else's (third party, suicide 0.90-0.99), but the young person's own words
    ("envie de mourir", "pense au suicide") are in them: the keywords' first-person interrupt won, and a mother was
    told "tu n'es pas seul·e", never how to help her daughter nor to keep it no secret."""
    client = await start(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m0", message)
    texts = bot_texts(frames)
    assert any(HOW_TO_HELP in text for text in texts), texts
    assert any("3114" in text for text in texts)
    conversation = await the_conversation(client)
    assert conversation.route == "suicide_friend"
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value == "urgent"


async def test_a_young_person_at_risk_who_names_a_sister_is_not_told_how_to_help_her(
    start: Start, settings: Settings
) -> None:
    """Both interrupts' phrases, and the model reads the young person's own risk (not a third party's): the file
    order made it the friend's words, "prends ce qu'il ou elle t'a dit au sérieux", to a young person saying
    "moi aussi je veux mourir"."""
    client = await start(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m0", "ma soeur veut mourir et moi aussi je veux mourir")
    texts = bot_texts(frames)
    assert not any(HOW_TO_HELP in text for text in texts), texts
    assert any("Tu n'es pas seul·e" in text for text in texts)
    assert (await the_conversation(client)).route == "suicide"


async def test_telegram_a_father_told_his_sons_words_gets_how_to_help(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    client = await start(telegram_settings)
    for number, text in enumerate(["/start", "mon fils m'a dit qu'il pense au suicide"]):
        update = telegram_update(700 + number, CHAT, text, language_code="fr")
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
        assert response.status == 200
    conversation = await the_conversation(client)
    assert conversation.route == "suicide_friend"
    said = [e.text for e in await client.app[STORE].transcript(conversation.id) if e.author == Author.BOT]
    assert any(HOW_TO_HELP in text for text in said), said


@pytest.mark.parametrize("message", ["mon neveu de 8 ans est battu par sa mère", "mon fils est battu par son père"])
async def test_a_relative_says_a_child_is_beaten_at_home_and_gets_the_119(
    start: Start, settings: Settings, message: str
) -> None:
    """An uncle, a mother, a teacher: the child is beaten at home, said of the child ("est battu par sa mère"). The
    keywords know "me frappe", "le frappe", "se fait frapper par son père", never this; the model read the first
    at 0.51 (threshold 0.54): the uncle was asked "es-tu en danger ?" again, no 119, nothing for the listeners.
    The second the model read as danger now (17/112): no 119 either, for a boy beaten by his father."""
    client = await start(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m0", message)
    texts = bot_texts(frames)
    assert any("119" in text and "Allô Enfance en Danger" in text for text in texts), texts
    [waiting] = await client.app[STORE].waiting()
    assert waiting.priority.value in ("urgent", "high")
    assert "119" in (await the_conversation(client)).partners_given


@pytest.mark.parametrize("message", ["ma nièce est battue par son père", "une élève a été frappée par son beau-père",
                                     "ma mère frappe mon petit frère"])  # fmt: skip
async def test_a_child_beaten_at_home_said_by_a_relative_with_the_model_down(
    start: Start, settings: Settings, message: str
) -> None:
    """The keywords alone (the model down): the same words give the 119."""
    client = await start(settings, understanding=broken_model)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m0", message)
    assert any("119" in text for text in bot_texts(frames))
    assert (await the_conversation(client)).route == "abuse_home"


@pytest.mark.parametrize(
    ("first", "parent"),
    [("Bonjour, je suis la maman d'une ado de 14 ans qui se fait harceler sur insta", "je suis la maman"),
     ("je suis papa d'un garçon de 12 ans, il est harcelé au collège", "je suis papa"),
     ("je suis le grand frère d'une fille de 13 ans, on fait du chantage à ma soeur avec une photo",
      "je suis le grand frere d")],
)  # fmt: skip
async def test_a_mother_who_said_so_in_her_first_message_is_not_asked_who_is_writing(
    start: Start, settings: Settings, first: str, parent: str
) -> None:
    """A mother writes "je suis la maman d'une ado de 14 ans…": the age, the topic and the story were kept from her
    first message, but not who is writing ("je suis sa maman" and "je suis la mère" were synonyms, "je suis la
    maman" was not): she was asked "Tu nous écris pour toi ou pour quelqu'un d'autre ?" after saying it. The
    listener's card says how it was understood: from her first message, by which words."""
    client = await start(settings)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        frames = await say(ws, "m0", first)
        frames += await say(ws, "m1", "non")
        frames += await say(ws, "m2", "français")
    texts = bot_texts(frames)
    assert not any("Tu nous écris pour toi" in text for text in texts), texts
    summary = dict((await the_conversation(client)).summary)
    assert summary["Qui écrit"] == f"Parent ou proche (message précédent, mot-clé « {parent} »)"
    assert summary["Âge"].startswith(("14", "12", "13"))


async def test_telegram_a_mother_is_asked_her_daughters_age_not_her_own(
    start: Start, telegram_settings: Settings, telegram: FakeTelegramAPI
) -> None:
    """A mother on Telegram: "ma fille est victime de chantage avec une photo". The age question came before "who
    is writing" and asked only "Quel âge as-tu ?": she gave her own, 44, and the listener's card read "Âge : 44"
    for a 15-year-old's sextortion (the age France Victimes' warm referral receives too). The question says whose
    age is wanted when one writes for someone else, and the card reads the daughter's. (Since 2026-12-05 the model
    reads that very message as a sextortion going on, 0.81, and hands it off at once, flows.yaml understanding.topics:
    a harassment told the same way keeps the walk to the age question.)"""
    client = await start(telegram_settings)
    turns = ["/start", "ma fille se fait harceler sur insta à cause d'une photo", "non", "français"]
    for number, text in enumerate(turns):
        update = telegram_update(800 + number, CHAT, text, language_code="fr")
        response = await client.post("/webhooks/telegram", data=json.dumps(update), headers=telegram_headers(SECRET))
        assert response.status == 200
    conversation = await the_conversation(client)
    said = [e.text for e in await client.app[STORE].transcript(conversation.id) if e.author == Author.BOT]
    assert said[-1].startswith("Quel âge as-tu ?") and "quelqu'un d'autre" in said[-1], said[-1]
