"""Sextortion in progress is an interrupt of the default flow ("escalate, never silence"): a young person being
blackmailed with intimate images right now gets the first advice and a listener at once, at "high", with Pharos,
whatever question the bot was asking; the topic is kept for the listener's card. A story about blackmail that is
not going on (a report, a lesson, a past one) is not an interrupt (the model is not consulted)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file, load_text
from gateway.flows.reading import RISKS, Reading
from tests.conftest import PARIS

FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"
OPEN = datetime(2026, 3, 10, 14, 0, tzinfo=PARIS)
NIGHT = datetime(2026, 3, 10, 23, 30, tzinfo=PARIS)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(FLOWS_YAML))


IN_PROGRESS = [
    "il me demande 200€ sinon il envoie mes photos à tous mes contacts",
    "il a mes nudes et il veut de l'argent ce soir",
    "he says he'll post my pics if I don't pay",
    "il me menace de publier ma vidéo",
    "il me fait du chantage avec mes photos",
    "je dois payer avant minuit sinon il balance tout",
    "il menace de balancer",
    "jsuis paniquée il va tout balancer",
    "un mec a des photos de moi et il me demande 300 balles",
    "il menace d'envoyer ma photo à tout le collège si je paie pas",
    "she wants more nudes or she'll send the video to my school",
    "someone is blackmailing me with a video",
    "they're threatening to leak my pics",
]

NOT_IN_PROGRESS = [
    "j'ai vu un reportage sur le chantage",
    "on a eu un cours sur la sextorsion au collège",
    "il m'a fait du chantage l'année dernière mais c'est fini",
    "we watched a documentary about sextortion in class",
    "ma mère va envoyer les photos de vacances à mamie",
    "range ta chambre sinon il va se fâcher",
    "my mum says she'll send me to my room",
    "mes photos de vacances sont sur insta",
]


@pytest.mark.parametrize("message", IN_PROGRESS)
def test_blackmail_going_on_is_read_as_sextortion_at_high_with_pharos(engine: Engine, message: str) -> None:
    flag = engine.decide(message).flag
    assert flag is not None and flag.route == "sextortion"
    assert flag.priority == "high" and "pharos" in flag.partners


@pytest.mark.parametrize("message", NOT_IN_PROGRESS)
def test_blackmail_told_about_is_no_interrupt(engine: Engine, message: str) -> None:
    assert engine.decide(message).flag is None


def test_a_suicide_word_beside_it_is_urgent_with_3114_and_pharos_and_the_topic_kept(engine: Engine) -> None:
    state = engine.start(channel="webchat", now=OPEN, language_hint="fr").state
    result = engine.step(state, "il va publier mes nudes demain, je veux mourir", now=OPEN)
    assert result.outcome is not None and result.outcome.priority == "urgent"
    assert set(result.outcome.partners) == {"3114", "pharos"}
    assert result.state.fields["topic"] == "sextortion"


def test_typed_at_the_age_question_it_hands_off_at_once_with_the_advice_and_the_topic_on_the_card(
    engine: Engine,
) -> None:
    state = engine.start(channel="messenger", now=OPEN, language_hint="fr").state
    for answer in ("non", "français"):
        state = engine.step(state, answer, now=OPEN).state
    assert state.step == "age"
    result = engine.step(state, "il a mes nudes et il veut de l'argent ce soir", now=OPEN)
    assert result.outcome is not None
    assert (result.outcome.kind, result.outcome.route, result.outcome.priority) == ("handoff", "sextortion", "high")
    assert result.outcome.partners == ("pharos",)
    said = " ".join(r.text for r in result.replies)
    assert "ne paie pas" in said and "Ne supprime pas les messages" in said and "17 ou le 112" in said
    assert "internet-signalement.gouv.fr" in said
    assert dict(result.outcome.summary)["Sujet"] == "Chantage, sextorsion (alerte « sextortion »)"


def test_an_answer_the_young_person_gave_is_never_overwritten(engine: Engine) -> None:
    state = engine.start(channel="webchat", now=OPEN, language_hint="fr").state
    for answer in ("non", "français", "15", "moi", "cyberharcèlement"):
        state = engine.step(state, answer, now=OPEN).state
    result = engine.step(state, "et maintenant il me menace de publier ma vidéo", now=OPEN)
    assert result.outcome is not None and result.outcome.route == "sextortion"
    assert result.state.fields["topic"] == "cyberharassment"


def test_at_night_the_advice_comes_with_the_closed_line_and_pharos(engine: Engine) -> None:
    state = engine.start(channel="webchat", now=NIGHT, language_hint="en").state
    result = engine.step(state, "he says he'll post my pics if I don't pay", now=NIGHT)
    assert result.outcome is not None and result.outcome.kind == "closed"
    said = " ".join(r.text for r in result.replies)
    assert "don't pay" in said and "the chat is still closed" in said and "17 or 112" in said
    assert result.outcome.partners == ("pharos",)
    assert "A listener will answer you" not in said  # the line closed: flows.yaml's say_closed, no listener promised


@pytest.mark.parametrize(
    ("message", "closed", "promise"),
    [("he says he'll post my pics if I don't pay", "the chat is still closed", "A listener will answer you"),
     ("can I talk to a human please", "the chat is still closed", "connecting you with a listener")],
)  # fmt: skip
def test_a_hand_off_by_interrupt_at_night_promises_no_listener(
    engine: Engine, message: str, closed: str, promise: str
) -> None:
    """Until 2026-12-05 at 23:30 the bot said "A listener will answer you as soon as possible" (sextortion) or
    "I'm connecting you with a listener" (asking for a human), then that the chat was closed, and ended."""
    state = engine.start(channel="webchat", now=NIGHT, language_hint="en").state
    result = engine.step(state, message, now=NIGHT)
    assert result.outcome is not None and result.outcome.kind == "closed"
    said = " ".join(r.text for r in result.replies)
    assert closed in said and promise not in said
    opened = engine.step(engine.start(channel="webchat", now=OPEN, language_hint="en").state, message, now=OPEN)
    assert opened.outcome is not None and opened.outcome.kind == "handoff"
    assert promise in " ".join(r.text for r in opened.replies)  # open, the promise is kept: a listener comes


def test_check_refuses_say_closed_without_a_hand_off() -> None:
    text = FLOWS_YAML.read_text(encoding="utf-8")
    broken = text.replace("      refer: [pharos]\n      handoff: listeners\n      priority: high\n",
                          "      refer: [pharos]\n      priority: high\n", 1)  # fmt: skip
    assert broken != text
    loaded, problems = load_text(broken, "flows.yaml")
    assert loaded is None and any("'say_closed'" in p.message and "needs 'handoff'" in p.message for p in problems)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("sujet", "sextortion", "field 'sujet' is never stored by a question"),
     ("topic", "chantage", "field 'topic' is never 'chantage'")],
)  # fmt: skip
def test_check_refuses_a_store_no_question_can_give(field: str, value: str, problem: str) -> None:
    text = FLOWS_YAML.read_text(encoding="utf-8").replace("store: {topic: sextortion}", f"store: {{{field}: {value}}}")
    loaded, problems = load_text(text, "flows.yaml")
    assert loaded is None and any(problem in p.message for p in problems), problems


# ----- the model's topic (flows.yaml understanding.topics): a sextortion going on in words no phrase holds ---------
IN_THEIR_WORDS = "il veut 50 balles en carte sinon tout le lycée verra"  # no phrase of the interrupt holds it


def read_as(topic: str | None, score: float) -> Reading:
    return Reading(tuple((risk, 0.01) for risk in RISKS), topic=topic, topic_score=score)


def test_no_phrase_holds_the_message_the_model_test_reads(engine: Engine) -> None:
    assert engine.decide(IN_THEIR_WORDS).flag is None


def test_a_sextortion_the_model_reads_at_its_threshold_is_the_interrupt_at_once(engine: Engine) -> None:
    """Until 2026-12-05 only the phrases fired it: on blind messages, 37 of 110 blackmails going on; the bot asked
    its four questions before "ne paie pas" (the routing's illegal_content rule)."""
    flag = engine.decide(IN_THEIR_WORDS, read_as("sextortion", 0.93)).flag
    assert flag is not None and (flag.route, flag.source, flag.priority, flag.partners) == (
        "sextortion", "model", "high", ("pharos",))  # fmt: skip
    state = engine.start(channel="webchat", now=OPEN, language_hint="fr").state
    result = engine.step(state, IN_THEIR_WORDS, now=OPEN, reading=read_as("sextortion", 0.93))
    assert result.outcome is not None and (result.outcome.kind, result.outcome.route) == ("handoff", "sextortion")
    assert "ne paie pas" in " ".join(r.text for r in result.replies)
    assert result.state.fields["topic"] == "sextortion"


@pytest.mark.parametrize(
    ("text", "reading"),
    [(IN_THEIR_WORDS, read_as("sextortion", 0.79)),  # under the threshold: the topic question's, not the interrupt's
     (IN_THEIR_WORDS, read_as("intimate_images", 0.99)),  # another topic
     ("on a vu un reportage sur le chantage, il veut 50 balles sinon", read_as("sextortion", 0.95))],  # told about
)  # fmt: skip
def test_the_model_fires_no_interrupt_under_its_threshold_for_another_topic_or_a_story_told_about(
    engine: Engine, text: str, reading: Reading
) -> None:
    assert engine.decide(text, reading).flag is None


def test_while_waiting_the_model_read_raises_to_high_with_pharos_and_the_advice(engine: Engine) -> None:
    raised = engine.escalate("normal", IN_THEIR_WORDS, read_as("sextortion", 0.9))
    assert raised is not None and raised.priority == "high" and raised.partners == ("pharos",)
    assert raised.say  # "ne paie pas…", once in the conversation (the dispatcher keeps count)


@pytest.mark.parametrize(
    ("wrong", "problem"),
    [("sextorsion: {threshold: 0.8, interrupt: sextortion}", "topic 'sextorsion' is no answer of the topic question"),
     ("sextortion: {threshold: 1.8, interrupt: sextortion}", "the threshold of topic 'sextortion' is 1.8"),
     ("sextortion: {threshold: 0.8, interrupt: stop}", "triggers interrupt 'stop', which does not hand off")],
)  # fmt: skip
def test_check_refuses_a_topic_rule_that_cannot_raise(wrong: str, problem: str) -> None:
    text = FLOWS_YAML.read_text(encoding="utf-8")
    text = text.replace("sextortion: {threshold: 0.8, interrupt: sextortion}", wrong, 1)
    loaded, problems = load_text(text, "flows.yaml")
    assert loaded is None and any(problem in p.message for p in problems), problems
