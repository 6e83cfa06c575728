"""gateway/understanding/e5_file.py: the tokenizer's shortcut (a search from each position stops at the longest piece
beginning with its two code points) finds the very pieces the exhaustive search finds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.understanding.e5_file import ModelFile, Tokenizer
from gateway.understanding.onnx_e5 import model_file

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
ODD = [
    "".join(chr(c) for c in range(0x1F600, 0x1F650)),  # emoji
    "ＡＢＣ　ｄｅｆ",  # full width, normalised by the map
    "ﬁﬂ ǅ",  # ligatures
    "a" * 300,
    "▁▁▁ x",  # the metaspace itself
    "日本語のテキストです",
    "𝔥𝔢𝔩𝔩𝔬",
    "\u0301\u0301e",  # combining marks alone
    "",
    "j",
]


class _Everywhere(dict[str, int]):
    """A reach that never stops the search: the exhaustive one."""

    def get(self, key: str, default: Any = None) -> int:
        return 10**6


@pytest.fixture(scope="module")
def tokenizers() -> tuple[Tokenizer, Tokenizer]:
    model = ModelFile.map(model_file())
    exhaustive = Tokenizer(model)
    exhaustive.reach = _Everywhere()
    return Tokenizer(model), exhaustive


def test_the_shortcut_finds_the_exhaustive_search_s_pieces(tokenizers: tuple[Tokenizer, Tokenizer]) -> None:
    fast, exhaustive = tokenizers
    lines = (CORPUS / "train.jsonl").read_text(encoding="utf-8").splitlines()[::7]
    texts = [json.loads(line)["text"] for line in lines] + ODD
    for text in texts:
        assert fast.query(text) == exhaustive.query(text), text
