from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.flows.engine import Engine, State, StepResult
from gateway.flows.loader import load_text
from tests.flows.conftest import MINI_FLOW

PARIS = ZoneInfo("Europe/Paris")
OPEN = datetime(2026, 3, 10, 14, 0, tzinfo=PARIS)
CLOSED = datetime(2026, 3, 10, 23, 30, tzinfo=PARIS)


def run(engine: Engine, answers: list[str], now: datetime = OPEN, lang: str | None = None) -> StepResult:
    step = engine.start(channel="webchat", now=now, language_hint=lang)
    for answer in answers:
        step = engine.step(step.state, answer, now=now)
    return step


def texts(step: StepResult) -> list[str]:
    return [r.text for r in step.replies]


def test_start_says_welcome_then_asks_first_question(engine: Engine) -> None:
    step = engine.start(channel="webchat", now=OPEN)
    assert texts(step) == ["Bienvenue, c'est confidentiel.", "Es-tu en danger ?"]
    assert [c.value for c in step.replies[-1].choices] == ["yes_now", "no", "unknown"]
    assert step.replies[-1].choices[-1].label == "Je préfère ne pas dire"
    assert step.state.step == "urgency"
    assert step.state.flow_version == engine.version


def test_start_while_closed_says_so_before_the_first_question(engine: Engine) -> None:
    step = engine.start(channel="webchat", now=CLOSED)
    assert texts(step) == [
        "Bienvenue, c'est confidentiel.",
        "Ligne fermée (tous les jours 9h–23h), réouverture demain à 9h.",
        "Es-tu en danger ?",
    ]
    assert step.replies[-1].choices and not step.replies[1].choices


def test_start_while_open_says_nothing_of_hours(engine: Engine) -> None:
    assert not any("Ligne fermée" in t for t in texts(engine.start(channel="webchat", now=OPEN)))


def test_language_hint_picks_english(engine: Engine) -> None:
    step = engine.start(channel="telegram", now=OPEN, language_hint="en")
    assert texts(step)[0] == "Welcome, it is confidential."


def test_unknown_language_hint_falls_back_to_default(engine: Engine) -> None:
    assert engine.start(channel="webchat", now=OPEN, language_hint="de").state.language == "fr"


@pytest.mark.parametrize("answer", ["non", "NON", "  Non  ", "2", "no"])
def test_choice_by_label_number_value(engine: Engine, answer: str) -> None:
    assert run(engine, [answer]).state.fields["urgency"] == "no"


def test_choice_by_synonym_inside_sentence(engine: Engine) -> None:
    assert run(engine, ["je suis en DANGER"]).outcome is not None


def test_choice_by_payload(engine: Engine) -> None:
    step = engine.start(channel="webchat", now=OPEN)
    step = engine.step(step.state, "whatever the button said", now=OPEN, payload="no")
    assert step.state.fields["urgency"] == "no"


@pytest.mark.parametrize("answer", ["15", "j'ai 15 ans", "15 ans", "quinze", "J’AI 15 ANS !"])
def test_number_answers(engine: Engine, answer: str) -> None:
    assert run(engine, ["non", "fr", answer]).state.fields["age"] == "15"


def test_number_out_of_bounds_is_asked_again(engine: Engine) -> None:
    step = run(engine, ["non", "fr", "150"])
    assert texts(step) == ["Je n'ai pas compris.", "Quel âge as-tu ?"]
    assert step.state.step == "age"
    assert step.state.attempts == 1


def test_prefer_not_to_say_on_number_question(engine: Engine) -> None:
    for answer in ["Je préfère ne pas dire", "je prefere pas", "3"]:
        if answer == "3":
            continue  # "3" is a number, not the button's position, on a number question
        assert run(engine, ["non", "fr", answer]).state.fields["age"] == "unknown"


def test_number_one_is_an_age_not_the_skip_button(engine: Engine) -> None:
    step = run(engine, ["non", "fr", "1"])
    assert step.state.step == "age"  # 1 is below min 5: asked again, not taken as "prefer not to say"


def test_language_field_switches_language(engine: Engine) -> None:
    step = run(engine, ["non", "anglais"])
    assert step.state.language == "en"
    assert texts(step) == ["How old are you?"]
    assert step.replies[0].choices[0].label == "I'd rather not say"


def test_retries_then_fail_safe_to_fallback(engine: Engine) -> None:
    step = run(engine, ["blabla", "encore"])
    assert step.outcome is not None
    assert (step.outcome.kind, step.outcome.queue, step.outcome.priority) == ("handoff", "listeners", "high")
    assert step.outcome.route == "fallback"
    assert step.state.finished


