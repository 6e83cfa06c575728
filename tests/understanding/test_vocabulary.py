"""gateway/understanding/vocabulary.py: pieces found by their bytes as a dict of them would find them, and never by a
hash that matches by chance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.understanding.vocabulary import HASH, Index, Vocabulary, hashes


def vocabulary(pieces: list[bytes]) -> Vocabulary:
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.uint32)
    return Vocabulary(np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets)


def look_up(vocab: Vocabulary, text: bytes, spans: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
    begins, ends = (np.array([s[k] for s in spans], dtype=np.int64) for k in (0, 1))
    found, ids = vocab.find(text, begins, ends)
    return {spans[j]: i for j, i in zip(found.tolist(), ids.tolist(), strict=True)}


def every_span(text: bytes) -> list[tuple[int, int]]:
    return [(b, e) for b in range(len(text)) for e in range(b + 1, len(text) + 1)]


def thue_morse(length: int, a: bytes, b: bytes) -> bytes:
    """The Thue-Morse word over two bytes: for ``length`` ≥ 2**11 it and its complement have the same polynomial
    hash modulo 2**64 for any odd base (the hash difference is a product of eleven factors ``1 - base**(2**j)``,
    each even)."""
    return b"".join(a if bin(i).count("1") % 2 == 0 else b for i in range(length))


def test_pieces_are_found_as_a_dict_finds_them() -> None:
    pieces = [b"<s>", b"a", b"ab", b"abc", b"", "é".encode(), "▁ça".encode(), b"b", b"ab", "💀".encode()]
    vocab = vocabulary(pieces)
    text = "xabc▁çaé💀ab".encode()
    as_dict = {p: i for i, p in enumerate(pieces) if p}  # the last id of a piece found twice; never the empty one
    expected = {(b, e): as_dict[text[b:e]] for b, e in every_span(text) if text[b:e] in as_dict}
    assert look_up(vocab, text, every_span(text)) == expected
    assert expected[(1, 3)] == 8 and len(vocab) == 8 and vocab.max_bytes == len("▁ça".encode())


@given(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=40), st.binary(max_size=40))
def test_any_text_s_pieces_are_the_dict_s(pieces: list[bytes], text: bytes) -> None:
    vocab = vocabulary(pieces)
    as_dict = {p: i for i, p in enumerate(pieces)}
    expected = {(b, e): as_dict[text[b:e]] for b, e in every_span(text) if text[b:e] in as_dict}
    assert look_up(vocab, text, every_span(text)) == expected


def test_pieces_that_differ_by_a_trailing_nul_byte_are_two() -> None:
    """Hypothesis found it (a fresh-clone run, 2026-12-05): "," and ",\x00" shared a hash (a NUL byte added
    nothing to it), and the vocabulary refused to build. Each byte counts plus one now."""
    vocab = vocabulary([b",", b",\x00", b",\x00\x00"])
    text = b",\x00\x00,"
    assert look_up(vocab, text, every_span(text)) == {(0, 1): 0, (0, 2): 1, (0, 3): 2, (3, 4): 0}


def test_a_hash_matching_by_chance_finds_nothing() -> None:
    piece, other = thue_morse(2048, b"a", b"b"), thue_morse(2048, b"b", b"a")
    offsets = np.array([0, len(piece)], dtype=np.int64)
    assert piece != other
    assert hashes(np.frombuffer(piece, np.uint8), offsets[:1], offsets[1:]) == hashes(
        np.frombuffer(other, np.uint8), offsets[:1], offsets[1:]
    )  # the same hash (HASH is odd)
    assert HASH % 2 == 1
    vocab = vocabulary([b"x", piece])
    text = b"x" + other + b"x" + piece
    spans = [(1, 1 + len(other)), (2 + len(other), len(text)), (0, 1)]
    assert look_up(vocab, text, spans) == {(2 + len(other), len(text)): 1, (0, 1): 0}
    with pytest.raises(ValueError, match="share a hash"):
        vocabulary([piece, other])


def test_the_index_finds_each_key_and_no_other_even_keys_that_differ_in_low_bits_only() -> None:
    keys = np.concatenate([np.arange(200_000, dtype=np.uint64), np.array([2**64 - 1, 2**63], dtype=np.uint64)])
    index = Index(keys)
    assert index.order is not None
    values = keys[index.order]  # what goes with each key, put in the index's order
    assert index.width <= 16  # spread: 200,000 consecutive numbers would fill one bucket of 65,536
    wanted = np.array([0, 5, 199_999, 200_000, 2**64 - 1, 2**63, 2**63 + 1, 12345678901234], dtype=np.uint64)
    at, found = index.find(wanted)
    assert found.tolist() == [True, True, True, False, True, True, False, False]
    assert values[at[found]].tolist() == wanted[found].tolist()
