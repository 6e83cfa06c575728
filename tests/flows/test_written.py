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
        ("hello j'ai besoin d'aide", None),  # both languages' words
    ],
)
def test_a_message_is_read_in_the_one_language_its_words_belong_to(
    engine: Engine, message: str, language: str | None
) -> None:
    assert engine.written.guess(message) == language


def test_a_language_told_by_the_channel_or_chosen_is_never_read_from_the_words(engine: Engine) -> None:
    told = engine.start(channel="telegram", now=OPEN, language_hint="fr", text="I want to kill myself")
    assert told.state.language == "fr"
    untold = engine.start(channel="whatsapp", now=OPEN, text="hello")
    assert untold.state.language == "en" and untold.state.unsure
    chosen = engine.step(engine.step(untold.state, "no", now=OPEN).state, "français", now=OPEN)
    assert chosen.state.language == "fr" and not chosen.state.unsure
    assert engine.step(chosen.state, "I'm 15", now=OPEN).state.language == "fr"
