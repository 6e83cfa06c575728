"""flows.yaml ``after_end``: which messages are a thank-you alone (``AfterEndWords.only``), on the shipped flow."""

from __future__ import annotations

import pytest

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_file(ROOT / "flows.yaml"))


THANKS = ["merci", "ok merci", "d'accord", "merci beaucoup 🙏", "thanks", "ok bye", "Merci !!", "🙏", "👍", "❤️", "👍🏽",
          "merci bcp", "thx", "Thank you so much", "ok d'accord merci", "c'est bon", "C BON"]  # fmt: skip
OTHER = ["merci 😢", "ok 🔪", "merci mais il continue", "salut", "bonjour", "", "   ", "merci je vais me tuer", "ok 🩹",
         "non", "oui", "j'ai un autre problème"]  # fmt: skip


@pytest.mark.parametrize("text", THANKS)
def test_a_thank_you_alone_is_one(engine: Engine, text: str) -> None:
    assert engine.after_end is not None and engine.after_end.only(text)


@pytest.mark.parametrize("text", OTHER)
def test_anything_else_is_not(engine: Engine, text: str) -> None:
    assert engine.after_end is not None and not engine.after_end.only(text)
