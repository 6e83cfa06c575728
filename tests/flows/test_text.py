from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.flows.text import contains, find_option, make_option, match_option, normalize, parse_number


def test_normalize() -> None:
    assert normalize("  J’AI   15 ans !  Élève ") == "j ai 15 ans eleve"
    assert normalize("ÇA   VA ?") == "ca va"


def test_contains_is_whole_word() -> None:
    assert contains("je suis en danger", "danger")
    assert not contains("dangereux", "danger")
    assert not contains("abc", "")


def test_parse_number() -> None:
    assert parse_number("j'ai 15 ans") == 15
    assert parse_number("dix-sept") == 17
    assert parse_number("entre 12 et 14") is None
    assert parse_number("aucune idée") is None


OPTIONS = [
    make_option("yes", ["Oui", "Yes"], ["ouais", "danger"]),
    make_option("no", ["Non", "No"], ["pas du tout"]),
]


def test_match_option_orders() -> None:
    assert match_option("", "no", OPTIONS) == "no"
    assert match_option("OUI", None, OPTIONS) == "yes"
    assert match_option("2", None, OPTIONS) == "no"
    assert match_option("3", None, OPTIONS) is None
    assert match_option("ben ouais", None, OPTIONS) == "yes"
    assert match_option("oui et non", None, OPTIONS) is None  # ambiguous


@given(st.text())
def test_match_never_raises(answer: str) -> None:
    match_option(answer, None, OPTIONS)
    parse_number(answer)
    normalize(answer)


def test_find_option_the_longest_phrase_wins_and_a_tie_is_ambiguous() -> None:
    options = (
        make_option("a", ["Un"], ["mon grand frere", "frere"]),
        make_option("b", ["Deux"], ["mon grand pere", "mon pere"]),
        make_option("c", ["Trois"], ["grand frere"]),
    )
    assert find_option("c est mon grand frere", options) == ("a", "synonym:mon grand frere")
    assert find_option("mon pere et mon grand frere", options) == ("a", "synonym:mon grand frere")
    assert find_option("grand frere et mon pere", options) == ("c", "synonym:grand frere")
    assert find_option("mon pere", options, 3) is None  # two words, three asked
    assert find_option("rien", options) is None
    tied = (make_option("a", ["Un"], ["frere"]), make_option("b", ["Deux"], ["soeur"]))
    assert find_option("mon frere et ma soeur", tied) is None  # five characters each: ambiguous
