"""Embeddings kept on disk between training runs (``gateway understanding train --cache DIR``).

Embedding the corpus and its windows is what training spends most of its time on, and it is the same every run:
the vectors are stored in ``DIR/<embedder>.npz`` (the file named by a digest of the embedder's ``name``), keyed by a
digest of each text, and only the texts not stored yet are embedded. The stored vectors are the ones ``embed``
returned, so a run from the cache gives the same weights, byte for byte, as one without. Training only: the gateway
never reads this cache.
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


def embed_cached(embedder: Embedder, texts: Sequence[str], cache: Path | None) -> Vectors:
    """``embedder.embed(texts)``, each text embedded at most once across runs when ``cache`` is a directory."""
    if cache is None:
        return embedder.embed(texts)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{_digest(embedder.name)[:16]}.npz"
    stored: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            if str(data["name"]) == embedder.name:
                stored = dict(zip((str(k) for k in data["keys"]), data["vectors"], strict=True))
    keys = [_digest(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in stored}.items())
    if missing:
        fresh = np.asarray(embedder.embed([t for _, t in missing]), dtype=np.float32)
        stored.update(zip((k for k, _ in missing), fresh, strict=True))
        names = sorted(stored)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with partial.open("wb") as f:
            vectors = np.stack([stored[k] for k in names])
            np.savez(f, name=np.array(embedder.name), keys=np.array(names), vectors=vectors)
        partial.replace(path)
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        out[row] = stored[key]
    return out
