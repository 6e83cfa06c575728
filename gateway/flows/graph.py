"""Draw a flow for ops staff: Mermaid text (``.mmd``) or, through Graphviz's ``dot``, ``.svg`` / ``.png``.

The diagram reads top to bottom: Start, the steps (boxes say something, parallelograms ask a question), the
branches of ``next`` with their conditions, the Routing diamond and its rules in order (hexagons, "else" from
one to the next), and the outcomes in colour: urgent hand-offs red, hand-offs blue, referrals orange, endings
grey. A hand-off to a queue that has opening hours also shows the "queue closed" path. Two boxes on the side
show what can happen at any step: the interrupts (a phrase anywhere) and the fallback (answers not understood).

Both formats are built from one neutral :class:`Diagram`; every text from flows.yaml is shortened, flattened
to one line and escaped for the target format, so that no label can break the diagram or inject markup.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.errors import FlowError
from gateway.flows.model import ALWAYS_SCHEDULE, Flow, LocalText, Outcome, Step
from gateway.flows.rules import (
    All,
    Always,
    AnyOf,
    ChannelIs,
    Condition,
    FieldTest,
    IsOpen,
    LanguageIs,
    Not,
)

ROUTE = "route"
TEXT_LIMIT = 40
CONDITION_LIMIT = 60
DOT_TIMEOUT_SECONDS = 60
INSTALL_HINT = "install graphviz (the 'dot' command) to draw .svg/.png, or use .mmd"

Shape = Literal["start", "say", "question", "routing", "rule", "outcome", "trigger", "missing"]
Colour = Literal["", "urgent", "handoff", "referral", "end", "warning"]

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "start": "Start", "routing": "Routing", "else": "else", "handoff": "Handoff", "refer": "Refer",
        "offer": "Offer listener", "yes": "yes", "say_end": "Say & end", "queue_closed": "queue closed",
        "closed_line": "Closed-line message", "interrupts": "Interrupts (any step)",
        "fallback": "Fallback (any question)", "not_understood": "not understood {n} times",
        "some_differ": "(some steps differ)", "no_rule": "no rule matched", "missing": "missing step",
        "number": "number {min}–{max}", "free_text": "free text", "choices": "choices",
        "open": "open", "closed": "closed", "and": "and", "or": "or", "not": "not", "always": "always",
        "given": "given", "not_given": "not given", "channel": "channel", "language": "language",
    },
    "fr": {
        "start": "Début", "routing": "Orientation", "else": "sinon", "handoff": "Transfert", "refer": "Orienter",
        "offer": "Proposer un écoutant", "yes": "oui", "say_end": "Dire et finir", "queue_closed": "file fermée",
        "closed_line": "Message ligne fermée", "interrupts": "Interruptions (à toute étape)",
        "fallback": "Secours (à toute question)", "not_understood": "pas compris {n} fois",
        "some_differ": "(certaines étapes diffèrent)", "no_rule": "aucune règle", "missing": "étape manquante",
        "number": "nombre {min}–{max}", "free_text": "texte libre", "choices": "choix",
        "open": "ouvert", "closed": "fermé", "and": "et", "or": "ou", "not": "non", "always": "toujours",
        "given": "renseigné", "not_given": "non renseigné", "channel": "canal", "language": "langue",
    },
}  # fmt: skip

COMPARISON_SIGNS = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}

# (fill, border) per colour
PALETTE: dict[str, tuple[str, str]] = {
    "": ("#ffffff", "#333333"),
    "urgent": ("#f8d7da", "#c0392b"),
    "handoff": ("#d6e4ff", "#1f5fbf"),
    "referral": ("#ffe5c2", "#d9822b"),
    "end": ("#e5e5e5", "#777777"),
    "warning": ("#fff3b0", "#b59f00"),
}


# ----- the neutral diagram ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    lines: tuple[str, ...]
    shape: Shape
    colour: Colour = ""


@dataclass(frozen=True, slots=True)
class Edge:
    src: str
    dst: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Cluster:
    id: str
    title: str
    nodes: tuple[str, ...]


@dataclass
class Diagram:
    title: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, src: str, dst: str, label: str = "") -> None:
        self.edges.append(Edge(src, dst, label))


def words(language: str) -> dict[str, str]:
    return WORDS.get(language.split("-")[0].lower(), WORDS["en"])


def shorten(text: str, limit: int = TEXT_LIMIT) -> str:
    """One line (whitespace and control characters flattened), at most ``limit`` characters."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# ----- conditions -------------------------------------------------------------------------------------------


