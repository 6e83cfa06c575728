"""Embeddings kept on disk between training runs (``gateway understanding train --cache DIR``).

Embedding the corpus and its windows is what training spends most of its time on, and it is the same every run:
the vectors are stored in ``DIR/<embedder>.npz`` (the file named by a digest of the embedder's ``name``), keyed by a
digest of each text, and only the texts not stored yet are embedded. The stored vectors are the ones ``embed``
returned, so a run from the cache gives the same weights, byte for byte, as one without. Training only: the gateway
never reads this cache.

A cold cache is filled in parts (``embed_part``, ``gateway understanding embed --part K/N``): each part embeds the
texts whose digest falls in it and writes ``DIR/<embedder>.partKofN.npz`` (again every ``PART_CHUNK`` texts), so
``make weights`` embeds a corpus once, on two cores at once, before its two fits (each of which embedded every text
on its own before: twice the work, and on a new machine most of a build's time). Every run reads the parts with the
main file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gateway.understanding.embedder import Embedder, Vectors


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _path(cache: Path, embedder: Embedder, part: tuple[int, int] | None = None) -> Path:
    stem = _digest(embedder.name)[:16]
    return cache / (f"{stem}.npz" if part is None else f"{stem}.part{part[0]}of{part[1]}.npz")


def _load(path: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if str(data["name"]) != embedder.name:
            return {}
        return dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))


def _stored(cache: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    """The vectors kept for this embedder: its main file's and its parts' (``embed_part``)."""
    main = _path(cache, embedder)
    stored: dict[str, np.ndarray] = {}
    for path in [main, *sorted(cache.glob(f"{main.stem}.part*of*.npz"))]:
        stored.update(_load(path, embedder))
    return stored


def _write(path: Path, embedder: Embedder, stored: dict[str, np.ndarray]) -> None:
    names = sorted(stored)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with partial.open("wb") as f:
        vectors = np.stack([stored[k] for k in names])
        np.savez(f, name=np.array(embedder.name), keys=np.array(names), vectors=vectors)
    partial.replace(path)


def _missing(stored: dict[str, np.ndarray], texts: Sequence[str]) -> list[tuple[str, str]]:
    """(digest, text) of the texts not stored, each once, in digest order."""
    return sorted({k: t for t in texts if (k := _digest(t)) not in stored}.items())


# A part is written every PART_CHUNK texts: a cold build stopped half-way (a session's end, a machine taken back)
# keeps what it embedded, and the next run embeds only the rest.
PART_CHUNK = 2048


def embed_part(
    embedder: Embedder, texts: Sequence[str], cache: Path, part: int, parts: int, chunk: int = PART_CHUNK
) -> int:
    """Embed the texts of part ``part`` of ``parts`` (by their digest) that the cache lacks, into that part's own file
    (written by this process only: parts run at once without losing each other's vectors), written again after
    every ``chunk`` texts. How many were embedded."""
    if not 0 <= part < parts:
        raise ValueError(f"part {part} of {parts}")
    cache.mkdir(parents=True, exist_ok=True)
    mine = [(k, t) for k, t in _missing(_stored(cache, embedder), texts) if int(k, 16) % parts == part]
    if mine:
        path = _path(cache, embedder, (part, parts))
        kept = _load(path, embedder)
        for start in range(0, len(mine), chunk):
            some = mine[start : start + chunk]
            fresh = np.asarray(embedder.embed([t for _, t in some]), dtype=np.float32)
            kept.update(zip((k for k, _ in some), fresh, strict=True))
            _write(path, embedder, kept)
    return len(mine)


def embed_cached(embedder: Embedder, texts: Sequence[str], cache: Path | None) -> Vectors:
    """``embedder.embed(texts)``, each text embedded at most once across runs when ``cache`` is a directory."""
    if cache is None:
        return embedder.embed(texts)
    cache.mkdir(parents=True, exist_ok=True)
    stored = _stored(cache, embedder)
    keys = [_digest(t) for t in texts]
    missing = _missing(stored, texts)
    if missing:
        fresh = np.asarray(embedder.embed([t for _, t in missing]), dtype=np.float32)
        stored.update(zip((k for k, _ in missing), fresh, strict=True))
        _write(_path(cache, embedder), embedder, stored)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        out[row] = stored[key]
    return out
