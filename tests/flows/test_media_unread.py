"""A file without words at a question (a voice message, a photo, a video): the bot says it cannot read it and asks
again (``media_unread``, an optional message of flows.yaml); past the step's retries, a human (the fallback)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from tests.conftest import ROOT

OPEN = datetime(2026, 3, 10, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))
DEFAULT = Engine(load_file(ROOT / "flows.yaml"))
UNREAD = DEFAULT.message("media_unread", "fr")


def test_a_file_without_words_is_said_unread_and_the_question_asked_again() -> None:
    start = DEFAULT.start(channel="telegram", now=OPEN)
    step = DEFAULT.step(start.state, "", now=OPEN, media=True)
    assert [r.text for r in step.replies] == [UNREAD, start.replies[-1].text]
    assert step.state.step == start.state.step and step.state.attempts == 1


def test_words_or_a_button_with_a_file_are_read_as_an_answer_or_as_not_understood() -> None:
    start = DEFAULT.start(channel="telegram", now=OPEN)
    answered = DEFAULT.step(start.state, "non", now=OPEN, media=True)  # a photo with its caption
    assert answered.state.step != start.state.step
    caption = DEFAULT.step(start.state, "regarde ça", now=OPEN, media=True)
    assert caption.replies[0].text == DEFAULT.message("not_understood", "fr")


def test_files_without_words_again_and_again_reach_a_human() -> None:
    """The bot cannot read them, a listener can: after the step's retries, the fallback hands off."""
    step = DEFAULT.start(channel="whatsapp", now=OPEN)
    for _ in range(DEFAULT.flow.retries + 1):
        step = DEFAULT.step(step.state, "", now=OPEN, media=True)
    assert step.outcome is not None and step.outcome.kind == "handoff"


def test_a_flow_without_the_message_says_not_understood(engine: Engine) -> None:
    start = engine.start(channel="telegram", now=OPEN)
    step = engine.step(start.state, "", now=OPEN, media=True)
    assert step.replies[0].text == engine.message("not_understood", "fr")
