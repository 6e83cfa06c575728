"""flows.yaml's ``retention`` and ``erasure`` (``gateway/flows/privacy.py``): positioned problems, and the
erasure phrase matched only as the whole message."""

from __future__ import annotations

import pytest

from gateway.flows import keywords
from gateway.flows.engine import Engine
from gateway.flows.loader import load_file, load_text
from gateway.flows.privacy import Erasure, ErasureWords
from tests.conftest import ROOT
from tests.flows.test_checks import VALID_FLOW, at, problems

ERASURE = """\
retention: {closed_days: 45}
erasure:
  phrases:
    fr: ["(efface|supprime) mes donnees"]
    en: ["delete my data"]
  confirm: {fr: "Sûr ?", en: "Sure?"}
  done: {fr: "Fait. 119, 3114, 17, 112.", en: "Done. 119, 3114, 17, 112."}
  cancelled: {fr: Annulé., en: Cancelled.}
"""


def with_privacy(text: str = ERASURE) -> str:
    return VALID_FLOW.replace("\ntests:\n", "\n" + text + "tests:\n", 1)


def test_the_sections_load() -> None:
    loaded, found = load_text(with_privacy(), "flows.yaml")
    assert found == [] and loaded is not None
    assert loaded.flow.retention.closed_days == 45
    assert loaded.flow.erasure is not None and loaded.flow.erasure.yes == {"fr": ["oui"], "en": ["yes"]}


def test_without_them_the_defaults_hold() -> None:
    loaded, _ = load_text(VALID_FLOW, "flows.yaml")
    assert loaded is not None and loaded.flow.retention.closed_days == 30 and loaded.flow.erasure is None


@pytest.mark.parametrize(
    ("old", "new", "where", "says"),
    [
        ("{closed_days: 45}", "{closed_days: 0}", "closed_days", "greater than or equal to 1"),
        ('"delete my data"', '"delete (my|all data"', "delete (my", "has no ')'"),
        ("cancelled: {fr: Annulé., en: Cancelled.}", "cancelled: {fr: Annulé.}", "cancelled", "no text in 'en'"),
        ('    en: ["delete my data"]', '    de: ["delete my data"]', "de:", "'de' is not one of the languages"),
    ],
)
def test_mistakes_are_positioned(old: str, new: str, where: str, says: str) -> None:
    text = with_privacy(ERASURE.replace(old, new))
    found = problems(text)
    assert len(found) == 1 and says in found[0], found
    assert found[0].startswith(at(text, where).rsplit(":", 1)[0])  # the line of the mistake


@pytest.mark.parametrize(
    ("message", "asked"),
    [
        ("efface mes données", True), ("Efface mes donnees stp !!", True), ("je veux supprimer mes infos", True),
        ("delete my data please", True), ("erase all my information", True), ("supprime cette conversation", True),
        ("il m'a dit efface mes données sinon il publie", False), ("mes données ont fuité", False),
        ("efface", False), ("", False),
    ],
)  # fmt: skip
def test_the_shipped_phrases_are_whole_messages(message: str, asked: bool) -> None:
    engine = Engine(load_file(ROOT / "flows.yaml"))
    assert engine.erasure is not None and engine.erasure.asked(message) is asked
    # as the dispatcher asks, with the canonical form made for the message's decision just before
    engine.decide(message)
    assert engine.canonical(message) == keywords.canonical(message)
    assert engine.erasure.asked(message, engine.canonical(message)) is asked
    other = message + " encore"  # not the last decided: made for it
    assert engine.canonical(other) == keywords.canonical(other)


@pytest.mark.parametrize(
    ("answer", "confirmed"),
    [("oui", True), ("Oui merci", True), ("yes", True), ("je confirme", True), ("non", False), ("oui non", False),
     ("no", False), ("peut-être", False), ("oui mais attends, je veux parler à quelqu'un", False)],
)  # fmt: skip
def test_only_a_yes_confirms(answer: str, confirmed: bool) -> None:
    spec = Engine(load_file(ROOT / "flows.yaml")).flow.erasure
    assert isinstance(spec, Erasure) and ErasureWords(spec).confirmed(answer) is confirmed
