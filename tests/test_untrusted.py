"""gateway/untrusted.py: what a client sends, checked before our code uses it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.untrusted import chat_token, load_json

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_any_document_json_writes_is_read_as_json_reads_it(document: object) -> None:
    raw = json.dumps(document)
    assert load_json(raw) == json.loads(raw) == load_json(raw.encode())


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 3000 + "]" * 3000,  # deeper than Python's recursion: RecursionError, not a ValueError, from json
        '{"text": "salut \\ud83d"}',  # a lone surrogate in a value
        '{"\\udcff": 1}',  # in a key
        b'{"text": "\xff"}',  # bytes that are not UTF-8
        "{",
        b"[" * 3000 + b"]" * 3000,  # the same as bytes, as a webhook's body comes
        b'{"text": "salut \\ud83d"}',
        b'{"text": "salut \\uD83D"}',
        b'{"\\udcff": 1}',
        b'{"text": "\xed\xa0\x80"}',  # a surrogate written in UTF-8 (json reads it with surrogatepass)
        '{"text": "salut \\ud83d"}'.encode("utf-16"),  # UTF-16, as json detects it
    ],
)
def test_what_no_store_can_encode_is_malformed(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        load_json(raw)


def test_a_chat_token_is_url_safe_ascii_of_20_to_100_characters() -> None:
    assert chat_token("A" * 20) == "A" * 20 and chat_token("a-b_c" * 20) == "a-b_c" * 20
    for refused in ("A" * 19, "A" * 101, "é" * 24, "\udcff" * 24, "a b" * 10, "a/b+c=" * 5, None, 12, ["x" * 24]):
        assert chat_token(refused) is None, refused


def _reference(raw: str | bytes) -> object:
    """load_json as it was until 2026-12-06: every document encoded again."""
    try:
        document = json.loads(raw)
        json.JSONEncoder(ensure_ascii=False, check_circular=False).encode(document).encode("utf-8")
    except RecursionError:
        raise ValueError("nested too deep") from None
    return document


PIECES = st.sampled_from(['{"a":', '"', "\\ud83d", "\\ude00", "\\uD800", "\\u00e9", "é", "😀", "[", "]", "{", "}",
                          ",", ":", "1", "x", " ", "\\n", "\ud800"])  # fmt: skip


@given(st.lists(PIECES, max_size=12).map("".join), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32-le"]))
def test_bytes_are_read_as_before_the_plain_shortcut(text: str, encoding: str) -> None:
    raw = text.encode(encoding, "surrogatepass")  # a lone surrogate written as its bytes, as a client may
    try:
        expected: object = _reference(raw)
    except ValueError as error:
        with pytest.raises(ValueError):
            load_json(raw)
        assert not isinstance(error, RecursionError)
        return
    assert load_json(raw) == expected


def test_a_plain_webhook_is_read_whole() -> None:
    body = json.dumps({"object": "page", "entry": [{"messaging": [{"message": {"text": "Harcèlement ·"}}]}]})
    assert load_json(body.encode()) == json.loads(body)
