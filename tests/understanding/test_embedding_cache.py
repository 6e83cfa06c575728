"""The embedding cache's parts (``gateway understanding embed --part K/N``) are written as they fill: a cold build
stopped half-way keeps what it embedded, and the next run embeds only the rest."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from gateway.understanding.embedder import Vectors
from gateway.understanding.embedding_cache import embed_cached, embed_part


class Stopped(Exception):
    """The build was stopped (a session's end, a machine taken back)."""


class Hashing:
    """A deterministic embedder (each text's vector from its digest) that is stopped after ``stop_after`` calls."""

    name, dim = "hashing-test", 8

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self.stop_after is not None and self.stop_after <= 0:
            raise Stopped
        if self.stop_after is not None:
            self.stop_after -= 1
        self.seen.extend(texts)
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[: self.dim * 4], dtype=np.uint32) for t in texts]
        return (np.asarray(rows, dtype=np.float64).reshape(len(texts), self.dim) / 2**32).astype(np.float32)


TEXTS = [f"message {i}" for i in range(40)]


def test_a_part_stopped_half_way_keeps_its_first_chunks_and_the_next_run_embeds_only_the_rest(tmp_path: Path) -> None:
    stopped = Hashing(stop_after=2)
    with pytest.raises(Stopped):
        embed_part(stopped, TEXTS, tmp_path, 0, 1, chunk=4)
    assert len(stopped.seen) == 8  # two chunks of four, then stopped

    again = Hashing()
    assert embed_part(again, TEXTS, tmp_path, 0, 1) == len(TEXTS) - 8
    assert not set(again.seen) & set(stopped.seen)  # what the first run embedded is kept

    reader = Hashing()
    vectors = embed_cached(reader, TEXTS, tmp_path)
    assert reader.seen == []  # every text in the part's file
    assert np.array_equal(vectors, Hashing().embed(TEXTS))
