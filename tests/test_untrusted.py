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
    ],
)
def test_what_no_store_can_encode_is_malformed(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        load_json(raw)


def test_a_chat_token_is_url_safe_ascii_of_20_to_100_characters() -> None:
    assert chat_token("A" * 20) == "A" * 20 and chat_token("a-b_c" * 20) == "a-b_c" * 20
    for refused in ("A" * 19, "A" * 101, "é" * 24, "\udcff" * 24, "a b" * 10, "a/b+c=" * 5, None, 12, ["x" * 24]):
        assert chat_token(refused) is None, refused
