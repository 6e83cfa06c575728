"""Telegram end to end: the real app (python-telegram-bot in webhook mode inside it) and a fake Bot API.

Updates carry the secret token header; choices go out as inline keyboards and come back as callback queries,
each answered with answerCallbackQuery.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.app import DISPATCHER, STORE
from gateway.conversation import Status
from gateway.messages import Choice, Reply
from gateway.settings import Settings
from gateway.store import Author, Delivery
from gateway.testing import (
    BOT_TOKEN,
    Failure,
    FakeTelegramAPI,
    telegram_callback,
    telegram_headers,
    telegram_member_update,
    telegram_update,
)
from tests.conftest import outbox_drained
from tests.e2e.channel_support import (
    Client,
    GatewayFactory,
    ListenerDesk,
    eventually,
    gateway,
    offline,
    running_clock,
)

__all__ = ["gateway", "offline"]  # fixtures used by the tests below
# PTB 22 warns, when it builds RetryAfter, that retry_after will become a timedelta; the adapter reads both.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")

SECRET = "webhook_secret-123"
CHAT = 424242
PATH = "/webhooks/telegram"
URGENCY = [("Oui, maintenant", "yes_now"), ("Non", "no"), ("Je ne sais pas", "unsure")]


@pytest.fixture
def telegram_settings(settings: Settings, telegram: FakeTelegramAPI) -> Settings:
    return settings.replace(telegram_bot_token=BOT_TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=telegram.url)


@pytest.fixture
async def client(gateway: GatewayFactory, telegram_settings: Settings) -> Client:
    return await gateway(telegram_settings)


async def deliver(client: Client, update: dict[str, Any]) -> int:
    response = await client.post(PATH, data=json.dumps(update), headers=telegram_headers(SECRET))
    return response.status


def walk() -> list[dict[str, Any]]:
    """Typed messages and button taps (callback queries), with consecutive update ids."""
    return [
        telegram_update(900000001, CHAT, "bonjour"),
        telegram_callback(900000002, CHAT, "no", URGENCY, query_id="q-urgency"),
        telegram_callback(900000003, CHAT, "fr", [("Français", "fr"), ("English", "en")], query_id="q-language"),
        telegram_update(900000004, CHAT, "j'ai 15 ans"),
        telegram_callback(900000005, CHAT, "me", [("Pour moi", "me")], query_id="q-who"),
        telegram_callback(900000006, CHAT, "cyberharassment", [("Cyberharcèlement", "cyberharassment")]),
        telegram_update(900000007, CHAT, "On se moque de moi sur un groupe."),
    ]


async def handed_to_listener(client: Client, telegram: FakeTelegramAPI) -> tuple[ListenerDesk, str]:
    for update in walk():
        assert await deliver(client, update) == 200
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["channel"] == "telegram" and str(CHAT) not in json.dumps(card)
    await desk.take(card["id"])
    await telegram.wait_accepted(len(await desk.all_sent(card["id"])))
    return desk, card["id"]


async def test_the_flow_reaches_a_listener_whose_reply_reaches_telegram(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, telegram)

    detail = await desk.conversation(conversation_id)
    assert detail["status"] == "with_listener"
    assert dict(detail["summary"])["Âge"] == "15"
    bot_texts = [e["text"] for e in detail["transcript"] if e["author"] == "bot"]
    assert [r.body["text"] for r in telegram.accepted()] == bot_texts  # every bot message once, in order
    urgency = next(r.body for r in telegram.accepted() if "reply_markup" in r.body)
    keyboard = json.loads(urgency["reply_markup"])["inline_keyboard"]
    assert [row[0]["callback_data"] for row in keyboard] == ["yes_now", "no", "unsure", "unknown"]
    assert [row[0]["text"] for row in keyboard][:3] == [label for label, _ in URGENCY]
    answered = await telegram.wait_for("answerCallbackQuery", 4)
    assert {r.body["callback_query_id"] for r in answered} >= {"q-urgency", "q-language", "q-who"}

    await desk.reply(conversation_id, "Bonjour, je suis Anne, je t'écoute.")
    request = (await telegram.wait_accepted(len(bot_texts) + 1))[-1]
    assert request.method == "POST" and request.path == f"/bot{BOT_TOKEN}/sendMessage"
    assert request.body == {"chat_id": str(CHAT), "text": "Bonjour, je suis Anne, je t'écoute."}


async def test_a_listener_typing_shows_the_typing_action(client: Client, telegram: FakeTelegramAPI) -> None:
    _, conversation_id = await handed_to_listener(client, telegram)
    for _ in range(3):  # keystrokes in quick succession: one chat action
        assert (await client.post(f"/api/conversations/{conversation_id}/typing", json={})).status == 204
    [action] = await telegram.wait_for("sendChatAction")  # one for the burst: tests/test_typing_relay.py
    assert action.body == {"chat_id": str(CHAT), "action": "typing"}


async def test_a_photo_is_recorded_in_the_transcript(client: Client, telegram: FakeTelegramAPI) -> None:
    telegram.add_file("photo-1", b"\xff\xd8 a photo")
    assert await deliver(client, telegram_update(900000100, CHAT, "voilà la photo", photo_file_id="photo-1")) == 200
    conversation = (await client.app[STORE].conversations_by_status(Status.BOT))[0]
    transcript = await client.app[STORE].transcript(conversation.id)
    user = [entry for entry in transcript if entry.author == "user"]
    assert user[0].text == "voilà la photo"
    assert [(a.kind, a.content_type) for a in user[0].attachments] == [("image", "image/jpeg")]

    # The listener views it through the console: getFile, then the download from the Bot API's file host.
    desk = ListenerDesk(client)
    await desk.login()
    response = await client.get(f"/api/conversations/{conversation.id}/attachments/0")
    assert response.status == 200 and await response.read() == b"\xff\xd8 a photo"
    assert telegram.requests_to("getFile")[0].body == {"file_id": "photo-1"}


async def test_a_voice_message_at_a_question_is_told_unread_and_the_question_asked_again(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """A voice message (or a photo) without words at the danger question: the bot says it cannot listen to it and
    asks again (before: "not understood", as if the young person had answered wrong); it stays in the transcript."""
    assert await deliver(client, telegram_update(900000150, CHAT, "bonjour")) == 200
    asked = [r.body["text"] for r in await telegram.wait_accepted(2)]
    voice = telegram_update(900000151, CHAT, None)
    voice["message"]["voice"] = {"file_id": "voice-1", "file_unique_id": "v", "duration": 4, "mime_type": "audio/ogg"}
    assert await deliver(client, voice) == 200
    said = [r.body["text"] for r in await telegram.wait_accepted(4)][2:]
    assert "messages vocaux" in said[0] and "pas bien compris" not in said[0], said
    assert said[1] == asked[-1]  # the danger question again
    conversation = (await client.app[STORE].conversations_by_status(Status.BOT))[0]
    user = [e for e in await client.app[STORE].transcript(conversation.id) if e.author == "user"]
    assert [a.kind for a in user[-1].attachments] == ["audio"]


async def test_the_same_update_three_times_gives_one_reply(client: Client, telegram: FakeTelegramAPI) -> None:
    update = telegram_update(900000200, CHAT, "bonjour")
    assert await asyncio.gather(*(deliver(client, update) for _ in range(3))) == [200, 200, 200]

    conversations = await client.app[STORE].conversations_by_status(Status.BOT)
    assert len(conversations) == 1
    desk = ListenerDesk(client)
    await desk.login()
    outgoing = await desk.all_sent(conversations[0].id)
    await telegram.wait_accepted(len(outgoing))
    await outbox_drained(client)  # a stray duplicate would be sent by now (there must be none)
    assert len(telegram.accepted()) == len(outgoing)
    transcript = (await desk.conversation(conversations[0].id))["transcript"]
    assert [e["author"] for e in transcript].count("user") == 1


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
async def test_a_bad_secret_is_403_and_changes_nothing(
    client: Client, telegram: FakeTelegramAPI, secret: str | None
) -> None:
    update = telegram_update(900000300, CHAT, "bonjour")
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    response = await client.post(PATH, data=json.dumps(update), headers=headers)
    assert response.status == 403
    assert await client.app[STORE].conversations_by_status(Status.BOT) == []
    assert await deliver(client, update) == 200  # the refused request consumed nothing
    await telegram.wait_accepted(1)


async def test_a_provider_failing_500_then_429_still_gets_every_message_once_in_order(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, telegram)
    before = len(telegram.accepted())
    telegram.fail_next(500, Failure(429, retry_after=1, description="Too Many Requests: retry after 1"))
    words = ["premier", "deuxième", "troisième"]
    for word in words:
        await desk.reply(conversation_id, word)

    accepted = await telegram.wait_accepted(before + 3)
    assert [r.body["text"] for r in accepted[before:]] == words
    assert [r.status for r in telegram.requests_to("sendMessage")][-5:] == [500, 429, 200, 200, 200]
    outgoing = await desk.all_sent(conversation_id)
    assert [e["delivery"] for e in outgoing[-3:]] == ["sent", "sent", "sent"]


@pytest.mark.filterwarnings("error::telegram.warnings.PTBDeprecationWarning")
async def test_a_split_message_resumes_at_the_part_that_failed(client: Client, telegram: FakeTelegramAPI) -> None:
    desk, conversation_id = await handed_to_listener(client, telegram)
    before, tried = len(telegram.accepted()), len(telegram.requests_to("sendMessage"))
    parts = ["A" * 3000, "B" * 2000]  # 5,001 characters: two parts of at most 4,096 UTF-16 units
    choices = (Choice("yes", "Oui"), Choice("no", "Non"))
    telegram.fail_next(None, 500)  # part 1 accepted, part 2 refused for now, then accepted
    dispatcher, store = client.app[DISPATCHER], client.app[STORE]
    async with store.lock(conversation_id):  # a long bot message, emitted as the engine's would be
        conversation = await store.get_conversation(conversation_id)
        assert conversation is not None
        reply = Reply("\n".join(parts), choices)
        [entry] = await dispatcher.emit(conversation, [reply], Author.BOT, dispatcher.clock())

    await desk.delivery_of(conversation_id, entry.id, "sent")
    accepted = telegram.accepted()[before:]
    assert [r.body["text"] for r in accepted] == parts  # each part once, in order
    assert "reply_markup" not in accepted[0].body  # the buttons ride on the last part only
    assert [row[0]["callback_data"] for row in json.loads(accepted[1].body["reply_markup"])["inline_keyboard"]] == [
        "yes", "no",
    ]  # fmt: skip
    assert [r.status for r in telegram.requests_to("sendMessage")[tried:]] == [200, 500, 200]


async def test_an_unexpected_error_in_an_adapter_does_not_stop_the_outbox(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """With PTB's deprecation warning turned into an error, building RetryAfter raises something that is no
    DeliveryError: the outbox retries the message and keeps delivering the others."""
    desk, conversation_id = await handed_to_listener(client, telegram)
    before = len(telegram.accepted())
    telegram.fail_next(Failure(429, retry_after=1))
    await desk.reply(conversation_id, "premier")
    await desk.reply(conversation_id, "deuxième")
    accepted = await telegram.wait_accepted(before + 2)
    assert [r.body["text"] for r in accepted[before:]] == ["premier", "deuxième"]


# Property: whatever an update holds, the real server answers 200 or 400, never 5xx.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
message_fields = st.fixed_dictionaries(
    {"message_id": st.integers(), "date": st.integers(0, 2**31), "chat": st.fixed_dictionaries(
        {"id": st.integers(), "type": st.sampled_from(["private", "group"])})},
    optional={"text": json_values, "photo": json_values, "document": json_values, "from": json_values},
)  # fmt: skip
updates = st.fixed_dictionaries(
    {"update_id": st.integers(0, 2**40)},
    optional={"message": message_fields | json_values, "callback_query": json_values},
)
PROPERTY = hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(update=updates | json_values)
async def test_any_update_gives_200_or_400_from_the_real_server(client: Client, update: Any) -> None:
    response = await client.post(PATH, data=json.dumps(update), headers=telegram_headers(SECRET))
    assert response.status in (200, 400)


@PROPERTY
@given(raw=st.binary(max_size=200), secret=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
async def test_any_request_without_the_secret_gives_403(client: Client, raw: bytes, secret: str) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret != SECRET else {}
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 403


async def test_blocking_the_bot_marks_the_conversation_as_left_and_unblocking_lifts_it(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, telegram)
    async with client.ws_connect("/api/events") as events:
        assert await deliver(client, telegram_member_update(900000101, CHAT, "kicked")) == 200
        entry = await _system_event(events)
        assert entry["system"] == {"code": "left.blocked", "params": {"channel": "telegram"}}
        assert str(CHAT) not in json.dumps(entry)
    detail = await desk.conversation(conversation_id)
    assert (detail["status"], detail["left_how"]) == ("with_listener", "blocked")  # nothing a provider says ends it
    assert await deliver(client, telegram_member_update(900000102, CHAT, "kicked")) == 200  # told once
    assert await deliver(client, telegram_member_update(900000103, CHAT, "member")) == 200
    detail = await desk.conversation(conversation_id)
    assert detail["left_how"] is None
    codes = [e["system"]["code"] for e in await desk.system_entries(conversation_id)]
    assert codes == ["left.blocked", "left.unblocked"]


async def test_a_send_refused_because_the_bot_is_blocked_marks_the_conversation_as_left(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, telegram)
    telegram.fail_next(Failure(403, description="Forbidden: bot was blocked by the user"))
    sent = await desk.reply(conversation_id, "Tu es toujours là ?")
    await desk.delivery_of(conversation_id, sent["id"], "failed")

    async def marked() -> dict[str, Any] | None:
        detail = await desk.conversation(conversation_id)
        return detail if detail["left_how"] == "blocked" else None

    detail = await eventually(marked)
    assert [e["system"]["code"] for e in await desk.system_entries(conversation_id)] == ["left.blocked"]
    assert detail["status"] == "with_listener"


async def test_a_membership_change_in_a_group_is_ignored(client: Client) -> None:
    update = telegram_member_update(900000201, -1001234, "kicked")
    update["my_chat_member"]["chat"]["type"] = "supergroup"
    assert await deliver(client, update) == 200


async def _system_event(events: Any) -> dict[str, Any]:
    for _ in range(50):
        frame = await events.receive_json(timeout=10)
        if frame.get("type") == "entry" and frame["entry"]["author"] == "system":
            return frame["entry"]  # type: ignore[no-any-return]
    raise AssertionError("no system entry reached the console")


REFERRAL_119 = (
    "📞 Le 119 (Allô Enfance en Danger) répond 24h/24 et 7j/7, gratuitement, même la nuit. Tu peux appeler à toute"
    " heure ; sur https://www.allo119.gouv.fr il y a aussi un formulaire et un tchat (horaires sur le site). L'appel"
    " n'apparaît pas sur les factures."
)


async def test_numbers_and_urls_of_the_line_go_as_entities_the_app_makes_tappable(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    desk, conversation_id = await handed_to_listener(client, telegram)
    before = len(telegram.accepted())
    referral = await client.post(f"/api/conversations/{conversation_id}/refer", json={"partner": "119"})
    assert referral.status == 201, await referral.text()
    await desk.reply(conversation_id, "Appelle le 3114 ou, en danger, le 17 ; SMS au 114. Tu as 17 ans ?")
    first, second = (await telegram.wait_accepted(before + 2))[before:]
    for request in (first, second):
        request.body["entities"] = json.loads(request.body["entities"])
    # offsets in UTF-16 units: the emoji counts 2
    assert first.body == {
        "chat_id": str(CHAT),
        "text": REFERRAL_119,
        "entities": [
            {"type": "phone_number", "offset": 6, "length": 3},
            {"type": "url", "offset": 122, "length": 27},
        ],
    }
    assert REFERRAL_119.encode("utf-16-le")[2 * 122 : 2 * 149].decode("utf-16-le") == "https://www.allo119.gouv.fr"
    assert second.body == {
        "chat_id": str(CHAT),
        "text": "Appelle le 3114 ou, en danger, le 17 ; SMS au 114. Tu as 17 ans ?",
        "entities": [
            {"type": "phone_number", "offset": 11, "length": 4},
            {"type": "phone_number", "offset": 34, "length": 2},
            {"type": "phone_number", "offset": 46, "length": 3},
        ],  # "17 ans" is an age, not the police
    }
    young = [r.body for r in telegram.accepted() if "entities" in r.body and "moque" in r.body["text"]]
    assert young == []  # what the young person wrote is never sent back, with or without links


async def test_a_danger_button_under_an_older_message_still_says_danger(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """Telegram keeps a keyboard tappable under its message: a young person who answered "Non" to the danger
    question, then scrolls up and taps "Oui, maintenant", is in danger now (before: "Je n'ai pas bien compris"
    and the language question again)."""
    assert await deliver(client, telegram_update(900000400, CHAT, "bonjour")) == 200
    assert await deliver(client, telegram_callback(900000401, CHAT, "no", URGENCY)) == 200
    before = len(await telegram.wait_accepted(3))  # welcome, danger question, language question
    assert await deliver(client, telegram_callback(900000402, CHAT, "yes_now", URGENCY)) == 200

    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["priority"] == "urgent", card
    said: list[str] = []
    while not any("appelle le 17" in text for text in said):  # the thanks, then the numbers: one at a time
        said = [r.body["text"] for r in (await telegram.wait_accepted(before + len(said) + 1))[before:]]
    assert not any("pas bien compris" in text for text in said), said


@pytest.mark.filterwarnings("ignore:.*message_auto_delete_time.*:telegram.warnings.PTBDeprecationWarning")
async def test_the_chats_service_messages_are_nobodys_words(client: Client, telegram: FakeTelegramAPI) -> None:
    """Setting the chat's auto-delete timer (a young person hiding the chat) or pinning a message posts a service
    message: it was taken as the young person's empty message, which started a conversation in a quiet chat,
    drew "Je n'ai pas bien compris" at a question (a retry spent: two and a human takes over) and showed a listener
    an empty bubble. It is no message."""

    def service(update_id: int, chat: int, notice: dict[str, Any]) -> dict[str, Any]:
        update = telegram_update(update_id, chat, None)
        update["message"].update(notice)
        return update

    timer = {"message_auto_delete_timer_changed": {"message_auto_delete_time": 86400}}
    pinned = {"pinned_message": {"message_id": 7, "date": 1773150000, "chat": {"id": CHAT, "type": "private"},
                                 "text": "D'abord, une question importante"}}  # fmt: skip
    assert await deliver(client, service(900000500, CHAT + 1, timer)) == 200  # a chat with no conversation

    assert await deliver(client, telegram_update(900000501, CHAT, "bonjour")) == 200
    await telegram.wait_accepted(2)  # welcome, danger question
    assert await deliver(client, service(900000502, CHAT, timer)) == 200
    assert await deliver(client, service(900000503, CHAT, pinned)) == 200
    assert await deliver(client, telegram_callback(900000504, CHAT, "no", URGENCY)) == 200
    said = [r.body["text"] for r in await telegram.wait_accepted(3)]
    assert said[2].startswith("Tu préfères continuer en français"), said  # the next question, nothing between
    await outbox_drained(client)
    assert {r.body["chat_id"] for r in telegram.accepted()} == {str(CHAT)}
    [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
    user = [e for e in await client.app[STORE].transcript(conversation.id) if e.author == "user"]
    assert [e.text for e in user] == ["bonjour", "Non"]


async def test_a_forwarded_story_is_told_as_shared_not_as_an_empty_message(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """A young person forwards the story someone posted about them: it came with no text and nothing attached,
    "Je n'ai pas bien compris" at the danger question and an empty bubble for a listener. It is shared content of
    kind "other", as a sticker or a contact card is: the bot says it cannot see it, a listener sees "autre"."""
    assert await deliver(client, telegram_update(900000600, CHAT, "bonjour")) == 200
    await telegram.wait_accepted(2)
    story = telegram_update(900000601, CHAT, None)
    story["message"]["story"] = {"chat": {"id": 777, "type": "private", "first_name": "Kévin"}, "id": 3}
    assert await deliver(client, story) == 200
    said = [r.body["text"] for r in await telegram.wait_accepted(4)][2:]
    assert "pas bien compris" not in said[0] and "Je ne peux pas" in said[0], said
    [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
    user = [e for e in await client.app[STORE].transcript(conversation.id) if e.author == "user"]
    assert [a.kind for a in user[-1].attachments] == ["other"]


def forwarded(update_id: int, chat: int, text: str) -> dict[str, Any]:
    """A message the young person forwards: someone else's words (Telegram's ``forward_origin``)."""
    update = telegram_update(update_id, chat, text)
    kevin = {"id": 777, "is_bot": False, "first_name": "Kévin"}
    update["message"]["forward_origin"] = {"type": "user", "date": 1773150000, "sender_user": kevin}
    return update


async def test_a_forwarded_message_is_someone_elses_words_never_an_answer(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """A young person forwards the messages they received (the harasser's "Non, t'as pas le choix" as proof): it
    was taken as their own answer, "Non" to "are you in danger now?" moved the flow on, and a listener read it as
    their words. It is kept, marked forwarded for the listener, read for a risk, and answers nothing; a forward that
    opens the chat starts the conversation (the welcome and the first question) without being read as answers."""
    assert await deliver(client, forwarded(900000700, CHAT, "Non")) == 200
    said = [r.body["text"] for r in await telegram.wait_accepted(2)]
    assert said[1].startswith("D'abord, une question importante"), said
    assert await deliver(client, forwarded(900000701, CHAT, "Non, t'as pas le choix")) == 200
    assert await deliver(client, telegram_callback(900000702, CHAT, "no", URGENCY)) == 200
    said = [r.body["text"] for r in await telegram.wait_accepted(3)]
    assert said[2].startswith("Tu préfères continuer en français"), said  # the young person's own "Non" answered
    await outbox_drained(client)
    assert len(telegram.accepted()) == 3, [r.body["text"] for r in telegram.accepted()]
    [conversation] = await client.app[STORE].conversations_by_status(Status.BOT)
    desk = ListenerDesk(client)
    await desk.login()
    assert await desk.young_persons_words(conversation.id) == [
        ("Non", ["forwarded"]),
        ("Non, t'as pas le choix", ["forwarded"]),
        ("Non", []),
    ]


async def test_a_forwarded_message_of_danger_still_escalates(client: Client, telegram: FakeTelegramAPI) -> None:
    assert await deliver(client, telegram_update(900000710, CHAT, "bonjour")) == 200
    await telegram.wait_accepted(2)
    assert await deliver(client, forwarded(900000711, CHAT, "je vais me tuer ce soir")) == 200
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["priority"] == "urgent", card


@pytest.mark.parametrize(
    "refusal",
    [Failure(401, description="Unauthorized"), Failure(404, description="Not Found")],
    ids=["revoked", "malformed"],
)
async def test_a_bot_token_refused_keeps_every_reply_and_says_so_at_once(
    client: Client, telegram: FakeTelegramAPI, caplog: pytest.LogCaptureFixture, refusal: Failure
) -> None:
    """The bot's token revoked in @BotFather (the Bot API answers 401 "Unauthorized") or wrong (404: PTB raises
    InvalidToken for both) refuses every send of every chat until an operator sets TELEGRAM_BOT_TOKEN again. Until
    2026-12-05 each reply failed for good, one WARNING line each, /readyz 200 saying nothing: young people left
    without an answer for hours, their replies never sent once the token was renewed. Now they wait (the Bot API
    asked again once a minute) and it is shown at once, as a Messenger page token refused is."""
    caplog.set_level(logging.INFO)
    telegram.fail_next(refusal)
    assert await deliver(client, telegram_update(900000301, CHAT, "bonjour")) == 200
    await telegram.wait_for("sendMessage", 1)

    async def shown() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" in ready else None

    ready = await eventually(shown)
    assert ready["ready"] is True  # the web chat and the other channels still serve
    assert "InvalidToken" in ready["channels_refused"]["telegram"]
    assert "TELEGRAM_BOT_TOKEN" in ready["channels_refused"]["telegram"]
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_channel_credentials_refused{channel="telegram"} 1.0' in metrics
    alerts = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(alerts) == 1 and "telegram" in alerts[0] and "credentials" in alerts[0]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]  # httpx: kept at WARNING
    assert all(str(CHAT) not in line and BOT_TOKEN not in line for line in ours)

    store = client.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    bot = [e for e in await store.transcript(conversation.id) if e.author == Author.BOT]
    assert bot and all(e.delivery == Delivery.PENDING for e in bot)  # kept, not failed

    running_clock(client).advance(seconds=61)  # the Bot API asked again a minute later: the token was set again
    accepted = await telegram.wait_accepted(len(bot))
    assert [r.body["text"] for r in accepted] == [e.text for e in bot]  # every reply once, in order

    async def over() -> dict[str, Any] | None:
        ready = await (await client.get("/readyz")).json()
        return ready if "channels_refused" not in ready else None

    await eventually(over)
    assert any("alert over" in r.getMessage() for r in caplog.records)
    assert str(CHAT) not in json.dumps(ready) and BOT_TOKEN not in json.dumps(ready)
    after = await store.get_conversation(conversation.id)
    assert after is not None and after.left_how is None  # the line's token, never the young person blocking it


async def test_a_block_dated_before_the_conversation_opened_does_not_mark_it(client: Client) -> None:
    """A ``kicked`` update dated before the open conversation began comes late (Telegram redelivers an update the
    gateway failed to take, over an outage): the young person unblocked the bot since, or they could not have
    written. Until 2026-12-06 it marked the new conversation "a bloqué la ligne" for its listeners. A block dated
    about when it opened (within ``BLOCK_DATE_SLACK``) still marks it."""
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    stale = telegram_member_update(900000101, CHAT, "kicked")
    stale["my_chat_member"]["date"] = int(opened.created_at.timestamp()) - 120
    assert await deliver(client, stale) == 200
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how is None
    assert [e for e in await store.transcript(opened.id) if e.system is not None] == []

    fresh = telegram_member_update(900000102, CHAT, "kicked")  # blocked as they wrote: Telegram dates to the second,
    fresh["my_chat_member"]["date"] = int(opened.created_at.timestamp()) - 5  # the opening may have waited: it marks
    assert await deliver(client, fresh) == 200
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how == "blocked"


async def test_a_block_dated_before_the_young_persons_last_message_does_not_mark_it(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``kicked`` update dated after the conversation opened but before the young person's last message comes late
    (Telegram redelivers after an outage, in any order across update types): they could not have written while
    blocking the bot, so they unblocked it since. Until 2026-12-06 it marked the conversation "a bloqué la ligne"
    again: the listeners' replies refused until their next message. A block dated within ``BLOCK_DATE_SLACK`` of that
    message still marks it."""
    caplog.set_level(logging.INFO)
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    await outbox_drained(client)  # the bot's answer sent before the clock moves on (its lease: not handed out again)
    running_clock(client).advance(seconds=600)
    assert await deliver(client, telegram_update(900000002, CHAT, "tu es là ?")) == 200

    async def wrote() -> Any:
        detail = await store.get_conversation(opened.id)
        assert detail is not None
        return detail if detail.last_inbound_at and detail.last_inbound_at > opened.created_at else None

    last = (await eventually(wrote)).last_inbound_at
    stale = telegram_member_update(900000101, CHAT, "kicked")  # blocked, then unblocked and wrote: delivered late
    stale["my_chat_member"]["date"] = int(opened.created_at.timestamp()) + 300
    assert await deliver(client, stale) == 200
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how is None
    assert [e for e in await store.transcript(opened.id) if e.system is not None] == []
    said = [r.getMessage() for r in caplog.records if "before the young person's last message" in r.getMessage()]
    assert said == [f"leaving: {opened.id}: a block dated before the young person's last message, not marked"]

    fresh = telegram_member_update(900000102, CHAT, "kicked")  # blocked as they wrote (dated to the second): marks
    fresh["my_chat_member"]["date"] = int(last.timestamp()) - 5
    assert await deliver(client, fresh) == 200
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how == "blocked"


