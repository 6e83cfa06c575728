"""Flow diagrams: Mermaid text and Graphviz DOT, drawn by the real ``dot`` binary."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gateway.errors import FlowError
from gateway.flows.graph import describe_condition, render, to_dot, to_mermaid
from gateway.flows.loader import parse_yaml
from gateway.flows.model import Flow
from gateway.flows.rules import parse_condition

FLOW = """
flow: {id: graph, name: Graph test}
languages: [fr, en]
start: welcome
retries: 2
fallback: {queue: listeners, priority: high}
schedules:
  day: {weekly: {daily: ["09:00-23:00"]}}
queues:
  listeners: {name: {fr: "Écoutants", en: "Listeners"}, schedule: day}
  night: {name: {fr: "Nuit", en: "Night"}}
partners:
  "119": {name: {fr: "Le 119", en: "The 119"}, phone: "119", message: {fr: "Appelle le 119.", en: "Call 119."}}
  pharos: {name: {fr: "Pharos", en: "Pharos"}, message: {fr: "Signale sur Pharos.", en: "Report on Pharos."}}
messages: {}
steps:
  welcome:
    say: {fr: "Bienvenue, c'est confidentiel.", en: "Welcome, it is confidential."}
    next: urgency
  urgency:
    ask: {fr: "Es-tu en danger ?", en: "Are you in danger?"}
    choices:
      - {value: yes_now, label: {fr: "Oui", en: "Yes"}}
      - {value: no, label: {fr: "Non", en: "No"}}
    store: urgency
    next:
      - {when: {field: urgency, equals: yes_now}, goto: route}
      - {goto: age}
  age:
    ask: {fr: "Quel âge as-tu ?", en: "How old are you?"}
    number: {min: 5, max: 99}
    store: age
    next:
      - {when: {field: age, lt: 15}, goto: young}
      - {when: {open: listeners}, goto: topic}
  young:
    say: {fr: "Merci de nous faire confiance, même si tu es jeune, on est là pour toi.", en: "Thanks."}
    next: topic
  topic:
    ask: {fr: "Que se passe-t-il ?", en: "What is happening?"}
    choices:
      - {value: sextortion, label: {fr: "Chantage", en: "Blackmail"}}
      - {value: home, label: {fr: "À la maison", en: "At home"}}
      - {value: other, label: {fr: "Autre", en: "Other"}}
    store: topic
    retries: 1
    next: details
  details:
    ask: {fr: "Raconte en quelques mots.", en: "Tell me in a few words."}
    text: {max_length: 50}
    store: details
interrupts:
  danger:
    match: {fr: ["je veux mourir", "suicide"], en: ["i want to die"]}
    then: {handoff: listeners, priority: urgent, refer: ["119"]}
  stop:
    match: {fr: ["stop"], en: ["stop"]}
    then: {say: {fr: "D'accord, au revoir.", en: "OK, goodbye."}}
routing:
  - name: danger
    when: {field: urgency, equals: yes_now}
    then: {handoff: listeners, priority: urgent, refer: ["119"]}
  - name: sextortion
    when: {all: [{field: topic, equals: sextortion}, {closed: listeners}]}
    then: {refer: ["119", pharos]}
  - name: home
    when: {field: topic, equals: home}
    then: {refer: ["119"], offer_listener: listeners}
  - name: night
    when: {channel: [whatsapp]}
    then: {handoff: night}
  - name: default
    then: {handoff: listeners, priority: normal}
