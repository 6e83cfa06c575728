"""Helpline numbers and URLs in the line's texts (gateway/channels/links.py): found as the web chat page links
them, never cut across two parts of a split message, written with ordinary spaces for the apps that find numbers
themselves."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.channels import links
from gateway.channels.base import split_text
from gateway.channels.links import plain, spans


def found(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.kind) for s in spans(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("📞 Le 119, ou https://www.allo119.gouv.fr.", [("119", "phone"), ("https://www.allo119.gouv.fr", "url")]),
        ("appelle le 17 ou le 112, SMS au 114", [("17", "phone"), ("112", "phone"), ("114", "phone")]),
        ("le 116 006, le 116\u00a0111", [("116 006", "phone"), ("116\u00a0111", "phone")]),
        ("tu es en position 17, tu as 17 ans, à 17h, 17 min, 17 %", []),
        ("0617 3114x 1190 v1.17 +3317", []),
        ("javascript:alert(1) ftp://x.org", []),
    ],
)
def test_the_numbers_and_urls_the_web_chat_links(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_plain_writes_a_numbers_inner_space_as_an_ordinary_one_and_nothing_else() -> None:
    assert plain("le 116\u00a0006\u00a0: le 116\u202f111") == "le 116 006\u00a0: le 116 111"


NUMBERS = st.sampled_from(["17", "112", "114", "119", "3114", "3018", "116 006", "116 111", "https://3114.fr/aide"])
WORDS = st.text(alphabet="abc \n", max_size=12)


@given(st.lists(st.tuples(WORDS, NUMBERS), min_size=1, max_size=30), st.integers(min_value=25, max_value=120))
def test_a_split_never_cuts_a_number_or_a_short_url(pieces: list[tuple[str, str]], limit: int) -> None:
    text = " ".join(f"{words} {number}" for words, number in pieces)
    whole = {number for _, number in pieces}
    parts = split_text(text, limit)
    assert all(len(part) <= limit for part in parts)
    for part in parts:
        for span in spans(part):
            assert part[span.start : span.end] in whole  # no part starts or ends with a piece of one
    assert sorted(n for p in parts for n, _ in found(p)) == sorted(n for n, _ in found(text))


@given(st.text() | st.text(alphabet="13hHtTpPsS:/ .-0246ans\u00a0\u202f", max_size=40))
def test_a_text_without_1_3_or_http_holds_nothing_to_link(text: str) -> None:
    # what lets ``spans`` answer such a text without searching it (most of the line's texts)
    if "1" not in text and "3" not in text and links._HTTP.search(text) is None:
        assert links._LINKS.search(text) is None


_LINE_BEFORE = re.compile(r"(position|number|numéro|n°|#)\s*$", re.IGNORECASE)  # the rule until 2026-12-03


def _spans_reference(text: str) -> list[links.Span]:
    """``spans`` until 2026-12-03: every text searched, the whole text before each number searched for the word."""
    found: list[links.Span] = []
    position = 0
    while (match := links._LINKS.search(text, position)) is not None:
        if match.group(1):
            url = links._URL_END.sub("", match.group(1))
            found.append(links.Span(match.start(1), match.start(1) + len(url), "url"))
            position = match.start(1) + max(len(url), 1)
            continue
        start, end = match.start(3), match.end(3)
        position = end
        if not _LINE_BEFORE.search(text[:start]):
            found.append(links.Span(start, end, "phone"))
    return found


_PIECES = st.sampled_from(
    ["17", "112", "3114", "116 006", "116\u00a0111", "119", "ans", "h", "http://x.fr/a", "HTTPS://Y.org).", "position",
     "POSITION", "poſition", "number", "numéro", "NUMÉRO", "n°", "N°", "#", "ton", "le", "x", "é", ".", ",", ":"]
)  # fmt: skip
_GAPS = st.sampled_from(["", " ", "  ", "\n", "\t", "\u00a0", "\u202f", "\u3000", " \n ", "\x1c"])


@given(st.lists(st.tuples(_GAPS, _PIECES), max_size=10).map(lambda parts: "".join(g + p for g, p in parts)))
def test_spans_as_before_its_shortcuts(text: str) -> None:
    assert spans(text) == _spans_reference(text)