async def test_a_block_made_after_a_late_message_that_opens_a_conversation_is_marked_by_the_welcomes_refusal(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """The young person writes while the gateway is away, then blocks the bot five minutes later; Telegram
    redelivers both three hours later. Their message opens a conversation then (``created_at``), so the block, dated
    before that, is taken for a late one by ``leaving.provider_says`` and marks nothing itself. The welcome sent to
    them is refused ("bot was blocked by the user": ``RecipientGone``), and that refusal marks it, told once: the
    listeners see the block within the welcome's send, and nothing could reach the young person in between anyway
    (they blocked the bot). Comparing with the message's date instead would wrongly mark the case below."""
    clock = running_clock(client)
    written = clock()
    clock.advance(hours=3)  # the gateway away meanwhile
    telegram.fail_next(Failure(403, description="Forbidden: bot was blocked by the user"))
    late = telegram_update(900000001, CHAT, "bonjour")
    late["message"]["date"] = int(written.timestamp())
    assert await deliver(client, late) == 200
    block = telegram_member_update(900000101, CHAT, "kicked")  # made five minutes after the message
    block["my_chat_member"]["date"] = int(written.timestamp()) + 300
    assert await deliver(client, block) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))

    async def marked() -> bool:
        detail = await store.get_conversation(opened.id)
        return detail is not None and detail.left_how == "blocked"

    await eventually(marked)
    await outbox_drained(client)
    codes = [e.system.code for e in await store.transcript(opened.id) if e.system is not None]
    assert codes == ["left.blocked"]


