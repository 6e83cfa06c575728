"""What the engine does with the model's reading of a message (``understanding:`` in flows.yaml): risks raise,
never end; free-text topics; never ask twice; the summary says how; the queue phase only raises."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.flows.engine import Engine, StepResult
from gateway.flows.loader import load_file
from gateway.flows.positions import LoadedFlow
from gateway.flows.reading import RISKS, Reading, Risk

PARIS = ZoneInfo("Europe/Paris")
OPEN = datetime(2026, 3, 10, 14, 0, tzinfo=PARIS)
CLOSED = datetime(2026, 3, 10, 23, 30, tzinfo=PARIS)
FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(FLOWS_YAML))


def reading(risk: Risk = Risk.NONE, score: float = 0.0, **extra: object) -> Reading:
    scores = tuple((r, score if r is risk else 0.01) for r in RISKS)
    return Reading(scores=scores, **extra)  # type: ignore[arg-type]


def run(engine: Engine, turns: list[str], last: Reading | None = None, now: datetime = OPEN) -> StepResult:
    step = engine.start(channel="webchat", now=now, language_hint="fr")
    for n, turn in enumerate(turns, start=1):
        step = engine.step(step.state, turn, now=now, reading=last if n == len(turns) else None)
    return step


def texts(step: StepResult) -> list[str]:
    return [reply.text for reply in step.replies]


@pytest.mark.parametrize(
    ("risk", "route", "priority", "partners"),
    [
        (Risk.IMMINENT_DANGER, "danger_now", "urgent", ("emergency",)),
        (Risk.SUICIDE, "suicide", "urgent", ("3114",)),
        (Risk.SELF_HARM, "self_harm", "urgent", ("3114",)),
        (Risk.ABUSE_HOME, "abuse_home", "high", ("119",)),
    ],
)
def test_a_risk_at_its_threshold_triggers_its_interrupt(
    engine: Engine, risk: Risk, route: str, priority: str, partners: tuple[str, ...]
) -> None:
    threshold = engine.assessor.threshold(risk)  # flows.yaml's, chosen by training (docs/understanding.md)
    assert threshold is not None
    step = run(engine, ["non", "français", "bof je sais pas"], reading(risk, threshold))
    assert step.outcome is not None
    assert (step.outcome.kind, step.outcome.route, step.outcome.priority) == ("handoff", route, priority)
    assert step.outcome.partners == partners
    flag = step.outcome.flag
    assert flag is not None and (flag.risk, flag.score, flag.source, flag.words) == (risk, threshold, "model", None)


def test_below_the_threshold_nothing_happens(engine: Engine) -> None:
    threshold = engine.assessor.threshold(Risk.SUICIDE)
    assert threshold is not None
    step = run(engine, ["non", "français", "15"], reading(Risk.SUICIDE, threshold - 0.01))
    assert step.outcome is None and step.state.step == "who"


def test_third_party_wording_gets_the_friend_interrupt(engine: Engine) -> None:
    step = run(engine, ["non", "français", "c'est pour ma pote"], reading(Risk.SUICIDE, 0.8, third_party=True))
    assert step.outcome is not None and step.outcome.route == "suicide_friend"
    assert any("adulte de confiance" in r.text for r in step.replies)


def test_risky_and_ending_is_risky_with_the_model(engine: Engine) -> None:
    step = run(engine, ["non", "stop"], reading(Risk.SUICIDE, 0.9))
    assert step.outcome is not None and (step.outcome.kind, step.outcome.route) == ("handoff", "suicide")


@pytest.mark.parametrize("risk", RISKS)
@pytest.mark.parametrize("now", [OPEN, CLOSED])
def test_a_reading_never_ends_nor_sends_away(engine: Engine, risk: Risk, now: datetime) -> None:
    step = run(engine, ["non", "français", "15", "moi", "harcèlement", "c'est dur"], reading(risk, 1.0), now)
    assert step.outcome is not None and step.outcome.kind in ("handoff", "closed")
    assert step.outcome.kind == "handoff" or step.outcome.partners  # closed: still the partner's number


def test_keywords_and_model_together_the_most_pressing_decides_and_partners_add_up(engine: Engine) -> None:
    step = run(engine, ["non", "mon beau-père me frappe"], reading(Risk.SUICIDE, 0.7))
    assert step.outcome is not None and (step.outcome.route, step.outcome.priority) == ("suicide", "urgent")
    assert step.outcome.partners == ("3114", "119")


def test_a_keyword_flag_carries_the_words(engine: Engine) -> None:
    step = run(engine, ["non", "jveux plus être là"])
    flag = step.outcome.flag if step.outcome else None
    assert flag is not None and (flag.risk, flag.score, flag.source) == (Risk.SUICIDE, 1.0, "keywords")
    assert flag.words == "je veux plus etre la"


# ----- topics ---------------------------------------------------------------------------------------------------

TOPIC_TURNS = ["non", "français", "15", "moi"]


def test_a_free_text_topic_is_understood_from_the_model(engine: Engine) -> None:
    answer = "un mec d'internet me demande des trucs"
    # 0.79: the topic question's reading; from 0.8 a sextortion read is the interrupt's (understanding.topics)
    step = run(engine, [*TOPIC_TURNS, answer], reading(topic="sextortion", topic_score=0.79))
    assert step.state.fields["topic"] == "sextortion" and step.state.how["topic"] == "model:0.79"
    assert step.state.fields["details"] == answer  # it told what happens: "En quelques mots" is not asked
    assert step.outcome is not None and step.outcome.route == "illegal_content_open"
    assert ("Sujet", "Chantage, sextorsion (modèle 0,79)") in step.outcome.summary


def test_below_the_topic_threshold_is_not_understood(engine: Engine) -> None:
    step = run(engine, [*TOPIC_TURNS, "un mec me demande des trucs"], reading(topic="sextortion", topic_score=0.59))
    assert step.state.step == "topic" and "topic" not in step.state.fields and step.state.attempts == 1


def test_a_synonym_wins_over_the_model(engine: Engine) -> None:
    step = run(engine, [*TOPIC_TURNS, "on m'a piraté"], reading(topic="cyberharassment", topic_score=0.99))
    assert step.state.fields["topic"] == "hacked" and step.state.how["topic"] == "synonym:pirate"


def test_the_issue_example_topic(engine: Engine) -> None:
    answer = "il menace d'envoyer ma photo à tout le collège si je paie pas"
    step = run(engine, [*TOPIC_TURNS, answer], reading(topic="sextortion", topic_score=0.9))
    assert step.state.fields["topic"] == "sextortion"


def test_a_topic_in_a_few_words_still_asks_what_happens(engine: Engine) -> None:
    """ "harcèlement" says what, not what happens: "En quelques mots" is asked; a button likewise."""
    for answer, payload in (("harcèlement", None), ("Cyberharcèlement", "cyberharassment")):
        step = engine.start(channel="webchat", now=OPEN, language_hint="fr")
        for turn in TOPIC_TURNS:
            step = engine.step(step.state, turn, now=OPEN)
        step = engine.step(step.state, answer, now=OPEN, payload=payload)
        assert step.state.step == "details" and "details" not in step.state.fields
        assert texts(step)[-1].startswith("En quelques mots")


def test_a_story_longer_than_the_question_allows_is_cut_to_its_length(engine: Engine) -> None:
    story = "on me harcèle sur insta " + "et ils recommencent tous les jours " * 40
    step = run(engine, [*TOPIC_TURNS, story])
    assert step.outcome is not None and step.state.fields["topic"] == "cyberharassment"
    assert step.state.fields["details"] == " ".join(story.split())[:500]


def test_a_story_does_not_replace_details_already_given(engine: Engine) -> None:
    """A story after the details question (the bot done, the young person in the queue) changes nothing recorded;
    before it, the first story is the one kept."""
    step = run(engine, ["on a mis mes photos sur un groupe snap", "ils ont aussi piraté mon compte insta hier soir"])
    assert step.state.noted["details"] == "on a mis mes photos sur un groupe snap"


def test_the_model_topic_only_at_the_topic_question(engine: Engine) -> None:
    step = run(engine, ["non", "français", "moi"], reading(topic="cyberharassment", topic_score=0.9))
    assert step.state.step == "age" and "topic" not in step.state.fields


# ----- never ask twice ------------------------------------------------------------------------------------------


def test_the_opening_message_answers_age_and_topic_in_advance(engine: Engine) -> None:
    step = engine.start(
        channel="webchat", now=OPEN, language_hint="fr", text="slt jsuis harcelée sur insta j'ai 14 ans"
    )
    opening = "slt jsuis harcelée sur insta j'ai 14 ans"
    assert step.state.step == "urgency"
    assert step.state.noted == {"age": "14", "topic": "cyberharassment", "details": opening}
    *_, thanks, question = texts(step)  # the opening message is thanked just before the first question
    assert thanks.startswith("Merci de me l'avoir dit") and question.startswith("D'abord, une question importante")
    said: list[str] = []
    for turn in ["non", "français", "moi"]:
        step = engine.step(step.state, turn, now=OPEN)
        said.extend(texts(step))
    assert not any("Quel âge" in t or "Qu'est-ce qui se passe" in t or "En quelques mots" in t for t in said)
    assert step.state.fields["age"] == "14" and step.state.fields["topic"] == "cyberharassment"
    assert step.state.fields["details"] == opening
    assert step.outcome is not None
    summary = dict(step.outcome.summary)
    assert summary["Âge"] == "14 (message précédent)"
    assert summary["Sujet"] == "Cyberharcèlement (message précédent, mot-clé « harcelee »)"


def test_an_answer_gives_a_later_one_in_advance(engine: Engine) -> None:
    step = run(engine, ["non", "français", "15", "moi c'est pour moi, on m'a volé mon compte insta"])
    assert step.state.fields["who"] == "me" and step.outcome is not None
    assert step.state.fields["topic"] == "hacked"
    assert step.state.fields["details"] == "moi c'est pour moi, on m'a volé mon compte insta"


def test_the_model_topic_of_an_earlier_message(engine: Engine) -> None:
    opening = reading(topic="intimate_images", topic_score=0.7)
    step = engine.start(channel="webchat", now=OPEN, language_hint="fr", text="aidez moi svp", reading=opening)
    for turn in ["non", "français", "16", "moi"]:
        step = engine.step(step.state, turn, now=OPEN)
    assert step.state.step == "details" and step.state.how["topic"] == "earlier:model:0.70"


@pytest.mark.parametrize("at", [OPEN, CLOSED])
def test_an_opening_message_that_answers_nothing_later_is_not_thanked(engine: Engine, at: datetime) -> None:
    step = engine.start(channel="messenger", now=at, language_hint="fr", text="bonjour")
    assert not any("Je le note pour la suite" in t for t in texts(step))


def test_at_night_the_thanks_come_after_the_closed_line_just_before_the_question(engine: Engine) -> None:
    step = engine.start(channel="messenger", now=CLOSED, language_hint="fr", text="on m'a piraté mon compte insta")
    said = texts(step)
    assert "Le chat du 3018 est fermé" in said[-3] and said[-2].startswith("Merci de me l'avoir dit")
    assert said[-1].startswith("D'abord, une question importante")
    assert step.state.noted == {"topic": "hacked", "details": "on m'a piraté mon compte insta"}


def test_a_bare_number_is_not_an_age_in_advance(engine: Engine) -> None:
    step = engine.start(channel="webchat", now=OPEN, language_hint="fr", text="on est 3 à me harceler")
    assert "age" not in step.state.noted


def test_the_opening_message_still_interrupts(engine: Engine) -> None:
    step = engine.start(channel="webchat", now=OPEN, language_hint="fr", text="jveux plus être là")
    assert step.outcome is not None and step.outcome.route == "suicide"
    assert "Bonjour, ici le 3018" in step.replies[0].text


# ----- a story told at a question it does not answer ------------------------------------------------------------
# Found by an explorer (2026-12): a young person who writes their problem at the danger question instead of pressing
# Oui/Non got "je n'ai pas bien compris", and was asked the topic again later.

STORY = "on a mis mes photos sur un groupe snap"


def test_a_story_at_the_danger_question_is_thanked_kept_and_the_question_asked_again(engine: Engine) -> None:
    step = run(engine, [STORY])
    assert step.outcome is None and step.state.step == "urgency"
    thanks, question = step.replies
    assert thanks.text.startswith("Merci de me l'avoir dit") and "pas bien compris" not in thanks.text
    assert question.text.startswith("D'abord, une question importante")
    assert [c.value for c in question.choices] == ["yes_now", "no", "unsure", "unknown"]  # its buttons again
    assert step.state.noted == {"topic": "intimate_images", "details": STORY}
    assert step.state.how["topic"] == "synonym:mes photos"
    assert step.state.attempts == 1  # still an attempt: the retries' fail-safe to a human stands

    asked: list[str] = []
    for turn in ["non", "français", "15", "moi"]:
        step = engine.step(step.state, turn, now=OPEN)
        asked.extend(texts(step))
    assert not any("Qu'est-ce qui se passe" in t or "En quelques mots" in t for t in asked)
    assert step.state.fields["topic"] == "intimate_images"
    assert step.state.how["topic"] == "earlier:synonym:mes photos"
    assert step.state.fields["details"] == STORY and step.state.how["details"] == "earlier:typed"
    assert step.outcome is not None
    assert (step.outcome.route, step.outcome.priority, step.outcome.partners) == (
        "illegal_content_open",
        "high",
        ("pharos",),
    )
    assert dict(step.outcome.summary)["Sujet"] == "Photos intimes diffusées (message précédent, mot-clé « mes photos »)"


def test_a_story_the_model_understands_is_kept_as_the_model_read_it(engine: Engine) -> None:
    step = run(
        engine, ["un mec me demande des trucs bizarres depuis hier"], reading(topic="sextortion", topic_score=0.79)
    )  # from 0.8 a sextortion read is the interrupt's (understanding.topics): tests/flows/test_sextortion.py
    assert step.state.step == "urgency" and texts(step)[0].startswith("Merci de me l'avoir dit")
    assert step.state.noted == {"topic": "sextortion", "details": "un mec me demande des trucs bizarres depuis hier"}
    assert step.state.how["topic"] == "model:0.79"


def test_below_the_topic_threshold_a_story_is_not_understood_as_before(engine: Engine) -> None:
    step = run(engine, ["un mec me demande des trucs"], reading(topic="sextortion", topic_score=0.5))
    assert texts(step)[0].startswith("Je n'ai pas bien compris") and step.state.noted == {}


@pytest.mark.parametrize(
    ("turns", "kept"),
    [
        (["non", "on m'a piraté mon compte insta"], {"topic": "hacked", "details": "on m'a piraté mon compte insta"}),
        (["non", "français", "on me harcèle sur insta"], {"topic": "cyberharassment"}),  # five words: no story
        (
            ["non", "français", "15", "il veut de l'argent pour pas tout raconter"],
            {"topic": "sextortion", "details": "il veut de l'argent pour pas tout raconter"},
        ),
    ],
)
def test_a_story_at_a_later_question_is_kept_too(engine: Engine, turns: list[str], kept: dict[str, str]) -> None:
    step = run(engine, turns)
    assert step.outcome is None and texts(step)[0].startswith("Merci de me l'avoir dit")
    assert step.state.noted == kept


def test_in_english_the_thanks_are_in_english(engine: Engine) -> None:
    step = engine.start(channel="webchat", now=OPEN, language_hint="en")
    step = engine.step(step.state, "they posted my nudes in a group chat", now=OPEN)
    assert texts(step)[0].startswith("Thank you for telling me")
    assert step.state.noted == {"topic": "intimate_images", "details": "they posted my nudes in a group chat"}


def test_yes_after_a_story_is_urgent_and_the_card_shows_the_topic(engine: Engine) -> None:
    step = run(engine, [STORY, "oui"])
    assert step.outcome is not None
    assert (step.outcome.route, step.outcome.priority) == ("danger_now", "urgent")
    summary = dict(step.outcome.summary)
    assert summary["Danger immédiat"] == "Oui, maintenant (mot-clé « oui »)"
    assert summary["Sujet"] == "Photos intimes diffusées (message précédent, mot-clé « mes photos »)"


@pytest.mark.parametrize(
    ("story", "reading_of_it", "route"),
    [
        ("ils ont mis mes photos partout et j'ai envie de mourir", None, "suicide"),  # a phrase
        (STORY, reading(Risk.SUICIDE, 0.9, topic="intimate_images", topic_score=0.9), "suicide"),  # the model
        ("il a mes photos et il est devant chez moi avec un couteau", None, "danger_now"),
    ],
)
def test_a_risky_story_at_the_danger_question_is_still_the_risk_s(
    engine: Engine, story: str, reading_of_it: Reading | None, route: str
) -> None:
    step = run(engine, [story], reading_of_it)
    assert step.outcome is not None and step.outcome.kind == "handoff"
    assert (step.outcome.route, step.outcome.priority) == (route, "urgent")
    assert not any("Je le note pour la suite" in t for t in texts(step))


def test_a_story_told_at_every_try_still_reaches_a_human_with_its_topic(engine: Engine) -> None:
    step = run(engine, [STORY, STORY, "ils l'ont partagé à toute la classe"])
    assert step.outcome is not None
    assert (step.outcome.kind, step.outcome.route, step.outcome.priority) == ("handoff", "fallback", "high")
    assert dict(step.outcome.summary)["Sujet"].startswith("Photos intimes diffusées (message précédent")


def test_without_the_thanks_message_the_story_is_still_kept(tmp_path: Path) -> None:
    source = FLOWS_YAML.read_text(encoding="utf-8")
    start = source.index("  noted_for_later:")
    end = source.index("  media_unread:")
    plain = tmp_path / "flows.yaml"
    plain.write_text(source[:start] + source[end:], encoding="utf-8")
    engine = Engine(load_file(plain))
    step = run(engine, [STORY])
    assert texts(step)[0].startswith("Je n'ai pas bien compris")
    assert step.state.noted == {"topic": "intimate_images", "details": STORY}


def test_a_flow_without_understanding_ignores_readings(mini_loaded: LoadedFlow) -> None:
    mini = Engine(mini_loaded)
    step = mini.start(channel="webchat", now=OPEN)
    step = mini.step(step.state, "non", now=OPEN, reading=reading(Risk.SUICIDE, 1.0))
    assert step.outcome is None and step.state.step == "language"


# ----- the queue phase ------------------------------------------------------------------------------------------


def test_in_the_queue_a_risk_raises_the_priority_and_adds_partners(engine: Engine) -> None:
    raised = engine.escalate("normal", "jveux mourir")
    assert raised is not None and (raised.priority, raised.partners) == ("urgent", ("3114",))
    assert raised.flag.risk is Risk.SUICIDE


def test_in_the_queue_never_lower(engine: Engine) -> None:
    raised = engine.escalate("urgent", "", reading(Risk.ABUSE_HOME, 0.9))
    assert raised is not None and (raised.priority, raised.partners) == (None, ("119",))


def test_in_the_queue_partners_already_given_are_not_repeated(engine: Engine) -> None:
    raised = engine.escalate("high", "il a un couteau", given=("emergency",))
    assert raised is not None and (raised.priority, raised.partners) == ("urgent", ())


@pytest.mark.parametrize("message", ["stop", "merci", "mort de rire", "ok je patiente"])
def test_in_the_queue_nothing_else_raises_and_nothing_ends(engine: Engine, message: str) -> None:
    assert engine.escalate("normal", message, reading(Risk.SUICIDE, 0.2)) is None


# ----- only raise, whatever the words and the scores ----------------------------------------------------------

PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, None: 3}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message=st.one_of(
        st.text(max_size=60), st.sampled_from(["stop", "stop stp", "non", "15", "moi", "bye", "au revoir"])
    ),
    scores=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
    topic_score=st.floats(0.0, 1.0),
    third_party=st.booleans(),
    at=st.integers(0, 5),
)
def test_a_reading_only_raises(
    engine: Engine, message: str, scores: list[float], topic_score: float, third_party: bool, at: int
) -> None:
    before = run(engine, ["non", "français", "15", "moi", "harcèlement"][:at])
    read = Reading(tuple(zip(RISKS, scores, strict=True)), "sextortion", topic_score, third_party)
    without = engine.step(before.state, message, now=OPEN)
    with_reading = engine.step(before.state, message, now=OPEN, reading=read)
    if with_reading.outcome is None or with_reading.outcome == without.outcome:
        return
    assert with_reading.outcome.kind in ("handoff", "closed")  # never ended, never only referred
    got, had = with_reading.outcome, without.outcome
    assert PRIORITY_RANK[got.priority] <= PRIORITY_RANK[had.priority if had else None]
    assert set(had.partners if had else ()) <= set(got.partners)


@pytest.mark.parametrize(
    ("opening", "who"),
    [("je suis sa mère, mon fils est harcelé", "parent"), ("I'm a teacher and a pupil is bullied", "professional")],
)
def test_who_from_a_self_introduction(engine: Engine, opening: str, who: str) -> None:
    step = engine.start(channel="webchat", now=OPEN, language_hint="fr", text=opening)
    assert step.state.noted.get("who") == who


@pytest.mark.parametrize("opening", ["mon frère me frappe", "ma fille a mon âge", "pour moi"])
def test_who_is_not_guessed_from_two_words(engine: Engine, opening: str) -> None:
    assert "who" not in engine.start(channel="webchat", now=OPEN, language_hint="fr", text=opening).state.noted


@pytest.mark.parametrize(("answer", "payload"), [("Je préfère pas dire", None), ("whatever", "unknown"), ("2", None)])
def test_a_choice_as_shown_is_not_read_by_the_model(engine: Engine, answer: str, payload: str | None) -> None:
    step = run(engine, ["non", "français", "15"])
    step = engine.step(step.state, answer, now=OPEN, payload=payload, reading=reading(Risk.SUICIDE, 0.9))
    assert step.outcome is None and "who" in step.state.fields


def test_words_of_their_own_at_a_choice_question_are_read(engine: Engine) -> None:
    step = run(engine, ["non", "français", "15"])
    step = engine.step(step.state, "je sais plus quoi faire", now=OPEN, reading=reading(Risk.SUICIDE, 0.9))
    assert step.outcome is not None and step.outcome.route == "suicide"