"""

HOSTILE = '"hi" [b] {c} (d) <script>\\N & |x| #35;\n`z` and a long tail that is cut'


def make_flow(text: str = FLOW) -> Flow:
    data, _, problems = parse_yaml(text, "graph.yaml")
    assert problems == []
    return Flow.model_validate(data)


def hostile_flow() -> Flow:
    flow = make_flow()
    steps = dict(flow.steps)
    steps["urgency"] = steps["urgency"].model_copy(update={"ask": {"fr": HOSTILE, "en": HOSTILE}})
    interrupts = dict(flow.interrupts)
    interrupts["stop"] = interrupts["stop"].model_copy(update={"match": {"fr": [HOSTILE]}})
    return flow.model_copy(update={"steps": steps, "interrupts": interrupts})


def dot_svg(source: str) -> str:
    done = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    return done.stdout.decode()


def strip_quoted(line: str) -> str:
    return re.sub(r'"[^"]*"', '""', line)


# ----- Mermaid ----------------------------------------------------------------------------------------------

NODE_DECL = re.compile(r"^\s*([A-Za-z_][\w]*)[\[({>]")
EDGE = re.compile(r"^\s*([A-Za-z_]\w*) -->(?:\|\"[^\"]*\"\|)? ([A-Za-z_]\w*)$")


def mermaid_parts(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    declared: set[str] = set()
    edges: list[tuple[str, str]] = []
    for line in text.splitlines()[1:]:
        if m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        elif (m := NODE_DECL.match(line)) and not line.strip().startswith("subgraph"):
            declared.add(m.group(1))
    return declared, edges


def test_mermaid_is_a_top_down_flowchart_with_every_part() -> None:
    text = to_mermaid(make_flow())
    assert text.startswith("flowchart TD\n")
    for step in ("welcome", "urgency", "age", "young", "topic", "details"):
        assert f'"{step}<br/>' in text
    assert "Es-tu en danger ?" in text
    assert "1. urgency = yes_now" in text
    assert "2. topic = sextortion et listeners fermé" in text
    assert "4. canal = whatsapp" in text
    assert "5. toujours" in text
    assert "Transfert: listeners #40;urgent#41;" in text
    assert "Orienter: 119, pharos" in text
    assert "Proposer un écoutant: listeners" in text
    assert "Dire et finir<br/>D'accord, au revoir." in text
    assert "Message ligne fermée" in text
    assert 'subgraph interrupts["Interruptions #40;à toute étape#41;"]' in text
    assert "fr: je veux mourir<br/>en: i want to die" in text
    assert "pas compris 3 fois #40;certaines étapes diffèrent#41;" in text


def test_mermaid_is_syntactically_sane() -> None:
    text = to_mermaid(make_flow())
    declared, edges = mermaid_parts(text)
    assert edges and declared
    for src, dst in edges:
        assert src in declared and dst in declared, (src, dst)
    lines = text.splitlines()
    assert lines.count("    end") == sum(1 for line in lines if line.strip().startswith("subgraph"))
    for line in lines:
        assert line.count('"') % 2 == 0, line
        bare = strip_quoted(line)
        for left, right in ("[]", "()", "{}"):
            assert bare.count(left) == bare.count(right), line
        assert not re.match(r"^\s*end\b.", line)  # 'end' is a keyword, never an id
        assert not re.search(r"\bend$", line) or line == "    end"


def test_every_step_rule_and_outcome_is_declared() -> None:
    declared, edges = mermaid_parts(to_mermaid(make_flow()))
    assert {f"step_{i}" for i in range(1, 7)} <= declared
    assert {f"rule_{i}" for i in range(1, 6)} <= declared
    assert {f"out_rule_{i}" for i in range(1, 6)} <= declared
    assert {"start_node", "routing", "closed_line", "out_fallback", "not_understood"} <= declared
    assert {"interrupt_1", "interrupt_2", "out_interrupt_1", "out_interrupt_2"} <= declared
    targets = {dst for _, dst in edges}
    assert declared - {"start_node", "interrupt_1", "interrupt_2", "not_understood"} <= targets


def test_edges_carry_branch_conditions_and_else() -> None:
    text = to_mermaid(make_flow())
    assert 'step_2 -->|"urgency = yes_now"| routing' in text
    assert 'step_2 -->|"sinon"| step_3' in text
    assert 'step_3 -->|"age < 15"| step_4' not in text  # '<' is escaped
    assert 'step_3 -->|"age #60; 15"| step_4' in text
    assert 'step_3 -->|"listeners ouvert"| step_5' in text
    assert 'step_3 -->|"sinon"| routing' in text  # no branch matched: the engine routes
    assert "step_6 --> routing" in text  # no next: route
    assert 'rule_1 -->|"sinon"| rule_2' in text
    assert [line.strip() for line in text.splitlines() if line.startswith("    rule_5 ")] == ["rule_5 --> out_rule_5"]
    assert 'rule_1 -->|"oui"| out_rule_1' in text


def test_closed_line_only_for_queues_with_hours() -> None:
    text = to_mermaid(make_flow())
    assert 'out_rule_1 -->|"file fermée"| closed_line' in text  # listeners: 09:00-23:00
    assert "out_rule_4 -->" not in text  # night: always open
    assert 'out_fallback -->|"file fermée"| closed_line' in text


def test_colours_follow_the_outcome() -> None:
    text = to_mermaid(make_flow())
    classes = {}
    for line in text.splitlines():
        if line.startswith("    class "):
            _, members, name = line.split()
            classes[name] = set(members.split(","))
    assert classes["urgentStyle"] == {"out_rule_1", "out_interrupt_1"}
    assert classes["handoffStyle"] == {"out_rule_4", "out_rule_5", "out_fallback"}
    assert classes["referralStyle"] == {"out_rule_2", "out_rule_3"}
    assert classes["endStyle"] == {"out_interrupt_2", "closed_line"}


def test_language_picks_texts_and_words() -> None:
    text = to_mermaid(make_flow(), language="en")
    assert "Are you in danger?" in text
    assert "Handoff: listeners #40;urgent#41;" in text
    assert 'rule_1 -->|"else"| rule_2' in text
    assert "Closed-line message" in text
    assert "Es-tu en danger" not in to_mermaid(make_flow(), language="en")
    assert "Es-tu en danger" in to_mermaid(make_flow(), language="de")  # unknown: the flow's default


def test_long_texts_are_shortened() -> None:
    text = to_mermaid(make_flow())
    assert "Merci de nous faire confiance, même si…" in text
    assert "pour toi" not in text


def test_missing_target_is_drawn_as_a_warning() -> None:
    flow = make_flow(FLOW.replace("next: details", "next: detials"))
    text = to_mermaid(flow)
    declared, edges = mermaid_parts(text)
    assert ("step_5", "missing_1") in edges
    assert "missing_1" in declared
    assert "detials" in text


# ----- DOT ---------------------------------------------------------------------------------------------------


def test_dot_is_drawn_by_graphviz() -> None:
    source = to_dot(make_flow())
    assert source.startswith("digraph flow {")
    assert 'subgraph "cluster_interrupts"' in source
    svg = dot_svg(source)
    assert svg.count('class="node"') == len(re.findall(r"^\s+\"\w+\" \[label=", source, re.M))
    assert "Es&#45;tu en danger ?" in svg or "Es-tu en danger ?" in svg
    assert "1. urgency = yes_now" in svg


def test_dot_colours_and_shapes() -> None:
    source = to_dot(make_flow())
    assert re.search(r'"out_rule_1" \[[^\n]*fillcolor="#f8d7da"', source)  # urgent: red
    assert re.search(r'"out_rule_5" \[[^\n]*fillcolor="#d6e4ff"', source)  # handoff: blue
    assert re.search(r'"out_rule_2" \[[^\n]*fillcolor="#ffe5c2"', source)  # referral: orange
    assert re.search(r'"closed_line" \[[^\n]*fillcolor="#e5e5e5"', source)  # end: grey
    assert re.search(r'"step_1" \[[^\n]*shape=box', source)  # say only
    assert re.search(r'"step_2" \[[^\n]*shape=parallelogram', source)  # question
    assert re.search(r'"routing" \[[^\n]*shape=diamond', source)


# ----- hostile labels ---------------------------------------------------------------------------------------


def test_hostile_labels_are_escaped_in_mermaid() -> None:
    text = to_mermaid(hostile_flow())
    assert "<script>" not in text and "</script>" not in text
    line = next(line for line in text.splitlines() if line.startswith("    step_2"))
    escaped = "#34;hi#34; #91;b#93; #123;c#125; #40;d#41; #60;script#62;#92;N #38; #124;x#124; #35;35;"
    assert line.startswith(f'    step_2[/"urgency<br/>{escaped}')
    assert line.count('"') == 2
    declared, edges = mermaid_parts(text)
    assert all(src in declared and dst in declared for src, dst in edges)
    trigger = next(line for line in text.splitlines() if "interrupt_2[[" in line)
    assert "#60;script#62;" in trigger and "#96;z#96;" in trigger and "cut" not in trigger  # one line, shortened


def test_hostile_labels_are_escaped_in_dot() -> None:
    source = to_dot(hostile_flow())
    assert '\\"hi\\"' in source
    assert "\\\\N" in source  # a literal backslash, not graphviz's node-name escape
    svg = dot_svg(source)
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert any("&lt;script&gt;\\N &amp; |x|" in t for t in texts)  # \N did not expand to the node name
    assert not any("step_2" in t for t in texts)


# ----- conditions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "en", "fr"),
    [
        ({"field": "topic", "equals": "sextortion"}, "topic = sextortion", "topic = sextortion"),
        ({"field": "topic", "in": ["a", "b"]}, "topic = a or b", "topic = a ou b"),
        ({"field": "age", "lt": 15}, "age < 15", "age < 15"),
        ({"field": "age", "ge": 15.5}, "age ≥ 15.5", "age ≥ 15.5"),
        ({"field": "age", "exists": True}, "age given", "age renseigné"),
        ({"not": {"field": "age", "exists": True}}, "age not given", "age non renseigné"),
        ({"not": {"field": "topic", "equals": "x"}}, "topic ≠ x", "topic ≠ x"),
        ({"open": "listeners"}, "listeners open", "listeners ouvert"),
        ({"not": {"open": "listeners"}}, "listeners closed", "listeners fermé"),
        ({"channel": ["whatsapp", "messenger"]}, "channel = whatsapp or messenger", "canal = whatsapp ou messenger"),
        ({"language": "en"}, "language = en", "langue = en"),
        ("always", "always", "toujours"),
        (
            {"all": [{"field": "a", "equals": "1"}, {"any": [{"closed": "q"}, {"field": "b", "lt": 2}]}]},
            "a = 1 and (q closed or b < 2)",
            "a = 1 et (q fermé ou b < 2)",
        ),
        ({"not": {"channel": "sms"}}, "not (channel = sms)", "non (canal = sms)"),
    ],
)
def test_describe_condition(condition: object, en: str, fr: str) -> None:
    parsed = parse_condition(condition)
    assert describe_condition(parsed) == en
    assert describe_condition(parsed, "fr") == fr


# ----- files ------------------------------------------------------------------------------------------------


def test_render_mmd(tmp_path: Path) -> None:
    out = tmp_path / "flow.mmd"
    render(make_flow(), out)
    assert out.read_text(encoding="utf-8") == to_mermaid(make_flow())


def test_render_svg(tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"
    render(make_flow(), out)
    svg = out.read_text(encoding="utf-8")
    assert "<svg" in svg and "Graph test" in svg


def test_render_png(tmp_path: Path) -> None:
    out = tmp_path / "flow.PNG"
    render(hostile_flow(), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match=r"\.mmd, \.svg or \.png"):
        render(make_flow(), tmp_path / "flow.pdf")
    assert not (tmp_path / "flow.pdf").exists()


def test_missing_dot_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FlowError, match=r"install graphviz \(the 'dot' command\) to draw \.svg/\.png, or use \.mmd"):
        render(make_flow(), tmp_path / "flow.svg")
    render(make_flow(), tmp_path / "flow.mmd")  # Mermaid needs nothing


def test_unwritable_output_is_a_flow_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot write"):
        render(make_flow(), tmp_path / "no" / "such" / "dir.mmd")
