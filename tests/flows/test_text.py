from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.flows.text import Option, contains, find_option, make_option, match_option, normalize, parse_number


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


def _find_option_by_trying_each(norm: str, options: Sequence[Option], min_words: int = 1) -> tuple[str, str] | None:
    """``find_option`` as it was until 2026-12-01: every phrase of every option tried (the reference)."""
    best_len = 0
    best: dict[str, str] = {}
    spaced = f" {norm} "
    for option in options:
        for phrase, spaced_phrase, words in option.spaced:
            if len(phrase) < best_len:
                break
            if words >= min_words and spaced_phrase in spaced:
                if len(phrase) > best_len:
                    best_len, best = len(phrase), {}
                best[option.value] = phrase
                break
    if len(best) != 1:
        return None
    value, phrase = best.popitem()
    return value, f"synonym:{phrase}"


def _flow_options() -> list[tuple[Option, ...]]:
    """The options of every question of the repository's flows.yaml, as the engine compiles them."""
    engine = Engine(load_file(Path(__file__).resolve().parents[2] / "flows.yaml"))
    return [question.options for question in engine._questions.values() if question.options]


FLOW_OPTIONS = _flow_options()
FLOW_WORDS = sorted(
    {word for options in FLOW_OPTIONS for option in options for p in option.phrases for word in p.split()}
)


@st.composite
def _texts_of_a_question(draw: st.DrawFn) -> tuple[tuple[Option, ...], str]:
    """A question's options, and a text made of some of its phrases (whole, or cut to their first words) and words
    of the flow: several options found at once, ties, phrases inside longer ones."""
    options = draw(st.sampled_from(FLOW_OPTIONS))
    phrases = [p for option in options for p in option.phrases]
    whole = st.sampled_from(phrases)
    cut = whole.map(lambda p: " ".join(p.split()[: max(1, len(p.split()) - 1)]))
    parts = draw(st.lists(st.one_of(whole, cut, st.sampled_from(FLOW_WORDS), st.just("et")), max_size=6))
    return options, normalize(" ".join(parts))


@settings(max_examples=600, deadline=None)
@given(_texts_of_a_question(), st.integers(min_value=1, max_value=3))
def test_find_option_by_first_word_finds_what_trying_each_phrase_found(
    drawn: tuple[tuple[Option, ...], str], least: int
) -> None:
    """The index by first word changes no answer: the same option, the same phrase, the same ties (None), on the
    flow's own questions and texts made of their phrases."""
    options, norm = drawn
    assert find_option(norm, options, least) == _find_option_by_trying_each(norm, options, least)
    assert find_option(norm, list(options), least) == _find_option_by_trying_each(norm, options, least)


def test_find_option_phrases_of_the_same_first_word_and_ties() -> None:
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
    for norm in ("c est mon grand frere", "mon pere et mon grand frere", "grand frere et mon pere", "mon pere"):
        assert find_option(norm, options) == _find_option_by_trying_each(norm, options)