def test_fallback_when_closed_tells_the_closed_line(engine: Engine) -> None:
    """Begun at 22:55 while open (no closed line at the greeting), handed off at 23:30: the closed line then."""
    step = engine.start(channel="webchat", now=CLOSED - timedelta(minutes=35))
    for answer in ["blabla", "encore"]:
        step = engine.step(step.state, answer, now=CLOSED)
    assert step.outcome is not None and step.outcome.kind == "closed"
    assert texts(step) == ["Ligne fermée (tous les jours 9h–23h), réouverture demain à 9h."]


def closed_line_told(engine: Engine, answers: list[str], at: list[datetime], text: str | None = None) -> list[str]:
    """Every reply of a conversation begun at ``at[0]`` (with ``text``), each answer at its time after."""
    step = engine.start(channel="webchat", now=at[0], text=text)
    said = texts(step)
    for answer, now in zip(answers, at[1:], strict=True):
        step = engine.step(step.state, answer, now=now)
        said += texts(step)
    assert step.outcome is not None and step.outcome.kind == "closed"
    return [t for t in said if t.startswith("Ligne fermée")]


def test_a_night_conversation_is_told_the_closed_line_once(engine: Engine) -> None:
    """Told at the greeting, not again at the hand-off a few minutes later (until 2026-12-02: twice)."""
    minutes = [CLOSED + timedelta(minutes=m) for m in range(6)]
    assert closed_line_told(engine, ["non", "fr", "15", "harcèlement", "on m'insulte"], minutes) == [
        "Ligne fermée (tous les jours 9h–23h), réouverture demain à 9h."
    ]


def test_a_risk_at_night_gets_the_closed_line_again_when_the_flow_has_no_reminder(engine: Engine) -> None:
    """Without ``closed_line_again`` (the mini flow has none) a risky outcome repeats the whole closed line, its
    numbers at that moment, then the route's referral: never a young person at risk left without them."""
    step = engine.start(channel="webchat", now=CLOSED)
    step = engine.step(step.state, "oui", now=CLOSED + timedelta(minutes=1))
    assert step.outcome is not None and (step.outcome.kind, step.outcome.partners) == ("closed", ("119",))
    assert texts(step) == ["Ligne fermée (tous les jours 9h–23h), réouverture demain à 9h.", "Appelle le 119."]


def test_the_closed_line_told_again_after_an_hour(engine: Engine) -> None:
    early = datetime(2026, 3, 10, 6, 0, tzinfo=PARIS)
    at = [early, early, early, early, early + timedelta(minutes=70), early + timedelta(minutes=71)]
    assert (
        closed_line_told(engine, ["non", "fr", "15", "harcèlement", "on m'insulte"], at)
        == ["Ligne fermée (tous les jours 9h–23h), réouverture aujourd'hui à 9h."] * 2
    )


def test_the_closed_line_told_again_when_it_says_something_else(engine: Engine) -> None:
    """Begun at 23:50, handed off at 00:10: "demain" is "aujourd'hui" now, told again."""
    late = datetime(2026, 3, 10, 23, 50, tzinfo=PARIS)
    at = [late, late, late, late, late, late + timedelta(minutes=20)]
    assert closed_line_told(engine, ["non", "fr", "15", "harcèlement", "on m'insulte"], at) == [
        "Ligne fermée (tous les jours 9h–23h), réouverture demain à 9h.",
        "Ligne fermée (tous les jours 9h–23h), réouverture aujourd'hui à 9h.",
    ]


@pytest.fixture(scope="module")
def reminding() -> Engine:
    """The mini flow with a ``closed_line_again``."""
    reminder = '  closed_line_again: {fr: "Toujours fermé, réouverture {reopens}.", en: "Still closed."}\n'
    loaded, problems = load_text(MINI_FLOW.replace("  queued:", reminder + "  queued:", 1), "mini.yaml")
    assert problems == [] and loaded is not None
    return Engine(loaded)


def test_the_closed_line_reminder_stands_in_when_the_flow_has_one(reminding: Engine) -> None:
    """A risk at the hand-off: the reminder (the repository's gives the numbers) and the route's referral."""
    step = reminding.start(channel="webchat", now=CLOSED)
    step = reminding.step(step.state, "oui", now=CLOSED + timedelta(minutes=2))
    assert texts(step) == ["Toujours fermé, réouverture demain à 9h.", "Appelle le 119."]


def test_a_risky_first_message_at_night_gets_the_closed_line_once(reminding: Engine) -> None:
    """Greeted and told the closed line, then the risk read in that same first message: its words, the reminder,
    its referral; until 2026-12-02 the whole closed line came a second time in the same burst."""
    result = reminding.start(channel="webchat", now=CLOSED, text="je veux mourir")
    assert result.outcome is not None and result.outcome.kind == "closed"
    said = texts(result)
    assert said[-3:] == ["Ta sécurité d'abord.", "Toujours fermé, réouverture demain à 9h.", "Appelle le 119."]
    assert sum(t.startswith("Ligne fermée") for t in said) == 1


