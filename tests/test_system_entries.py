"""Server-written entries for the listeners (gateway/system_entries.py): a code, its parameters, and the console's
words for it in French and English (gateway/console/static/i18n.js)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.store import SystemText
from gateway.system_entries import TEXTS, system_text

I18N = resources.files("gateway.console").joinpath("static/i18n.js").read_text(encoding="utf-8")


def console_texts(language: str) -> dict[str, str]:
    """The ``system.*`` texts of one language's section of i18n.js."""
    start = I18N.index(f"    {language}: {{")
    end = I18N.index("\n    }", start)
    return dict(re.findall(r'"(system\.[\w.]+)": "((?:[^"\\]|\\.)*)"', I18N[start:end]))


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_console_words_every_code_with_the_same_parameters(language: str) -> None:
    texts = console_texts(language)
    assert set(texts) == {f"system.{code}" for code in TEXTS}
    for code, (french, english) in TEXTS.items():
        server = french if language == "fr" else english
        assert set(re.findall(r"\{(\w+)\}", texts[f"system.{code}"])) == set(re.findall(r"\{(\w+)\}", server)), code


def test_an_entry_is_its_code_and_parameters_with_french_then_english_text() -> None:
    system, text = system_text("left.blocked", {"channel": "telegram"})
    assert system == SystemText("left.blocked", (("channel", "telegram"),))
    assert text == (
        "Le ou la jeune a bloqué la ligne ou s'est désabonné·e sur telegram : les messages ne lui parviennent plus."
        " · The young person blocked the line or unsubscribed on telegram: messages no longer reach them."
    )


def test_a_parameter_holding_braces_is_kept_as_it_is() -> None:
    params = {"channel": "messenger", "author": "listener", "hours": "168", "text": "un {mot} entre accolades"}
    _, text = system_text("not_sent", params)
    assert text.count("un {mot} entre accolades") == 2
