"""The n-grams the heads read are the ones they were trained on: counted with ``bincount`` since 2026-12-01, they
are, bit for bit, what adding 1.0 per n-gram gave (the definition below), on every training-side message."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gateway.understanding.classifier import NGRAM_DIM
from gateway.understanding.features import SIZES, canonical, ngrams

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
TRAINING_SIDE = ("train.jsonl", "train_short.jsonl", "train_long.jsonl", "train_negatives.jsonl", "train6.jsonl")


def one_by_one(text: str, dim: int) -> npt.NDArray[np.float64]:
    """The n-grams as they were defined when the shipped weights were trained (before 2026-12-01)."""
    vector = np.zeros(dim)
    padded = canonical(text)
    for n in SIZES:
        for i in range(len(padded) - n + 1):
            vector[zlib.crc32(padded[i : i + n].encode()) % dim] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def texts() -> list[str]:
    return [json.loads(line)["text"] for name in TRAINING_SIDE
            for line in (CORPUS / name).read_text(encoding="utf-8").splitlines() if line.strip()]  # fmt: skip


def test_every_training_side_message_s_ngrams_are_bit_for_bit_the_one_by_one_count() -> None:
    every = texts()
    assert len(every) > 5000
    differing = [i for i, t in enumerate(every) if not np.array_equal(ngrams(t, NGRAM_DIM), one_by_one(t, NGRAM_DIM))]
    assert differing == []


@pytest.mark.parametrize("text", ["", " ", "a", "\n\t ", "ﬁn €😀 ÉTÉ", "x" * 3000])
def test_edge_texts_ngrams_are_the_one_by_one_count(text: str) -> None:
    for dim in (NGRAM_DIM, 7):
        got = ngrams(text, dim)
        assert got.dtype == np.float64 and got.shape == (dim,) and np.array_equal(got, one_by_one(text, dim))
