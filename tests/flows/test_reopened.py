"""``reopened`` and ``reopened_offline``, optional messages of flows.yaml: the first queue message after the line
reopened, to a young person who waited through its closing and was told nobody could answer before the reopening
(gateway/timers.py ``_queue_reassure``). Without them, a default in French and English; ``reopened_offline`` (no
listener online yet) must say where to turn now, as ``queued_offline``."""

from __future__ import annotations

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file, load_text
from gateway.flows.model import DEFAULT_MESSAGES
from tests.conftest import ROOT


def test_a_flow_without_them_says_the_defaults_with_the_place(engine: Engine) -> None:
    for key in ("reopened", "reopened_offline"):
        assert key not in engine.flow.messages
        for language in ("fr", "en"):
            said = engine.message(key, language, position=3)
            assert said == DEFAULT_MESSAGES[key][language].replace("{position}", "3") and "3" in said
    assert "a rouvert" in engine.message("reopened", "fr", position=1)
    assert "119" in engine.message("reopened_offline", "fr", position=1)


def test_the_shipped_flow_says_its_own_and_reopened_offline_must_say_where_to_turn() -> None:
    shipped = Engine(load_file(ROOT / "flows.yaml"))
    assert "Le chat du 3018 a rouvert" in shipped.message("reopened", "fr", position=2)
    assert "The 3018 chat has reopened" in shipped.message("reopened_offline", "en", position=2)
    text = (ROOT / "flows.yaml").read_text(encoding="utf-8")
    start = text.index("  reopened_offline:")
    cut = text.index("      Si tu as besoin de parler maintenant", start)
    end = text.index("    en: >-", cut)
    _, problems = load_text(text[:cut] + text[end:], "flows.yaml")
    assert any("message 'reopened_offline' in 'fr' does not say where to turn now" in str(p) for p in problems)
