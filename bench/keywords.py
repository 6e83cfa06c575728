"""The keyword first line alone: ``python bench/keywords.py [--corpus FILE] [--misses CLASS] [--alarms]``.

Prints, for one labelled corpus (``corpus/train.jsonl`` by default), what flows.yaml's interrupts alone decide at a
question (``Engine.decide`` without the model's reading): the any-risk recall per risk class, the share sent to
the interrupt of the right class, and the false alarms on ``none`` messages. ``--misses CLASS`` lists the messages
of that class no phrase flags; ``--alarms`` lists the ``none`` messages flagged, with the words that matched.
Figures only, asserts nothing. Held-out files are for ``bench/understanding.py``; reading their messages here
(``--misses``, ``--alarms``) to choose phrases would fit the phrases to them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import RISKS, Risk  # noqa: E402
from gateway.flows.risk import Flag  # noqa: E402


def pct(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "     –"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus" / "train.jsonl")
    parser.add_argument("--flows", type=Path, default=ROOT / "flows.yaml")
    parser.add_argument("--misses", choices=[r.value for r in RISKS], help="list this class's messages not flagged")
    parser.add_argument("--alarms", action="store_true", help="list the none messages flagged")
    args = parser.parse_args()
    engine = Engine(load_file(args.flows))
    rows = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    flags: list[Flag | None] = []
    for row in rows:
        flag = engine.decide(row["text"]).flag
        flags.append(flag if flag is not None and flag.risk is not Risk.NONE else None)
    print(f"{args.corpus.name}: {len(rows)} messages, keyword interrupts of {args.flows.name} alone")
    print("    risk class          messages   any risk flagged   right class")
    for risk in RISKS:
        mine = [f for f, row in zip(flags, rows, strict=True) if row["risk"] == risk.value]
        found = sum(f is not None for f in mine)
        right = sum(f is not None and f.risk is risk for f in mine)
        print(f"    {risk.value:<18} {len(mine):9}   {pct(found, len(mine)):>16}   {pct(right, len(mine)):>11}")
    none = [(f, row) for f, row in zip(flags, rows, strict=True) if row["risk"] == Risk.NONE.value]
    alarms = [(f, row) for f, row in none if f is not None]
    print(f"    false alarms on the {len(none)} none messages: {pct(len(alarms), len(none))} ({len(alarms)})")
    if args.misses:
        print(f"\n{args.misses} messages not flagged:")
        for f, row in zip(flags, rows, strict=True):
            if row["risk"] == args.misses and f is None:
                print("   ", row["text"])
    if args.alarms:
        print("\nnone messages flagged (class: words):")
        for f, row in alarms:
            assert f is not None
            print(f"    {f.risk.value}: {f.words!r}  ←  {row['text']}")


if __name__ == "__main__":
    main()