def describe_condition(cond: Condition, language: str = "en") -> str:
    """A condition as ops staff read it: ``topic = sextortion``, ``age < 15``, ``listeners open``…"""
    w = words(language)
    if isinstance(cond, Always):
        return w["always"]
    if isinstance(cond, FieldTest):
        return _describe_field(cond, w)
    if isinstance(cond, ChannelIs):
        return f"{w['channel']} = {_either(cond.channels, w)}"
    if isinstance(cond, LanguageIs):
        return f"{w['language']} = {_either(cond.languages, w)}"
    if isinstance(cond, IsOpen):
        return f"{cond.target} {w['open'] if cond.open else w['closed']}"
    if isinstance(cond, Not):
        return _describe_not(cond.item, language)
    joiner = f" {w['and']} " if isinstance(cond, All) else f" {w['or']} "
    return joiner.join(_grouped(item, language) for item in cond.items)


def _describe_field(cond: FieldTest, w: dict[str, str]) -> str:
    if cond.op == "exists":
        return f"{cond.field} {w['given'] if cond.value else w['not_given']}"
    if cond.op == "in":
        assert isinstance(cond.value, tuple)
        return f"{cond.field} = {_either(cond.value, w)}"
    if cond.op in COMPARISON_SIGNS:
        assert isinstance(cond.value, float)
        return f"{cond.field} {COMPARISON_SIGNS[cond.op]} {cond.value:g}"
    return f"{cond.field} = {cond.value}"


def _either(names: Iterable[str], w: dict[str, str]) -> str:
    return f" {w['or']} ".join(names)


def _describe_not(item: Condition, language: str) -> str:
    if isinstance(item, IsOpen):
        return describe_condition(IsOpen(item.target, not item.open), language)
    if isinstance(item, FieldTest) and item.op == "equals":
        return f"{item.field} ≠ {item.value}"
    if isinstance(item, FieldTest) and item.op == "exists":
        return describe_condition(FieldTest(item.field, "exists", not item.value), language)
    return f"{words(language)['not']} ({describe_condition(item, language)})"


def _grouped(cond: Condition, language: str) -> str:
    text = describe_condition(cond, language)
    return f"({text})" if isinstance(cond, All | AnyOf) else text


# ----- building the diagram from a flow ---------------------------------------------------------------------


