"""``listener_disconnected``, an optional message of flows.yaml: what a young person is told when their listener
left their console and the conversation went back to the queue by itself (``GATEWAY_HELD_HANDBACK_SECONDS``).
Without it, a default in French and English; with it, checked like every other message."""

from __future__ import annotations

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file, load_text
from gateway.flows.model import DEFAULT_MESSAGES
from tests.conftest import ROOT
from tests.flows.conftest import MINI_FLOW

DISCONNECTED = '  listener_disconnected: {fr: "Déconnecté·e, tu es dans la file.", en: "Disconnected, back in line."}\n'


def with_message(line: str) -> str:
    return MINI_FLOW.replace("messages:\n", "messages:\n" + line, 1)


def test_a_flow_without_it_says_the_default(engine: Engine) -> None:
    assert "listener_disconnected" not in engine.flow.messages
    for language in ("fr", "en"):
        assert engine.message("listener_disconnected", language) == DEFAULT_MESSAGES["listener_disconnected"][language]


def test_a_flow_with_it_says_its_own_and_is_accepted() -> None:
    loaded, problems = load_text(with_message(DISCONNECTED), "mini.yaml")
    assert problems == [] and loaded is not None
    assert Engine(loaded).message("listener_disconnected", "en") == "Disconnected, back in line."
    shipped = Engine(load_file(ROOT / "flows.yaml"))
    assert "a été déconnecté·e" in shipped.message("listener_disconnected", "fr")


def test_a_misspelt_key_or_a_placeholder_is_refused() -> None:
    _, problems = load_text(with_message(DISCONNECTED.replace("listener_disconnected", "listener_disconected")), "m")
    assert any("did you mean 'listener_disconnected'" in str(p) for p in problems), problems
    _, problems = load_text(with_message(DISCONNECTED.replace("Déconnecté·e", "{position}")), "m")
    assert any("listener_disconnected" in str(p) and "placeholder" in str(p) for p in problems), problems
