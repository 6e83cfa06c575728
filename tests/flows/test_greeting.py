"""A greeting alone at a question of the shipped flow ("Bonjour", "salut", "coucou 👋"): the flow's ``greeted`` and the
same question again; the first one at a question counts as no wrong answer, a second one there does (a young person
who only greets still reaches a human past the retries). Anything more than a greeting is read as before. Until
2026-12-06 a greeting was "Je n'ai pas bien compris" and took one of the question's retries."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.flows.engine import Engine, State, StepResult
from gateway.flows.greeting import GREETING_WORDS
from gateway.flows.loader import load_file
from tests.conftest import ROOT

PARIS = ZoneInfo("Europe/Paris")
DAY = datetime(2026, 3, 10, 14, 0, tzinfo=PARIS)
NIGHT = datetime(2026, 3, 10, 23, 30, tzinfo=PARIS)
GREETED = "Pour que je puisse t'orienter"
NOT_UNDERSTOOD = "Je n'ai pas bien compris"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(ROOT / "flows.yaml"))


def started(engine: Engine, now: datetime) -> State:
    return engine.start(channel="messenger", now=now, language_hint="fr").state


def texts(result: StepResult) -> list[str]:
    return [r.text for r in result.replies]


@pytest.mark.parametrize("now", [DAY, NIGHT])
@pytest.mark.parametrize("greeting", ["Bonjour", "bonjour !", "BONJOURRR", "salut", "Slt", "coucou 👋", "cc", "bjr",
                                      "bonsoir", "salut salut", "bonjour madame", "Coucou 🙂"])  # fmt: skip
def test_a_greeting_at_the_danger_question_is_asked_again_kindly(engine: Engine, greeting: str, now: datetime) -> None:
    state = started(engine, now)
    result = engine.step(state, greeting, now=now)
    assert result.outcome is None and result.state.step == "urgency" and result.state.attempts == 0
    said = texts(result)
    assert len(said) == 2 and GREETED in said[0] and "es-tu en danger" in said[1], said


def test_a_second_greeting_counts_and_greetings_alone_still_reach_a_human(engine: Engine) -> None:
    state = started(engine, DAY)
    for count in range(1, 4):
        result = engine.step(state, "salut", now=DAY)
        assert result.outcome is None and GREETED in texts(result)[0], texts(result)
        assert result.state.attempts == count - 1
        state = result.state
    result = engine.step(state, "salut", now=DAY)
    assert result.outcome is not None and result.outcome.kind == "handoff" and result.outcome.route == "fallback"


def test_the_free_greeting_is_once_a_question(engine: Engine) -> None:
    """Greeted at the danger question, then at the language one: each is free."""
    state = engine.step(started(engine, DAY), "bonjour", now=DAY).state
    state = engine.step(state, "Non", now=DAY).state
    assert state.step == "language" and not state.greeted
    result = engine.step(state, "coucou", now=DAY)
    assert result.state.step == "language" and result.state.attempts == 0 and GREETED in texts(result)[0]


@pytest.mark.parametrize("text", ["salut 😢", "bonjour j'ai un problème", "salut ça va pas", "hello?? help", "🔪"])
def test_more_than_a_greeting_is_read_as_before(engine: Engine, text: str) -> None:
    result = engine.step(started(engine, DAY), text, now=DAY)
    assert not any(GREETED in t for t in texts(result)), texts(result)


@pytest.mark.parametrize("text", ["salut je veux mourir", "bonjour je suis en danger", "coucou il me suit"])
def test_a_greeting_with_a_risk_hands_off_as_before(engine: Engine, text: str) -> None:
    result = engine.step(started(engine, DAY), text, now=DAY)
    assert result.outcome is not None and result.outcome.kind == "handoff" and result.outcome.flag is not None


def test_a_greeting_at_the_age_question_is_asked_again_kindly(engine: Engine) -> None:
    state = started(engine, DAY)
    for answer in ("Non", "Français"):
        state = engine.step(state, answer, now=DAY).state
    assert state.step == "age"
    result = engine.step(state, "bonjour", now=DAY)
    assert result.state.step == "age" and result.state.attempts == 0 and GREETED in texts(result)[0]


# A French teenager's "Hello", "hey", "hi 👋" alone, on a channel that tells no language (Messenger, WhatsApp): the
# conversation stays in French. Until 2026-12-06 "Hello" (a word of the flow's English texts) switched the whole
# conversation to English, at the opening message or at a question.
ENGLISH_GREETINGS = ["Hello", "hello !", "HEYYY", "hi 👋", "hey", "Hi", "hello hello", "Hello 🙂", "hola", "yo"]


def test_no_greeting_word_tells_a_language(engine: Engine) -> None:
    assert {lang: GREETING_WORDS & own for lang, own in engine.written.own.items()} == {"fr": set(), "en": set()}


@pytest.mark.parametrize("now", [DAY, NIGHT])
@pytest.mark.parametrize("greeting", ENGLISH_GREETINGS)
def test_a_greeting_alone_at_the_first_question_never_switches_the_language(
    engine: Engine, greeting: str, now: datetime
) -> None:
    untold = engine.start(channel="messenger", now=now).state  # Messenger tells no language
    assert untold.unsure and untold.language == "fr"
    result = engine.step(untold, greeting, now=now)
    assert result.state.language == "fr" and result.state.unsure and result.state.attempts == 0
    said = texts(result)
    assert len(said) == 2 and GREETED in said[0] and "es-tu en danger" in said[1], said


@pytest.mark.parametrize("now", [DAY, NIGHT])
@pytest.mark.parametrize("greeting", ENGLISH_GREETINGS)
def test_a_greeting_alone_opening_the_conversation_never_switches_the_language(
    engine: Engine, greeting: str, now: datetime
) -> None:
    opened = engine.start(channel="messenger", now=now, text=greeting)
    assert opened.state.language == "fr" and opened.state.unsure
    assert "es-tu en danger" in texts(opened)[-1], texts(opened)


@pytest.mark.parametrize("now", [DAY, NIGHT])
@pytest.mark.parametrize("sentence", ["hello I need help", "hi, someone is blackmailing me", "hey I want to die",
                                      "Hello, I am being bullied"])  # fmt: skip
def test_an_english_sentence_after_a_greeting_still_switches_to_english(
    engine: Engine, sentence: str, now: datetime
) -> None:
    untold = engine.start(channel="messenger", now=now).state
    assert engine.step(untold, sentence, now=now).state.language == "en"
    assert engine.start(channel="messenger", now=now, text=sentence).state.language == "en"


# A greeting with the usual small talk ("salut ça va", "slt cv", "bonjour, comment ça va") greets: the kind re-ask,
# not "Je n'ai pas bien compris" (until 2026-12-06). Anything more ("ça va pas", "cv pas", an emoji that is not a
# friendly one) is read as before, and a risk in it hands off as always.
@pytest.mark.parametrize("now", [DAY, NIGHT])
@pytest.mark.parametrize("greeting", ["salut ça va", "coucou ça va ?", "bonjour, comment ça va", "slt cv", "yo cv",
                                      "Salut, ça vaaa ? 👋", "bonsoir comment vas-tu", "cc cv", "wesh sava",
                                      "bonjour comment allez-vous", "coucou ça va ? 🙂"])  # fmt: skip
def test_a_greeting_with_small_talk_is_asked_again_kindly(engine: Engine, greeting: str, now: datetime) -> None:
    for state in (started(engine, now), engine.start(channel="messenger", now=now).state):
        result = engine.step(state, greeting, now=now)
        assert result.outcome is None and result.state.step == "urgency" and result.state.attempts == 0
        assert result.state.language == "fr"
        said = texts(result)
        assert len(said) == 2 and GREETED in said[0] and "es-tu en danger" in said[1], said


@pytest.mark.parametrize("now", [DAY, NIGHT])
def test_hi_how_are_you_is_asked_again_kindly(engine: Engine, now: datetime) -> None:
    result = engine.step(started(engine, now), "hi, how are you?", now=now)
    assert result.outcome is None and result.state.attempts == 0 and result.state.greeted, texts(result)


@pytest.mark.parametrize("text", ["salut ça va pas du tout", "ça va pas", "cv pas", "ça va pas bien", "salut cv pas",
                                  "coucou ça va 😢", "ça va", "cv", "salut ça va mal", "salut comment",
                                  "bonjour ça"])  # fmt: skip
def test_small_talk_with_anything_more_or_without_a_greeting_is_read_as_before(engine: Engine, text: str) -> None:
    result = engine.step(started(engine, DAY), text, now=DAY)
    assert not any(GREETED in t for t in texts(result)), texts(result)
    assert result.outcome is None and result.state.attempts == 1 and NOT_UNDERSTOOD in texts(result)[0]


@pytest.mark.parametrize("now", [DAY, NIGHT])
@pytest.mark.parametrize("text", ["salut ça va pas je veux mourir", "coucou cv ? il veut publier mes nudes",
                                  "slt cv jsuis en danger"])  # fmt: skip
def test_small_talk_with_a_risk_hands_off_as_before(engine: Engine, text: str, now: datetime) -> None:
    result = engine.step(started(engine, now), text, now=now)
    assert result.outcome is not None and result.outcome.flag is not None, texts(result)


def test_a_greeting_with_small_talk_at_the_age_question_is_asked_again_kindly(engine: Engine) -> None:
    state = started(engine, DAY)
    for answer in ("Non", "Français"):
        state = engine.step(state, answer, now=DAY).state
    result = engine.step(state, "coucou ça va", now=DAY)
    assert result.state.step == "age" and result.state.attempts == 0 and GREETED in texts(result)[0]
    again = engine.step(result.state, "slt cv", now=DAY)  # a second one at the question counts
    assert again.state.step == "age" and again.state.attempts == 1 and GREETED in texts(again)[0]