class _Builder:
    def __init__(self, flow: Flow, language: str | None) -> None:
        self.flow = flow
        self.lang = language if language in flow.languages else flow.default_language
        self.w = words(self.lang)
        self.d = Diagram(title=flow.flow.name)
        self.step_ids = {sid: f"step_{i}" for i, sid in enumerate(flow.steps, start=1)}
        self.missing: dict[str, str] = {}

    def build(self) -> Diagram:
        start = self.d.add(Node("start_node", (self.w["start"],), "start"))
        self.d.link(start, self.target(self.flow.start))
        for sid, step in self.flow.steps.items():
            self.step(sid, step)
        self.routing()
        self.interrupts()
        self.fallback_cluster()
        return self.d

    def text(self, local: LocalText) -> str:
        return local.get(self.lang) or local.get(self.flow.default_language) or next(iter(local.values()), "")

    def target(self, goto: str) -> str:
        """The node id of a ``next``/``goto`` target, declaring a warning node when the step does not exist."""
        if goto == ROUTE:
            return "routing"
        if goto in self.step_ids:
            return self.step_ids[goto]
        node_id = self.missing.setdefault(goto, f"missing_{len(self.missing) + 1}")
        return self.d.add(Node(node_id, (f"⚠ {self.w['missing']}", goto), "missing", "warning"))

    # steps

    def step(self, sid: str, step: Step) -> None:
        if step.ask is not None:
            lines = (sid, self.text(step.ask), self.answer_kind(step))
            self.d.add(Node(self.step_ids[sid], lines, "question"))
        else:
            self.d.add(Node(self.step_ids[sid], (sid, self.text(step.say[0])), "say"))
        self.next_edges(self.step_ids[sid], step)

    def answer_kind(self, step: Step) -> str:
        if step.choices is not None:
            return f"{self.w['choices']}: {', '.join(c.value for c in step.choices)}"
        if step.number is not None:
            return self.w["number"].format(min=step.number.min, max=step.number.max)
        return self.w["free_text"]

    def next_edges(self, node: str, step: Step) -> None:
        if step.next is None or isinstance(step.next, str):
            self.d.link(node, self.target(step.next or ROUTE))
            return
        for branch in step.next:
            always = isinstance(branch.when, Always)
            label = self.w["else"] if always else describe_condition(branch.when, self.lang)
            self.d.link(node, self.target(branch.goto), label)
            if always:
                return
        self.d.link(node, "routing", self.w["else"])  # no branch matched: the engine routes

    # routing

    def routing(self) -> None:
        previous = self.d.add(Node("routing", (self.w["routing"],), "routing"))
        label = ""
        for index, rule in enumerate(self.flow.routing, start=1):
            lines = [f"{index}. {describe_condition(rule.when, self.lang)}"] + ([f"({rule.name})"] if rule.name else [])
            node = self.d.add(Node(f"rule_{index}", tuple(lines), "rule"))
            self.d.link(previous, node, label)
            always = isinstance(rule.when, Always)
            self.d.link(node, self.outcome(f"out_rule_{index}", rule.then), "" if always else self.w["yes"])
            if always:
                return
            previous, label = node, self.w["else"]
        self.d.link(previous, self.fallback_outcome(), label or self.w["no_rule"])

    # outcomes

    def outcome(self, node_id: str, spec: Outcome) -> str:
        lines: list[str] = []
        if spec.handoff:
            lines.append(f"{self.w['handoff']}: {spec.handoff} ({spec.priority})")
        if spec.refer:
            lines.append(f"{self.w['refer']}: {', '.join(spec.refer)}")
        if spec.offer_listener:
            lines.append(f"{self.w['offer']}: {spec.offer_listener}")
        if not lines:
            lines = [self.w["say_end"], *(self.text(t) for t in spec.say[:1])]
        colour: Colour = "referral" if spec.refer and not spec.handoff else "end"
        if spec.handoff:
            colour = "urgent" if spec.priority == "urgent" else "handoff"
        self.d.add(Node(node_id, tuple(lines), "outcome", colour))
        if spec.handoff and self.may_close(spec.handoff):
            closed = self.d.add(Node("closed_line", (self.w["closed_line"],), "outcome", "end"))
            self.d.link(node_id, closed, self.w["queue_closed"])
        return node_id

    def may_close(self, queue: str) -> bool:
        spec = self.flow.queues.get(queue)
        schedule = self.flow.schedules.get(spec.schedule if spec else ALWAYS_SCHEDULE)
        return schedule is not None and not schedule.always_open

    def fallback_outcome(self) -> str:
        if "out_fallback" not in self.d.nodes:
            fb = self.flow.fallback
            self.outcome("out_fallback", Outcome(handoff=fb.queue, priority=fb.priority))
        return "out_fallback"

    # any step

    def interrupts(self) -> None:
        members: list[str] = []
        for index, (name, spec) in enumerate(self.flow.interrupts.items(), start=1):
            phrases = (f"{lang}: {ps[0]}" for lang, ps in spec.match.items() if ps)
            node = self.d.add(Node(f"interrupt_{index}", (name, *phrases), "trigger"))
            self.d.link(node, self.outcome(f"out_interrupt_{index}", spec.then))
            members += [node, f"out_interrupt_{index}"]
        if members:
            self.d.clusters.append(Cluster("interrupts", self.w["interrupts"], tuple(members)))

    def fallback_cluster(self) -> None:
        label = self.w["not_understood"].format(n=self.flow.retries + 1)
        if any(step.retries is not None for step in self.flow.steps.values()):
            label += " " + self.w["some_differ"]
        node = self.d.add(Node("not_understood", (label,), "trigger"))
        outcome = self.fallback_outcome()
        self.d.link(node, outcome)
        self.d.clusters.append(Cluster("fallback", self.w["fallback"], (node,)))


