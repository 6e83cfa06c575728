"""Which language a message is written in, from the default flow's own words (``gateway/flows/written.py``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.flows.engine import Engine
from gateway.flows.loader import load_text

FLOWS_YAML = Path(__file__).resolve().parents[2] / "flows.yaml"
OPEN = datetime(2026, 3, 10, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))


@pytest.fixture(scope="module")
def engine() -> Engine:
    loaded, problems = load_text(FLOWS_YAML.read_text(encoding="utf-8"))
    assert loaded is not None and not problems
    return Engine(loaded)


@pytest.mark.parametrize(
    ("message", "language"),
    [
        ("I want to kill myself", "en"),
        ("yes", "en"),
        ("on me harcèle au collège", "fr"),
        ("oui", "fr"),
        ("2", None),  # a number: no words
        ("nudes", None),  # both languages' word
        ("hello j'ai besoin d'aide", "fr"),  # a greeting is no language's word (until 2026-12-06: English)
        ("Hello", None),
        ("hi 👋", None),
        ("hello I need help", "en"),
    ],
)
def test_a_message_is_read_in_the_one_language_its_words_belong_to(
    engine: Engine, message: str, language: str | None
) -> None:
    assert engine.written.guess(message) == language


def test_a_language_told_by_the_channel_or_chosen_is_never_read_from_the_words(engine: Engine) -> None:
    told = engine.start(channel="telegram", now=OPEN, language_hint="fr", text="I want to kill myself")
    assert told.state.language == "fr"
    untold = engine.start(channel="whatsapp", now=OPEN, text="hello, I need help")
    assert untold.state.language == "en" and untold.state.unsure
    chosen = engine.step(engine.step(untold.state, "no", now=OPEN).state, "français", now=OPEN)
    assert chosen.state.language == "fr" and not chosen.state.unsure
    assert engine.step(chosen.state, "I'm 15", now=OPEN).state.language == "fr"


# Words of danger in a language the bot does not speak (darija's "bghit nmout", "nqtel rasi") are read by the keyword
# line, but they are no French words: an English speaker who writes them is answered in English, 3114 given, and
# the conversation stays in English (flows.yaml lists them under their own language's key, which the bot reads and
# never speaks). Before, listed under `fr`, they switched an English conversation to French.
@pytest.mark.parametrize("message", ["bghit nmout", "nqtel rasi", "bghit nmout wallah"])
def test_words_of_a_language_the_bot_does_not_speak_never_switch_its_language(engine: Engine, message: str) -> None:
    assert engine.written.guess(message) is None
    untold = engine.start(channel="messenger", now=OPEN, text="hello, I need help")
    assert untold.state.language == "en" and untold.state.unsure
    result = engine.step(untold.state, message, now=OPEN)
    assert result.outcome is not None and result.outcome.priority == "urgent" and "3114" in result.outcome.partners
    assert result.state.language == "en"
    assert any("3114" in reply.text and "24/7" in reply.text for reply in result.replies), result.replies
