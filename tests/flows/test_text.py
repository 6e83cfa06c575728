from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.flows.text import contains, make_option, match_option, normalize, parse_number


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