def test_the_closed_line_told_survives_the_stored_state(reminding: Engine) -> None:
    step = reminding.start(channel="webchat", now=CLOSED)
    stored = State.from_dict(json.loads(json.dumps(step.state.to_dict())))
    assert stored.closed_told == step.state.closed_told and stored.closed_told
    assert texts(reminding.step(stored, "oui", now=CLOSED))[0].startswith("Toujours fermé")
    unreadable = replace(stored, closed_told="abc@not a time")  # told again rather than never
    assert texts(reminding.step(unreadable, "oui", now=CLOSED))[0].startswith("Ligne fermée")


def test_urgent_route_open(engine: Engine) -> None:
    step = run(engine, ["oui"])
    assert step.outcome is not None
    assert (step.outcome.kind, step.outcome.priority, step.outcome.partners) == ("handoff", "urgent", ("119",))
    assert texts(step) == ["Appelle le 119."]


def test_urgent_route_closed_still_refers(engine: Engine) -> None:
    step = run(engine, ["oui"], now=CLOSED)
    assert step.outcome is not None and step.outcome.kind == "closed"
    assert "Appelle le 119." in texts(step)


def test_interrupt_in_the_middle_of_a_question(engine: Engine) -> None:
    step = run(engine, ["non", "fr", "Je   veux MOURIR"])
    assert step.outcome is not None
    assert (step.outcome.route, step.outcome.priority) == ("danger", "urgent")
    assert texts(step)[0] == "Ta sécurité d'abord."


def test_interrupt_in_other_language(engine: Engine) -> None:
    step = run(engine, ["I want to die"])
    assert step.outcome is not None and step.outcome.route == "danger"


def test_stop_interrupt_ends(engine: Engine) -> None:
    step = run(engine, ["non", "STOP!"])
    assert step.outcome is not None and step.outcome.kind == "ended"


def test_interrupt_needs_whole_words(engine: Engine) -> None:
    assert run(engine, ["non", "stopper"]).outcome is None


def test_text_question_truncates_and_routes(engine: Engine) -> None:
    step = run(engine, ["non", "fr", "15", "1", "x" * 80])
    assert step.state.fields["details"] == "x" * 50
    assert step.outcome is not None and step.outcome.route == "default"
    assert step.outcome.summary == (("Urgence", "Non"), ("Âge", "15"), ("Sujet", "Harcèlement"))


def test_empty_text_answer_is_not_understood(engine: Engine) -> None:
    step = run(engine, ["non", "fr", "15", "1", "   "])
    assert step.state.step == "details"


def test_conditional_rule_on_open_hours(engine: Engine) -> None:
    closed = run(engine, ["non", "fr", "15", "nudes", "..."], now=CLOSED)
    assert closed.outcome is not None and closed.outcome.kind == "referred"
    assert closed.outcome.partners == ("pharos",)
    opened = run(engine, ["non", "fr", "15", "nudes", "..."])
    assert opened.outcome is not None and opened.outcome.route == "default"


def test_offer_listener_yes_and_no(engine: Engine) -> None:
    offered = run(engine, ["non", "fr", "15", "à la maison", "..."])
    assert offered.outcome is None
    assert texts(offered) == ["Appelle le 119.", "Veux-tu parler à un écoutant ?"]
    yes = engine.step(offered.state, "oui", now=OPEN)
    assert yes.outcome is not None and (yes.outcome.kind, yes.outcome.route) == ("handoff", "home")
    assert yes.outcome.partners == ("119",)
    no = engine.step(offered.state, "non merci", now=OPEN)
    assert no.outcome is not None and no.outcome.kind == "referred"


def test_offer_not_made_when_queue_closed(engine: Engine) -> None:
    step = run(engine, ["non", "fr", "15", "3", "..."], now=CLOSED)
    assert step.outcome is not None and step.outcome.kind == "referred"


def test_finished_conversation_ignores_input(engine: Engine) -> None:
    done = run(engine, ["oui"])
    again = engine.step(done.state, "hello", now=OPEN)
    assert again.replies == () and again.outcome is None


def test_state_round_trips_through_dict(engine: Engine) -> None:
    step = run(engine, ["non", "en"])
    assert State.from_dict(step.state.to_dict()) == step.state
    fresh = State("v1", "webchat", "fr")
    assert fresh.to_dict() == {"flow_version": "v1", "channel": "webchat", "language": "fr"}  # defaults left out
    written_before = {"flow_version": "v1", "channel": "webchat", "language": "fr", "step": None, "fields": {},
                      "attempts": 0, "offer": None, "offer_route": None, "offer_partners": [], "finished": False,
                      "how": {}, "noted": {}}  # fmt: skip
    assert State.from_dict(written_before) == fresh


