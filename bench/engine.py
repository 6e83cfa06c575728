"""Engine and loader figures: ``python bench/engine.py`` (or ``make bench``). Prints numbers, asserts nothing.

(a) engine steps per second on one core, whole conversations through the repository's flows.yaml;
(b) the time to load (parse + schema + checks) a generated 500-step flows.yaml;
(c) the machine the figures come from.

See bench/README.md for what the figures mean and the aims.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.errors import FlowError  # noqa: E402
from gateway.flows.engine import Engine, State, StepResult  # noqa: E402
from gateway.flows.loader import load_file, load_text  # noqa: E402
from gateway.flows.model import Flow  # noqa: E402

FLOWS_YAML = ROOT / "flows.yaml"
ENGINE_SECONDS = 2.0
ENGINE_AIM = 20_000  # steps per second
LOAD_STEPS = 500
LOAD_RUNS = 5
LOAD_AIM = 1.0  # seconds
MAX_TURNS = 100  # per conversation: a seatbelt, a walk ends long before


# ----- (a) engine steps per second --------------------------------------------------------------------------


def answer_for(flow: Flow, state: State, pick: int) -> tuple[str, str | None]:
    """A plausible answer to what ``state`` waits for: (text, button payload)."""
    if state.offer is not None:
        return ("oui", "yes") if pick % 2 else ("non merci", "no")
    assert state.step is not None
    step = flow.steps[state.step]
    if step.choices:
        choice = step.choices[pick % len(step.choices)]
        label = choice.label.get(state.language) or next(iter(choice.label.values()))
        return (label, choice.value) if pick % 3 else (label, None)  # a third typed, the rest tapped
    if step.number is not None:
        return "15", None
    return "texte", None


def conversation(engine: Engine, index: int, now: datetime, outcomes: Counter[str]) -> int:
    """One whole conversation walked through the flow; the number of engine calls (start + steps)."""
    flow = engine.flow
    language = flow.languages[index % len(flow.languages)]
    result: StepResult = engine.start(channel="webchat", now=now, language_hint=language)
    calls = 1
    while result.outcome is None and not result.state.finished and calls < MAX_TURNS:
        text, payload = answer_for(flow, result.state, index + calls)
        result = engine.step(result.state, text, now=now, payload=payload)
        calls += 1
    outcomes[result.outcome.kind if result.outcome else "unfinished"] += 1
    return calls


def bench_engine(flow_file: Path) -> tuple[int, float, float, Counter[str]]:
    """(engine calls, seconds, CPU seconds, outcomes) over at least ENGINE_SECONDS of work on one Engine. The CPU
    time (``time.process_time``) is the figure to compare on a shared machine: steps/s follow the neighbours."""
    engine = Engine(load_file(flow_file))
    tz = ZoneInfo(engine.flow.timezone)
    times = [datetime(2026, 3, 10, 14, 0, tzinfo=tz), datetime(2026, 3, 10, 3, 30, tzinfo=tz)]  # open, night
    conversations = calls = 0
    outcomes: Counter[str] = Counter()
    started, cpu_started = time.perf_counter(), time.process_time()
    elapsed = 0.0
    while elapsed < ENGINE_SECONDS:
        for _ in range(100):
            calls += conversation(engine, conversations, times[conversations % 10 == 9], outcomes)
            conversations += 1
        elapsed = time.perf_counter() - started
    return calls, elapsed, time.process_time() - cpu_started, outcomes


# ----- (b) loading a 500-step flow --------------------------------------------------------------------------

HEADER = """\
flow: {id: bench, name: Bench 500}
languages: [fr, en]
timezone: Europe/Paris
start: q001
retries: 2
fallback: {queue: listeners, priority: high}
schedules:
  day: {weekly: {daily: ["09:00-23:00"]}}
queues:
  listeners: {name: {fr: "Écoutants", en: "Listeners"}, schedule: day}
partners:
  "119": {name: {fr: "Le 119", en: "The 119"}, phone: "119", message: {fr: "Appelle le 119.", en: "Call 119."}}
messages:
  not_understood: {fr: "Je n'ai pas compris.", en: "I did not understand."}
  prefer_not_to_say: {fr: "Je préfère ne pas dire", en: "I'd rather not say"}
  closed_line: {fr: "Ligne fermée ({hours}).", en: "Line closed ({hours})."}
  queued: {fr: "Position {position}, {wait} min.", en: "Position {position}, {wait} min."}
  queued_offline: {fr: "Position {position}, personne en ligne.", en: "Position {position}, nobody online."}
  reassurance: {fr: "Toujours là ({position}).", en: "Still here ({position})."}
  reminder: {fr: "Tu es là ?", en: "Are you there?"}
  abandoned: {fr: "Au revoir.", en: "Goodbye."}
  ended: {fr: "Fin.", en: "End."}
  offer_listener: {fr: "Veux-tu parler à un écoutant ?", en: "Do you want to talk to a listener?"}
  offer_yes: {fr: "Oui", en: "Yes"}
  offer_no: {fr: "Non merci", en: "No thanks"}
  listener_joined: {fr: "Un écoutant arrive.", en: "A listener joins."}
  idle_closed: {fr: "Conversation fermée.", en: "Conversation closed."}
  rate_limited: {fr: "Trop vite, 119, 3114, 17 ou 112.", en: "Too fast, 119, 3114, 17 or 112."}
  blocked: {fr: "Pas possible, 119, 3114, 17 ou 112.", en: "Not possible, 119, 3114, 17 or 112."}
