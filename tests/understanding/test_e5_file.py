"""gateway/understanding/e5_file.py: the tokenizer gives, token for token, the ids the dict-of-strings tokenizer it
replaced gave (kept here as the reference: e5.c's ``tok_content`` as first ported), with its shortcut (a search from
each position stops at the longest piece beginning with its two code points) or without."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.understanding.e5_file import META, ModelFile, Tokenizer
from gateway.understanding.onnx_e5 import model_file

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
ODD = [
    "".join(chr(c) for c in range(0x1F600, 0x1F650)),  # emoji
    "🏳️‍🌈 👨‍👩‍👧 ❤️‍🔥 🇫🇷 👍🏽",  # joiners, variation selectors, flags, skin tones
    "ＡＢＣ　ｄｅｆ",  # full width, normalised by the map
    "ﬁﬂ ǅ",  # ligatures
    "a" * 300,
    "anticonstitutionnellementtttttttttttttttttttttttttttttttttttttttttt",  # a very long word
    "é" * 100 + "ç" * 30,
    "Ça va ? Élève, où ça ? crème brûlée, naïve, cœur",  # accents, œ
    "e\u0301le\u0300ve",  # decomposed accents
    "jsp mdr ptdr slt cv ? tkt jvx pa kiffé wsh askip oklm bcp pk",  # SMS spelling
    "kms lol i forgot my homework 💀💀",
    "▁▁▁ x",  # the metaspace itself
    "<s> </s> <pad> <unk>",  # the special pieces' spellings
    "日本語のテキストです",
    "𝔥𝔢𝔩𝔩𝔬",
    "\u0301\u0301e",  # combining marks alone
    "  lots   of\t\tspaces \n\n ",
    "",
    " ",
    "j",
    "\ud83d\ude00 \ud800 lone surrogates",  # encodable with surrogatepass only
    "x\0y",
]


class Reference:
    """The tokenizer as first ported from e5.c: the pieces in a dict of strings, looked up one substring at a time
    (what gateway/understanding/e5_file.py held before the compact vocabulary; about 45 MB)."""

    def __init__(self, model: ModelFile, shortcut: bool = True) -> None:
        pieces = [model.piece(i) for i in range(len(model.offsets) - 1)]
        self.ids = {p: i for i, p in enumerate(pieces) if p}
        self.scores, self.norm, self.unk = model.scores, model.norm, model.specials["unk"]
        self.bos, self.eos = model.specials["bos"], model.specials["eos"]
        self.unk_score = float(model.scores.min()) - 10.0
        self.max_bytes = max(len(p.encode("utf-8", "surrogatepass")) for p in pieces)
        self.reach: dict[str, int] = {}
        for piece in self.ids:
            if len(piece) > self.reach.get(piece[:2], 0):
                self.reach[piece[:2]] = len(piece) if shortcut else 10**6

    def content(self, text: str) -> list[int]:
        cps: list[str] = []
        for ch in text:
            mapped = self.norm.get(ord(ch))
            cps.extend([ch] if mapped is None else [chr(c) for c in mapped])
        collapsed: list[str] = []
        for ch in cps:
            if ch == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(ch)
        chars = ([META] if not collapsed or collapsed[0] != " " else []) + [META if c == " " else c for c in collapsed]
        widths = [len(c.encode("utf-8", "surrogatepass")) for c in chars]
        joined = "".join(chars)
        n = len(chars)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(-1, 0)] * (n + 1)
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            base = np.float32(here)
            length = 0
            for e in range(i + 1, min(n, i + max(self.reach.get(joined[i : i + 2], 1), 1)) + 1):
                length += widths[e - 1]
                if length > self.max_bytes:
                    break
                idx = self.ids.get(joined[i:e])
                if idx is not None and idx != self.unk:
                    score = float(base + self.scores[idx])
                    if score > best[e]:
                        best[e], back[e] = score, (idx, i)
            score = float(base + np.float32(self.unk_score))
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (-1, i)
        out = []
        i = n
        while i > 0:
            idx, start = back[i]
            out.append(self.unk if idx < 0 else idx)
            i = start
        return out[::-1]

    def query(self, text: str) -> list[int]:
        return [self.bos, *self.content("query: " + text), self.eos]


class Exhaustive(Tokenizer):
    """The tokenizer without its shortcut: every length up to the longest piece's is looked up."""

    def reach(self, cps: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.full(len(cps), 10**6)


@pytest.fixture(scope="module")
def model() -> ModelFile:
    return ModelFile.map(model_file())


@pytest.fixture(scope="module")
def tokenizers(model: ModelFile) -> tuple[Tokenizer, Reference]:
    return Tokenizer(model), Reference(model)


def sample() -> list[str]:
    lines = (CORPUS / "train.jsonl").read_text(encoding="utf-8").splitlines()[::7]
    return [json.loads(line)["text"] for line in lines] + ODD


def test_the_ids_are_the_dict_tokenizer_s(tokenizers: tuple[Tokenizer, Reference]) -> None:
    ours, reference = tokenizers
    for text in sample():
        assert ours.query(text) == reference.query(text), text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60) | st.text(alphabet="ab éç👍▁ \u0301", max_size=80))