def test_current_question_for_reminders(engine: Engine) -> None:
    step = run(engine, ["non"])
    assert [r.text for r in engine.current_question(step.state)] == ["Quelle langue ?"]


def test_engine_is_deterministic(engine: Engine) -> None:
    answers = ["non", "en", "16", "bullied", "they post things"]
    assert run(engine, answers) == run(engine, answers)


def test_message_fills_placeholders(engine: Engine) -> None:
    assert engine.message("queued", "en", position=2, wait=10) == "Position 2, 10 min."
    assert engine.message("queued", "fr") == "Position {position}, {wait} min."


@pytest.mark.parametrize("answer", ["stop", "STOP!", "stop stp", "Stop, merci", "stop stop", "ok stop please"])
def test_an_ending_phrase_alone_ends(engine: Engine, answer: str) -> None:
    step = run(engine, ["non", answer])
    assert step.outcome is not None and (step.outcome.kind, step.outcome.route) == ("ended", "stop")


@pytest.mark.parametrize(
    "answer",
    [
        "je lui ai dit stop mais il continue",
        "stop je veux juste que tout s'arrête",
        "il faut que ça stop",
        "stop ou encore",
    ],
)
def test_an_ending_phrase_inside_a_story_never_ends(engine: Engine, answer: str) -> None:
    step = run(engine, ["non", "fr", "15", "1", answer])
    assert step.outcome is not None and step.outcome.kind == "handoff"
    assert step.state.fields["details"] == answer


def test_an_ending_phrase_inside_a_story_at_a_choice_question_asks_again(engine: Engine) -> None:
    step = run(engine, ["non", "je lui ai dit stop mais il continue"])
    assert step.outcome is None and step.state.step == "language"


def test_risky_and_ending_is_risky(engine: Engine) -> None:
    step = run(engine, ["non", "stop je veux mourir"])
    assert step.outcome is not None and (step.outcome.route, step.outcome.priority) == ("danger", "urgent")


def test_ending_interrupt_on_the_opening_message(engine: Engine) -> None:
    state = engine.start(channel="webchat", now=OPEN).state
    assert engine.interrupt(state, "je lui ai dit stop", now=OPEN) is None
    ended = engine.interrupt(state, "stop", now=OPEN)
    assert ended is not None and ended.outcome is not None and ended.outcome.kind == "ended"


def test_a_branch_back_to_an_answered_question_fails_safe_to_a_human() -> None:
    """An ops edit sends a 9-year-old back to the age question ("ask again when implausible", or `goto: age` typed for
    `goto: age_young`): `flows check` is happy (a way to 'route' exists), and the same true answer was asked again
    and again, without 'not understood' and never reaching the fallback. A question the conversation answered
    already is asked again at most `retries` times, then a human takes over, as with answers not understood."""
    looping = MINI_FLOW.replace(
        "    store: age\n    next: topic\n",
        "    store: age\n    next:\n      - {when: {field: age, lt: 11}, goto: age}\n      - {goto: topic}\n",
    )
    loaded, problems = load_text(looping, "mini.yaml")
    assert problems == [] and loaded is not None
    engine = Engine(loaded)
    step = run(engine, ["non", "français", "9", "9"])  # retries: 1 in this flow
    assert step.outcome is not None and step.outcome.route == "fallback"
    assert step.outcome.kind == "handoff" and step.outcome.queue == "listeners"
    assert step.outcome.summary == (("Urgence", "Non"), ("Âge", "9"))
    assert run(engine, ["non", "français", "12"]).state.step == "topic"  # an age that goes on: asked once


def test_a_start_command_in_the_middle_asks_the_question_again_without_using_a_retry(engine: Engine) -> None:
    """Telegram sends "/start" for its START button, "Restart bot" and a deep link, also in the middle of a
    conversation: it drew "Je n'ai pas bien compris" and used a retry, a second one the fallback (a review of the
    channels, 2026-12-05). It is no answer: the question again, the count untouched; risky words still escalate."""
    at_age = run(engine, ["non", "français"])
    assert at_age.state.step == "age"
    for command in ("/start", "/START", "/start@helpline_bot", "/start campagne3018"):
        again = engine.step(at_age.state, command, now=OPEN)
        assert texts(again) == texts(at_age)[-1:] and again.state == at_age.state
    danger = engine.step(at_age.state, "/start je veux mourir", now=OPEN)
    assert danger.outcome is not None and danger.outcome.priority == "urgent"
    understood = engine.step(at_age.state, "15", now=OPEN)
    assert understood.state.step == "topic"
