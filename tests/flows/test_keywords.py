"""The keyword first line: canonical forms (SMS spelling, accents, repeated letters), phrase marks, false
friends, and ending phrases that only end a message made of them."""

from __future__ import annotations

import pytest

from gateway.flows import keywords
from gateway.flows.keywords import canonical, compile_phrases, phrase_problem


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Chuiii TROP mal, jveux mourrir!!", "je suis trop mal je veux mourir"),
        ("J'veux plus être là", "j veux plus etre la"),
        ("jsuis à bout, g envie d'en finir", "je suis a bout j ai envie d en finir"),
        ("je ne veux plus vivre", "je veux plus vivre"),
        ("STOOOOP", "stop"),
        ("kms tbh", "kill myself tbh"),
        ("im scared cuz he has a knife rn", "i m scared because he has a knife right now"),
        ("ma sœur", "ma soeur"),
        ("mon daron me frappe", "mon pere me frappe"),
        ("appelle le 3114, 1000 fois", "appelle le 3114 1000 fois"),
    ],
)
def test_canonical(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [
        ("(a|b", "a '(' has no ')'"),
        ("a)b", "a ')' has no '('"),
        ("a|b", "a '|' outside parentheses: write alternatives as (a|b)"),
        ("((a|b)|c)", "alternatives '( | )' cannot be nested"),
        ("(a|) b", "an alternative is empty: every choice in (a|b) needs words"),
        ("* couteau", "'*' stands between words, not at the start or the end"),
        ("il a *", "'*' stands between words, not at the start or the end"),
        ("(a|*b)", "'*' cannot stand inside parentheses"),
        ("!!", "the phrase has no words"),
    ],
)
def test_phrase_problems(phrase: str, problem: str) -> None:
    assert phrase_problem(phrase) == problem


def test_good_phrases_have_no_problem() -> None:
    assert phrase_problem("(mon|ma) (pere|mere) * me frappe") is None
    assert phrase_problem("j'ai peur") is None


def test_alternatives_and_gaps() -> None:
    phrases = compile_phrases(["(il|elle) a * (couteau|arme)", "(mon|ma) (pere|beau pere) me frappe"])
    assert phrases.find(canonical("il a un couteau")) == "il a un couteau"
    assert phrases.find(canonical("elle a sorti un grand couteau !")) == "elle a sorti un grand couteau"
    assert phrases.find(canonical("Mon beau-père me frappe")) == "mon beau pere me frappe"
    assert phrases.find(canonical("il a dit que tout le couteau était à lui")) is None  # a gap of 3 words at most
    assert phrases.find(canonical("il a une armoire")) is None  # whole words
    assert phrases.find(canonical("il a couteau")) == "il a couteau"


def test_false_friends_set_words_aside() -> None:
    phrases = compile_phrases(["(vont|va) me tuer", "je me coupe"], ["(va|vont) me tuer si", "je me coupe la frange"])
    assert phrases.find(canonical("mes parents vont me tuer si ils voient mon bulletin")) is None
    assert phrases.find(canonical("je me coupe la frange demain")) is None
    assert phrases.find(canonical("il va me tuer")) == "va me tuer"
    # a false friend never hides the rest of the message
    assert phrases.find(canonical("je me coupe la frange, et après je me coupe")) == "je me coupe"


@pytest.mark.parametrize(
    "message", ["stop", "STOP!!", "stop stp", "stooop", "stop stop", "ok stop merci", "je veux arrêter la conversation"]
)
def test_an_ending_phrase_alone(message: str) -> None:
    phrases = compile_phrases(["stop", "je veux arreter", "arreter la conversation"])
    assert phrases.only(canonical(message))


@pytest.mark.parametrize(
    "message",
    [
        "",
        "stp",
        "je lui ai dit stop mais il continue",
        "stop je veux juste que tout s'arrête",
        "stop " * 13,
        "stopper",
        "il faut que ça stop",
    ],
)
def test_an_ending_phrase_in_a_story(message: str) -> None:
    assert not compile_phrases(["stop"]).only(canonical(message))


def test_only_accepts_a_filler_list() -> None:
    assert keywords.only("fin svp", compile_phrases(["fin"]).each)
    assert not keywords.only("fin svp", compile_phrases(["fin"]).each, fillers=["merci"])