async def test_a_block_and_its_unblock_before_a_late_message_opened_a_conversation_do_not_mark_it(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """The young person writes while the gateway is away, blocks the bot five minutes later, unblocks it five minutes
    after that; Telegram redelivers the three hours later, the message first, then the updates in any order (across
    update types). The block, dated before the conversation opened, marks nothing: the welcome reaches them, and the
    listeners never see "a bloqué la ligne" for a young person they can reach (the message's date would have marked
    it: the block comes after the message)."""
    clock = running_clock(client)
    written = clock()
    clock.advance(hours=3)
    late = telegram_update(900000001, CHAT, "bonjour")
    late["message"]["date"] = int(written.timestamp())
    assert await deliver(client, late) == 200
    unblock = telegram_member_update(900000102, CHAT, "member")
    unblock["my_chat_member"]["date"] = int(written.timestamp()) + 600
    assert await deliver(client, unblock) == 200
    block = telegram_member_update(900000101, CHAT, "kicked")
    block["my_chat_member"]["date"] = int(written.timestamp()) + 300
    assert await deliver(client, block) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    await outbox_drained(client)
    assert telegram.accepted()  # the welcome reached them
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how is None
    assert [e for e in await store.transcript(opened.id) if e.system is not None] == []


async def test_an_unblock_delivered_after_a_newer_block_does_not_lift_it(client: Client) -> None:
    """Telegram redelivers an update the gateway failed to take, later: an unblock (``member``) dated before the block
    the conversation is marked with comes after it, and says nothing of now (they blocked again since). Until
    2026-12-06 it lifted the mark: the card said reachable, the listeners' replies were refused until a refused send
    marked it again. Whether the newer block marked it or came while it was marked already; an unblock dated after
    the block still lifts it."""
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    start = int(opened.created_at.timestamp())

    def member_update(update_id: int, status: str, after: int) -> dict[str, Any]:
        update = telegram_member_update(update_id, CHAT, status)
        update["my_chat_member"]["date"] = start + after
        return update

    async def left_how() -> str | None:
        detail = await store.get_conversation(opened.id)
        assert detail is not None
        return detail.left_how

    assert await deliver(client, member_update(900000101, "kicked", 100)) == 200  # marks
    assert await deliver(client, member_update(900000103, "kicked", 300)) == 200  # blocked again, marked already
    assert await deliver(client, member_update(900000102, "member", 200)) == 200  # the unblock between, late
    assert await left_how() == "blocked"

    assert await deliver(client, member_update(900000104, "member", 400)) == 200
    assert await left_how() is None
    assert await deliver(client, member_update(900000106, "kicked", 600)) == 200  # marks
    assert await deliver(client, member_update(900000105, "member", 500)) == 200  # the unblock before it, late
    assert await left_how() == "blocked"
    codes = [e.system.code for e in await store.transcript(opened.id) if e.system is not None]
    assert codes == ["left.blocked", "left.unblocked", "left.blocked"]


async def test_a_block_delivered_after_a_newer_unblock_does_not_mark_it(client: Client) -> None:
    """Telegram redelivers an update the gateway failed to take, later, in any order: a block (``kicked``) dated before
    the unblock (``member``) that lifted the conversation's mark comes after it, and says nothing of now (they
    unblocked the bot since). Until 2026-12-06 it marked the conversation again: the card said "a bloqué la ligne" for
    a young person the listeners' replies reached, until their next message. A block dated after the unblock marks."""
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    start = int(opened.created_at.timestamp())

    def member_update(update_id: int, status: str, after: int) -> dict[str, Any]:
        update = telegram_member_update(update_id, CHAT, status)
        update["my_chat_member"]["date"] = start + after
        return update

    async def left_how() -> str | None:
        detail = await store.get_conversation(opened.id)
        assert detail is not None
        return detail.left_how

    assert await deliver(client, member_update(900000102, "kicked", 300)) == 200  # marks
    assert await deliver(client, member_update(900000103, "member", 400)) == 200  # lifts
    assert await deliver(client, member_update(900000101, "kicked", 100)) == 200  # the first block, late
    assert await left_how() is None
    assert await deliver(client, member_update(900000104, "kicked", 500)) == 200  # blocked again since: marks
    assert await left_how() == "blocked"
    codes = [e.system.code for e in await store.transcript(opened.id) if e.system is not None]
    assert codes == ["left.blocked", "left.unblocked", "left.blocked"]


async def test_a_block_of_the_same_second_as_the_unblock_taken_before_it_does_not_mark_it(client: Client) -> None:
    """The young person blocks the bot and unblocks it within the same second; Telegram redelivers the block (its
    webhook failed) after the unblock. Both carry the same date (Telegram's, to the second): the block is not known to
    be the later one, and a wrong mark is the worse error (the card says "a bloqué la ligne" for someone the listeners'
    replies reach; a missed one costs one send, refused, which marks). Before: the block marked the conversation."""
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    start = int(opened.created_at.timestamp())

    def member_update(update_id: int, status: str, after: int) -> dict[str, Any]:
        update = telegram_member_update(update_id, CHAT, status)
        update["my_chat_member"]["date"] = start + after
        return update

    assert await deliver(client, member_update(900000103, "member", 300)) == 200
    assert await deliver(client, member_update(900000102, "kicked", 300)) == 200  # redelivered after it
    detail = await store.get_conversation(opened.id)
    assert detail is not None
    assert detail.left_how is None


async def test_a_message_taken_late_is_dated_when_written_and_a_block_after_it_marks(client: Client) -> None:
    """The young person writes, then blocks the bot five minutes later, while the gateway is away; Telegram
    redelivers both three hours later. Their conversation's last message (``last_inbound_at``) is dated when they
    wrote it (Telegram's ``date``), not when it was taken, so the block, dated after it, marks the conversation "a
    bloqué la ligne" for its listeners. Before 2026-12-06 the message read as just written: the block, dated three
    hours "before" it, was taken for a late one and ignored, the card saying them reachable until a send was refused
    (gateway/leaving.py, ``_wrote_since``)."""
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    await outbox_drained(client)  # the bot's answer sent before the clock moves on (its lease: not handed out again)
    clock = running_clock(client)
    written = clock()
    clock.advance(hours=3)  # the gateway away meanwhile: the message is taken three hours after it was written
    late = telegram_update(900000002, CHAT, "tu es là ?")
    late["message"]["date"] = int(written.timestamp())
    assert await deliver(client, late) == 200

    async def taken() -> Any:
        entries = await store.transcript(opened.id)
        return [e for e in entries if e.author is Author.USER and e.text == "tu es là ?"]

    await eventually(taken)
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.last_inbound_at is not None
    assert abs(detail.last_inbound_at - written).total_seconds() < 1, (detail.last_inbound_at, written)
    block = telegram_member_update(900000101, CHAT, "kicked")  # five minutes after they wrote
    block["my_chat_member"]["date"] = int(written.timestamp()) + 300
    assert await deliver(client, block) == 200
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how == "blocked"


async def test_a_message_taken_after_a_block_made_after_it_does_not_lift_the_block(client: Client) -> None:
    """The young person writes, then blocks the bot five minutes later, while the gateway is away; Telegram redelivers
    the block first, then the message (in any order across update types). Writing again means unblocked, but not a
    message written before the block: the conversation stays marked "a bloqué la ligne". Before 2026-12-06 that
    message lifted the mark (``left.unblocked``): the card said them reachable and the listeners' replies went to a
    bot they had blocked, refused until one marked it again. A message dated after the block still lifts it."""
    assert await deliver(client, telegram_update(900000001, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [opened] = await eventually(lambda: store.conversations_by_status(Status.BOT))
    await outbox_drained(client)
    clock = running_clock(client)
    written = clock()
    clock.advance(hours=3)
    block = telegram_member_update(900000101, CHAT, "kicked")
    block["my_chat_member"]["date"] = int(written.timestamp()) + 300
    assert await deliver(client, block) == 200
    late = telegram_update(900000002, CHAT, "tu es là ?")
    late["message"]["date"] = int(written.timestamp())
    assert await deliver(client, late) == 200

    async def taken(text: str) -> Any:
        entries = await store.transcript(opened.id)
        return [e for e in entries if e.author is Author.USER and e.text == text]

    await eventually(lambda: taken("tu es là ?"))
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how == "blocked"
    codes = [e.system.code for e in await store.transcript(opened.id) if e.system is not None]
    assert codes == ["left.blocked"]

    again = telegram_update(900000003, CHAT, "je suis revenue")  # unblocked since, and wrote: lifts it
    again["message"]["date"] = int(clock().timestamp())
    assert await deliver(client, again) == 200
    await eventually(lambda: taken("je suis revenue"))
    detail = await store.get_conversation(opened.id)
    assert detail is not None and detail.left_how is None