def build_diagram(flow: Flow, language: str | None = None) -> Diagram:
    """The neutral diagram of ``flow``, texts in ``language`` (default: the flow's first language)."""
    return _Builder(flow, language).build()


# ----- Mermaid ----------------------------------------------------------------------------------------------

MERMAID_SHAPES: dict[Shape, tuple[str, str]] = {
    "start": ("([", "])"),
    "say": ("[", "]"),
    "question": ("[/", "/]"),
    "routing": ("{", "}"),
    "rule": ("{{", "}}"),
    "outcome": ("(", ")"),
    "trigger": ("[[", "]]"),
    "missing": ("[", "]"),
}
_MERMAID_UNSAFE = frozenset('"#&<>[]{}()|`\\')


def mermaid_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """A label fragment safe inside Mermaid's double quotes: risky characters become ``#code;`` entities."""
    return "".join(f"#{ord(c)};" if c in _MERMAID_UNSAFE else c for c in shorten(text, limit))


def _mermaid_label(lines: Iterable[str], limit: int = TEXT_LIMIT) -> str:
    return '"' + "<br/>".join(mermaid_text(line, limit) for line in lines) + '"'


def _mermaid_node(node: Node) -> str:
    left, right = MERMAID_SHAPES[node.shape]
    limit = CONDITION_LIMIT if node.shape in ("rule", "trigger") else TEXT_LIMIT
    return f"{node.id}{left}{_mermaid_label(node.lines, limit)}{right}"


def _mermaid_edge(edge: Edge) -> str:
    if not edge.label:
        return f"{edge.src} --> {edge.dst}"
    return f"{edge.src} -->|{_mermaid_label([edge.label], CONDITION_LIMIT)}| {edge.dst}"


def _mermaid_styles(diagram: Diagram) -> list[str]:
    lines = []
    for colour, (fill, border) in PALETTE.items():
        members = [n.id for n in diagram.nodes.values() if n.colour == colour]
        if colour and members:
            lines.append(f"classDef {colour}Style fill:{fill},stroke:{border},color:#000")
            lines.append(f"class {','.join(members)} {colour}Style")
    return lines


def to_mermaid(flow: Flow, language: str | None = None) -> str:
    """A Mermaid ``flowchart TD`` of ``flow``."""
    diagram = build_diagram(flow, language)
    clustered = {n for c in diagram.clusters for n in c.nodes}
    lines = ["flowchart TD"]
    lines += [f"    {_mermaid_node(n)}" for n in diagram.nodes.values() if n.id not in clustered]
    for cluster in diagram.clusters:
        lines.append(f"    subgraph {cluster.id}[{_mermaid_label([cluster.title])}]")
        lines += [f"        {_mermaid_node(diagram.nodes[n])}" for n in cluster.nodes]
        lines.append("    end")
    lines += [f"    {_mermaid_edge(e)}" for e in diagram.edges]
    lines += [f"    {s}" for s in _mermaid_styles(diagram)]
    return "\n".join(lines) + "\n"