interrupts:
  danger:
    match: {fr: ["je veux mourir"], en: ["i want to die"]}
    then: {handoff: listeners, priority: urgent, refer: ["119"]}
routing:
  - name: urgent
    when: {field: f001, equals: a}
    then: {handoff: listeners, priority: urgent, refer: ["119"]}
  - name: closed
    when: {all: [{field: f002, in: [b, c]}, {closed: listeners}]}
    then: {refer: ["119"]}
  - name: offer
    when: {field: f003, equals: c}
    then: {refer: ["119"], offer_listener: listeners}
  - name: default
    then: {handoff: listeners, priority: normal}
"""


def step_yaml(n: int, total: int) -> str:
    sid, nxt = f"q{n:03d}", (f"q{n + 1:03d}" if n < total else "route")
    if n % 50 == 0 and n + 2 <= total:  # a branch that skips a step, every 50 steps
        nxt = f"\n      - {{when: {{field: f{n:03d}, equals: b}}, goto: q{n + 2:03d}}}\n      - {{goto: {nxt}}}"
    choices = "".join(
        f'\n      - {{value: {v}, label: {{fr: "Choix {v} {n}", en: "Choice {v} {n}"}}, '
        f"synonyms: {{fr: [option {v}{n}], en: [pick {v}{n}]}}}}"
        for v in "abc"
    )
    return (
        f"  {sid}:\n"
        f'    ask: {{fr: "Question numéro {n} : que choisis-tu ?", en: "Question number {n}: what do you pick?"}}\n'
        f"    choices:{choices}\n"
        f"    store: f{n:03d}\n"
        f"    next: {nxt}\n"
    )


def generated_flow(total: int = LOAD_STEPS) -> str:
    fields = "".join(f"  f{n:03d}: {{label: {{fr: Champ {n}, en: Field {n}}}}}\n" for n in range(1, total + 1))
    steps = "".join(step_yaml(n, total) for n in range(1, total + 1))
    return f"{HEADER}fields:\n{fields}steps:\n{steps}"


def bench_load(total: int = LOAD_STEPS) -> tuple[list[float], int, list[str]]:
    """(seconds per run, text size, problems) of load_text on a generated ``total``-step flow."""
    text = generated_flow(total)
    runs: list[float] = []
    problems: list[str] = []
    for _ in range(LOAD_RUNS):
        started = time.perf_counter()
        loaded, found = load_text(text, "bench-500.yaml")
        runs.append(time.perf_counter() - started)
        problems = [str(p) for p in found]
        if loaded is not None:
            assert len(loaded.flow.steps) == total
    return runs, len(text), problems


# ----- (c) the machine --------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> list[str]:
    return [
        f"platform: {platform.platform()}",
        f"cpu:      {cpu_model()} ({os.cpu_count()} logical cores; the bench uses one)",
        f"python:   {platform.python_implementation()} {platform.python_version()}",
    ]


def main() -> int:
    print("helpline-gateway bench")
    for line in machine():
        print(f"  {line}")

    try:
        calls, seconds, cpu, outcomes = bench_engine(FLOWS_YAML)
    except FlowError as exc:
        print(f"\ncannot load {FLOWS_YAML}:\n{exc}")
        return 1
    rate, conversations = calls / seconds, sum(outcomes.values())
    print(f"\n(a) engine, {FLOWS_YAML.name}, one Engine, one core")
    print(f"  {conversations:,} conversations, {calls:,} engine calls (start + step) in {seconds:.2f} s")
    print(f"  {calls / conversations:.1f} calls per conversation, {conversations / seconds:,.0f} conversations/s")
    print(f"  outcomes: {', '.join(f'{k} {v / conversations:.0%}' for k, v in outcomes.most_common())}")
    print(f"  {rate:,.0f} steps/s  (aim ≥ {ENGINE_AIM:,}: {'met' if rate >= ENGINE_AIM else 'MISSED'})")
    print(f"  {cpu / calls * 1e6:.0f} µs of CPU per step (process time: steadier than steps/s on a shared machine)")

    runs, size, problems = bench_load()
    best, median = min(runs), statistics.median(runs)
    print(f"\n(b) load_text of a generated {LOAD_STEPS}-step flow ({size / 1024:.0f} KiB of YAML), {LOAD_RUNS} runs")
    print(f"  best {best * 1000:.0f} ms, median {median * 1000:.0f} ms  (aim < {LOAD_AIM:.0f} s: "
          f"{'met' if median < LOAD_AIM else 'MISSED'})")  # fmt: skip
    if problems:
        print(f"  note: the generated flow has {len(problems)} problem(s), e.g. {problems[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
