"""Does the keyword first line answer exactly as at an earlier commit? ``python bench/same_keywords.py [--against REV]``

The risk detection must not move when its matching is only made cheaper. This loads ``gateway/flows/text.py``,
``keywords.py`` and ``risk.py`` as they were at ``REV`` (``git show``, default: main before the twenty-fifth pass)
beside the working tree's, compiles flows.yaml's interrupts and erasure phrases with both, and compares, for every
line of every ``corpus/*.jsonl`` file, every turn of flows.yaml's own conversation tests and every wording of its
phrases (marks written out: each alternative, ``*`` as nothing and as two words): the normalised and canonical
forms, the emoji form, for each interrupt the words its phrases find (in the canonical and the emoji form), whether
the message is essentially one of them (``only``), what its false friends mask, its ``alone`` phrases, the erasure
phrases, the option each question's choices find (``find_option``, one and three words at least), and the
assessor's whole decision (the route, risk, words, priority, partners that fire, or the ending). Prints how many
answers were compared per file and how many differ; exits 1 on any difference. A difference is named by its
file and line number, never by its text (held-out files are for ``bench/understanding.py``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from gateway.flows import keywords, privacy, risk, text  # noqa: E402
from gateway.flows.engine import Engine  # noqa: E402
from gateway.flows.loader import load_file  # noqa: E402

BEFORE = "19edcf0"  # main before the twenty-fifth pass (keywords by first word)


def old_module(rev: str, name: str, injected: dict[str, Any]) -> types.ModuleType:
    """``gateway/flows/NAME.py`` as it was at ``rev``, its imports of sibling modules given by ``injected``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:gateway/flows/{name}.py"], check=True, capture_output=True, text=True
    ).stdout
    for sibling in injected:
        source = source.replace(f"from gateway.flows import {sibling}\n", "")
    module = types.ModuleType(f"old_{name}")
    module.__dict__.update(injected)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:gateway/flows/{name}.py", "exec"), module.__dict__)
    return module


def wordings(phrase: str) -> Iterator[str]:
    """A phrase's marks written out: every combination of its alternatives, ``*`` as nothing and as two words."""
    units = keywords._units(phrase) if keywords.phrase_problem(phrase) is None else [keywords._MARKS.sub(" ", phrase)]
    choices = [("", "deux mots") if u == "*" else (u,) if isinstance(u, str) else u for u in units]
    for combination in itertools.islice(itertools.product(*choices), 64):
        yield " ".join(w for w in combination if w)


def messages(flow: Any) -> Iterator[tuple[str, list[str]]]:
    """(where, texts): each corpus file's lines, the conversation tests' turns, the phrases' wordings."""
    for path in sorted((ROOT / "corpus").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        yield path.name, [json.loads(line)["text"] for line in lines if line.strip()]
    yield "flows.yaml tests", [t if isinstance(t, str) else t.text for s in flow.tests for t in s.turns]
    groups = [g for i in flow.interrupts.values() for g in (i.match, i.ignore, i.alone)]
    if flow.erasure is not None:
        groups += [flow.erasure.phrases, flow.erasure.yes]
    phrases = sorted({p for g in groups for ps in g.values() for p in ps})
    yield "flows.yaml phrases", [w for p in phrases for w in wordings(p)]


def answers(kw: Any, txt: Any, assessor: Any, erasure: tuple[Any, Any], questions: list[Any]) -> Callable[..., Any]:
    """Every answer the keyword first line gives about one message, as plain values, with one version's modules."""
    words = getattr(kw, "Words", None)

    def read(canon: str) -> Any:
        return words(canon) if words is not None else canon  # the new Phrases take a message read once

    def mask(phrases: Any, canon: str) -> str:
        masked = phrases.mask(read(canon))
        return masked if isinstance(masked, str) else masked.text

    def of(message: str) -> list[Any]:
        canon, marked = kw.canonical(message), kw.with_emoji_words(message)
        norm = txt.normalize(message)
        out: list[Any] = [norm, canon, marked]
        for interrupt in assessor.interrupts:
            phrases, alone = interrupt.phrases, interrupt.alone
            out += [phrases.find(read(canon)), phrases.only(read(canon)), mask(phrases, canon)]
            out += [alone.find(read(canon)), alone.only(read(canon))]
            out += [phrases.find(read(marked)), alone.only(read(marked))] if marked is not None else [None, None]
        asks, yes = erasure
        out += [asks.only(read(canon)), yes.only(read(canon), privacy.CONFIRM_FILLERS)]
        for options in questions:
            out += [txt.find_option(norm, options), txt.find_option(norm, options, 3)]
        decision = assessor.decide(message)
        flag = decision.flag
        out.append(
            (flag.route, flag.risk, flag.score, flag.source, flag.words, flag.priority, flag.partners) if flag else None
        )
        out.append(decision.ending[0] if decision.ending else None)
        return out

    return of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default=BEFORE, help=f"the commit to compare with (default {BEFORE})")
    parser.add_argument("--flows", type=Path, default=ROOT / "flows.yaml")
    args = parser.parse_args()
    loaded = load_file(args.flows)
    engine = Engine(loaded)
    questions = [tuple(q.options) for q in engine._questions.values() if q.options]
    erasure = loaded.flow.erasure
    if erasure is None:
        raise SystemExit("flows.yaml has no erasure section")

    old_text = old_module(args.against, "text", {})
    old_keywords = old_module(args.against, "keywords", {"text": old_text})
    old_risk = old_module(args.against, "risk", {"keywords": old_keywords})

    def words(section: dict[str, list[str]], kw: Any) -> Any:
        return kw.compile_phrases(p for ps in section.values() for p in ps)

    new = answers(
        keywords, text, risk.Assessor(loaded.flow), (words(erasure.phrases, keywords), words(erasure.yes, keywords)),
        questions,
    )  # fmt: skip
    # both versions' find_option read the same Option objects (built once: a synonyms set's order is the process's)
    old = answers(
        old_keywords, old_text, old_risk.Assessor(loaded.flow),
        (words(erasure.phrases, old_keywords), words(erasure.yes, old_keywords)), questions,
    )  # fmt: skip

    lines = compared = different = fired = 0
    for where, texts in messages(loaded.flow):
        file_compared = file_different = 0
        for number, message in enumerate(texts, 1):
            a, b = old(message), new(message)
            file_compared += len(a)
            fired += b[-2] is not None or b[-1] is not None
            if a != b:
                file_different += sum(x != y for x, y in zip(a, b, strict=True))
                print(f"  DIFFERS: {where} message {number}", flush=True)
        print(f"{where:24s} {len(texts):6,} messages, {file_compared:9,} answers compared, {file_different} differ")
        lines, compared, different = lines + len(texts), compared + file_compared, different + file_different
    print(f"all: {lines:,} messages ({fired:,} raising or ending), {compared:,} answers compared, {different} differ")
    sys.exit(1 if different else 0)


if __name__ == "__main__":
    main()
