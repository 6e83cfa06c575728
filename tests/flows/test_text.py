from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.flows.text import Option, contains, find_option, make_option, match_option, normalize, parse_number


def test_normalize() -> None:
    assert normalize("  J’AI   15 ans !  Élève ") == "j ai 15 ans eleve"
    assert normalize("o\u200bui\u00ad \u200fméchant\ufeff") == "oui mechant"  # invisible: dropped, not a space
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
    assert match_option("٢", None, OPTIONS) == "no"  # Arabic-Indic digits are numbers too
    for odd in ("፩", "𐩀", "9" * 5000):  # digits to isdigit() that int() refuses (before: ValueError, a 500)
        assert match_option(odd, None, OPTIONS) is None


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


def _find_option_reference(norm: str, options: Sequence[Option], min_words: int = 1) -> tuple[str, str] | None:
    """``find_option`` before 2026-12-03: every phrase of every option tried, longest first."""
    best_len, best, spaced = 0, {}, f" {norm} "
    for option in options:
        for phrase in option.phrases:  # longest first
            if not phrase:
                continue
            if len(phrase) < best_len:
                break
            if len(phrase.split()) >= min_words and f" {phrase} " in spaced:
                if len(phrase) > best_len:
                    best_len, best = len(phrase), {}
                best[option.value] = phrase
                break
    if len(best) != 1:
        return None
    value, phrase = best.popitem()
    return value, f"synonym:{phrase}"


_OPTION_WORDS = st.sampled_from(["je", "suis", "sa", "mere", "mer", "e", "a", "_", "pere", "ami", ""])
_SPACED = st.lists(_OPTION_WORDS, max_size=4).map(" ".join)  # "" and "_" give double, leading, trailing spaces


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.lists(_SPACED, max_size=5)), max_size=5),
    _SPACED,
    st.integers(1, 3),
)
def test_find_option_tries_only_phrases_starting_with_a_word_of_the_text(
    raw: list[tuple[str, list[str]]], norm: str, min_words: int
) -> None:
    # options as make_option builds them and as written by hand (any spacing), the phrases longest first (as
    # Option asks: find_option stops at the first shorter than the best found)
    options = [make_option(value, [], phrases) for value, phrases in raw]
    options += [Option(value, frozenset(), tuple(sorted(phrases, key=len, reverse=True))) for value, phrases in raw]
    for message in (norm, normalize(norm)):
        for some in (options[: len(raw)], options[len(raw) :]):
            assert find_option(message, some, min_words) == _find_option_reference(message, some, min_words)


@given(st.text() | st.text(st.characters(max_codepoint=127)))
def test_normalize_as_before_its_ascii_shortcut(raw: str) -> None:
    decomposed = unicodedata.normalize("NFKD", raw)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    assert normalize(raw) == " ".join(re.sub(r"[^\w]+", " ", bare.casefold()).split()).replace("_", " ").strip()


def test_normalize_as_before_past_the_characters_kept() -> None:
    """Every character of the Basic Multilingual Plane's first 12,288 (accents, combining marks, format characters,
    scripts): the same form as the per-character rule, the characters' answers kept no more than ``VISIBLE_KEPT``."""
    from gateway.flows import text

    def reference(raw: str) -> str:
        decomposed = unicodedata.normalize("NFKD", raw)
        bare = "".join(c for c in decomposed if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
        return " ".join(re.sub(r"[^\w]+", " ", bare.casefold()).split()).replace("_", " ").strip()

    for start in range(0x80, 0x3000, 64):
        raw = "é" + "".join(f"a{chr(code)}b " for code in range(start, start + 64) if not 0xD800 <= code < 0xE000)
        assert normalize(raw) == reference(raw)
    assert len(text._VISIBLE) <= text.VISIBLE_KEPT