# ----- Graphviz DOT -----------------------------------------------------------------------------------------

DOT_SHAPES: dict[Shape, str] = {
    "start": 'shape=oval, style="filled,bold"',
    "say": 'shape=box, style="filled"',
    "question": 'shape=parallelogram, style="filled"',
    "routing": 'shape=diamond, style="filled"',
    "rule": 'shape=hexagon, style="filled"',
    "outcome": 'shape=box, style="rounded,filled"',
    "trigger": 'shape=cds, style="filled", margin="0.25,0.08"',
    "missing": 'shape=box, style="filled,dashed"',
}


def dot_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """A label fragment safe inside a DOT double-quoted string (no escape sequence, no entity survives)."""
    return shorten(text, limit).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")


def _dot_label(lines: Iterable[str], limit: int = TEXT_LIMIT) -> str:
    return '"' + "\\n".join(dot_text(line, limit) for line in lines) + '"'


def _dot_node(node: Node) -> str:
    fill, border = PALETTE[node.colour]
    limit = CONDITION_LIMIT if node.shape in ("rule", "trigger") else TEXT_LIMIT
    label = _dot_label(node.lines, limit)
    return f'"{node.id}" [label={label}, {DOT_SHAPES[node.shape]}, fillcolor="{fill}", color="{border}"];'


def _dot_edge(edge: Edge) -> str:
    label = f" [label={_dot_label([edge.label], CONDITION_LIMIT)}]" if edge.label else ""
    return f'"{edge.src}" -> "{edge.dst}"{label};'


def to_dot(flow: Flow, language: str | None = None) -> str:
    """A Graphviz DOT digraph of ``flow``."""
    diagram = build_diagram(flow, language)
    clustered = {n for c in diagram.clusters for n in c.nodes}
    lines = [
        "digraph flow {",
        f'    graph [rankdir=TB, labelloc=t, fontname="Helvetica", label={_dot_label([diagram.title])}];',
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    lines += [f"    {_dot_node(n)}" for n in diagram.nodes.values() if n.id not in clustered]
    for cluster in diagram.clusters:
        lines.append(f'    subgraph "cluster_{cluster.id}" {{')
        lines.append(f"        label={_dot_label([cluster.title])}; style=dashed;")
        lines += [f"        {_dot_node(diagram.nodes[n])}" for n in cluster.nodes]
        lines.append("    }")
    lines += [f"    {_dot_edge(e)}" for e in diagram.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


# ----- files ------------------------------------------------------------------------------------------------


def render(flow: Flow, out: Path, language: str | None = None) -> None:
    """Write the diagram to ``out``: ``.mmd`` (Mermaid text), ``.svg`` or ``.png`` (needs Graphviz's ``dot``)."""
    suffix = out.suffix.lower()
    if suffix == ".mmd":
        _write(out, to_mermaid(flow, language).encode("utf-8"))
    elif suffix in (".svg", ".png"):
        _write(out, run_dot(to_dot(flow, language), suffix[1:]))
    else:
        raise FlowError(f"cannot draw '{out.name}': use a .mmd, .svg or .png file name")


def run_dot(source: str, fmt: str) -> bytes:
    """``source`` drawn by ``dot -T<fmt>``; :class:`FlowError` when dot is missing, fails or hangs."""
    exe = shutil.which("dot")
    if exe is None:
        raise FlowError(INSTALL_HINT)
    try:
        done = subprocess.run(
            [exe, f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT_SECONDS
        )
    except FileNotFoundError:
        raise FlowError(INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise FlowError(f"graphviz 'dot' took more than {DOT_TIMEOUT_SECONDS} s: try .mmd") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()[:500]
        raise FlowError(f"graphviz 'dot' failed (exit {done.returncode}): {detail}")
    return done.stdout


def _write(out: Path, data: bytes) -> None:
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise FlowError(f"cannot write '{out}': {exc.strerror or exc}") from None