def test_any_text_s_ids_are_the_dict_tokenizer_s(tokenizers: tuple[Tokenizer, Reference], text: str) -> None:
    ours, reference = tokenizers
    assert ours.query(text) == reference.query(text)


def test_the_shortcut_finds_the_exhaustive_search_s_pieces(
    model: ModelFile, tokenizers: tuple[Tokenizer, Reference]
) -> None:
    fast, _ = tokenizers
    exhaustive, reference = Exhaustive(model), Reference(model, shortcut=False)
    for text in sample():
        ids = fast.query(text)
        assert ids == exhaustive.query(text), text
    for text in ODD:
        assert exhaustive.query(text) == reference.query(text), text


def test_the_shortcut_saves_look_ups(model: ModelFile, tokenizers: tuple[Tokenizer, Reference]) -> None:
    """The reach is what makes the search cheap: a third of the look-ups (or fewer) of the exhaustive search."""
    fast, _ = tokenizers
    text = "il menace d'envoyer ma photo à tout le collège si je paie pas"
    joined = fast.normalised(text)
    cps = np.array([ord(c) for c in joined], dtype=np.int64)
    near = np.minimum(np.arange(len(cps)) + fast.reach(cps), len(cps)) - np.arange(len(cps))
    assert near.sum() * 3 <= len(cps) * min(len(cps), fast.max_bytes)


def tiny(pieces: list[str], scores: list[float]) -> ModelFile:
    """A model file's tokenizer part with these pieces only (ids 0-3: <s>, <pad>, </s>, <unk>)."""
    raw = [p.encode("utf-8", "surrogatepass") for p in ["<s>", "<pad>", "</s>", "<unk>", *pieces]]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in raw])]).astype(np.uint32)
    blob = np.frombuffer(b"".join(raw), dtype=np.uint8)
    all_scores = np.array([0.0, 0.0, 0.0, 0.0, *scores], dtype=np.float32)
    specials = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    return ModelFile(b"", {}, {}, blob, offsets, all_scores, {ord("ﬁ"): [ord("f"), ord("i")]}, specials)


def test_ties_duplicates_and_the_unknown_piece_as_the_dict_tokenizer() -> None:
    """Equal sums (the first found wins), a piece twice in the file (its last id), an empty piece (never found), the
    unknown piece's spelling in a text (never found), a character no piece holds (unknown)."""
    pieces = ["▁", "▁a", "b", "ab", "▁ab", "ab", "", "<unk>", "▁fi", "x", "y", "xy", "▁q", "u", "é", "▁é"]
    scores = [-1.0, -1.0, -1.0, -1.0, -2.0, -1.0, -0.1, -0.1, -3.0, -0.5, -0.5, -1.0, -0.25, -0.25, -1.5, -1.5]
    model = tiny(pieces, scores)
    ours, reference = Tokenizer(model), Reference(model)
    for text in ["ab", "ab ab", "<unk>", "ﬁ", "xy", "xyxy z", "qu", "éé é", "", "a b ab ab"]:
        assert ours.query(text) == reference.query(text), text
    assert ours.content("ab") == [8]  # "▁ab", "▁a" + "b" and "▁" + "ab" all sum to -2: the first found
    found = ours.vocabulary.find(b"ab", np.array([0]), np.array([2]))
    assert found[1].tolist() == [9]  # "ab" is ids 7 and 9
