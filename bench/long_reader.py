"""The long reader's k on a calibration pool: ``OMP_NUM_THREADS=1 python bench/long_reader.py --weights C.npz
L1.npz L2.npz --files corpus/dev35?.jsonl corpus/dev36?.jsonl --scale 0.2 0.3 … 1.0``.

Prints numbers, asserts nothing; never reads the held-out files (it refuses them). For the messages of the pool that
a long reader reads (``--words`` words or more, 40 by default), keywords + model as in production (flows.yaml's
interrupts and thresholds, ``engine.decide``): the ``none`` ones flagged (false alarms) and the risky ones caught,
per class. A weights file without a long reader is read at its thresholds (the shipped system); one with a long
reader (built with ``gateway understanding long … --scale 1``) is read at each ``--scale`` k: its long scores
divided by k, capped at 1, the same readings otherwise (docs/understanding.md, "Thirty-second round": the rule
takes the largest k that keeps the shipped system's long risky messages caught but 1.5 %).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.understanding import decide, read_rows  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import RISKS, Reading, Risk  # noqa: E402
from gateway.understanding import load_model  # noqa: E402
from gateway.understanding.classifier import LONG_WORDS  # noqa: E402
from gateway.understanding.onnx_e5 import OnnxE5  # noqa: E402


def divided(reading: Reading, k: float) -> Reading:
    return replace(reading, scores=tuple((risk, round(min(1.0, score / k), 4)) for risk, score in reading.scores))


def show(name: str, engine: Engine, rows: list[dict[str, object]], readings: list[Reading]) -> None:
    flagged = [decide(engine, str(row["text"]), r)[0] is not None for row, r in zip(rows, readings, strict=True)]
    by = {risk: [f for f, row in zip(flagged, rows, strict=True) if row["risk"] == risk.value] for risk in RISKS}
    none = [f for f, row in zip(flagged, rows, strict=True) if row["risk"] == Risk.NONE.value]
    risky = sum(sum(v) for v in by.values())
    each = ", ".join(f"{risk.value} {sum(v)}/{len(v)}" for risk, v in by.items())
    print(f"  {name}: false alarms {sum(none)} of {len(none)} ({sum(none) / max(1, len(none)):.1%}), risky"
          f" {risky} of {sum(len(v) for v in by.values())} ({each})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", required=True)
    parser.add_argument("--files", nargs="+", required=True, help="the calibration pool")
    parser.add_argument("--flows", default="flows.yaml")
    parser.add_argument("--words", type=int, default=LONG_WORDS)
    parser.add_argument("--scale", nargs="+", type=float, default=[1.0])
    args = parser.parse_args()
    if any(Path(f).name.startswith("heldout") or "sealed" in Path(f).parts for f in args.files):
        parser.error("held-out and sealed files are not read here (corpus/README.md)")
    engine = Engine(load_file(Path(args.flows)))
    rows = [row for f in args.files for row in read_rows(Path(f)) if len(str(row["text"]).split()) >= args.words]
    print(f"{len(rows)} messages of {args.words} words or more in {', '.join(args.files)}")
    embedder = OnnxE5(threads=1)
    for weights in args.weights:
        model = load_model(embedder, Path(weights))
        readings = [model.read(str(row["text"])) for row in rows]
        print(f"\nweights {weights}")
        if model.classifier.long is None:
            show("as it is", engine, rows, readings)
            continue
        for k in args.scale:
            show(f"long reader × {k:g}", engine, rows, [divided(r, k) for r in readings])
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
