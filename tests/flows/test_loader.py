"""The flows.yaml loader (``gateway/flows/loader.py``): YAML and schema problems come back positioned, one
``FILE:LINE:COLUMN: message`` line each; any text at all gives a flow or problems, never an exception."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import FlowValidationError
from gateway.flows.loader import load_file, load_text
from tests.flows.test_checks import FILE, VALID_FLOW, at, mutate

PROBLEM_LINE = re.compile(r"^[^:]+:\d+:\d+: .+$")


def problems(text: str) -> list[str]:
    loaded, found = load_text(text, FILE)
    assert (loaded is None) == bool(found)
    return [str(p) for p in found]


def test_valid_flow_loads() -> None:
    loaded, found = load_text(VALID_FLOW, FILE)
    assert found == []
    assert loaded is not None
    assert loaded.file == FILE
    assert loaded.flow.start == "welcome"


def test_yaml_syntax_error_is_positioned() -> None:
    text = mutate(("    next: topic", "    next: [topic"))
    unclosed = text.splitlines().index("    next: [topic") + 1
    assert problems(text) == [  # the parser notices on the next line
        f"{FILE}:{unclosed + 1}:8: YAML syntax: while parsing a flow sequence did not find expected ',' or ']'"
    ]


def test_tab_indentation_is_a_syntax_error() -> None:
    assert problems("start: a\n\tsteps: {}\n") == [
        "flows.yaml:2:1: YAML syntax: while scanning a plain scalar found a tab character that violates indentation"
    ]


def test_unknown_key_with_did_you_mean_at_the_key() -> None:
    text = mutate(("    store: age", "    stor: age"))
    assert problems(text) == [f"{at(text, 'stor: age', 'stor')}: unknown key 'stor' (did you mean 'store'?)"]


def test_unknown_top_level_key() -> None:
    text = mutate(("timezone: Europe/Paris", "time_zone: Europe/Paris"))
    assert problems(text) == [f"{FILE}:3:1: unknown key 'time_zone' (did you mean 'timezone'?)"]


def test_missing_key() -> None:
    assert problems(mutate(("start: welcome\n", ""))) == [f"{FILE}:1:1: missing key 'start'"]


def test_missing_key_inside_a_step() -> None:
    text = mutate(("      - goto: details", "      - when: {field: topic, equals: other}"))
    assert problems(text) == [f"{at(text, 'equals: other', 'when')}: missing key 'goto'"]


def test_wrong_type() -> None:
    text = mutate(("number: {min: 5, max: 99}", "number: {min: five, max: 99}"))
    assert problems(text) == [
        f"{at(text, 'min: five', 'five')}: 'min': input should be a valid integer, unable to parse string as an integer"
    ]


def test_duplicate_key() -> None:
    text = mutate(("timezone: Europe/Paris", "timezone: Europe/Paris\ntimezone: Europe/Paris"))
    assert problems(text) == [f"{FILE}:4:1: duplicate key 'timezone'"]


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert problems(text) == [f"{FILE}:1:1: the file is empty"]


@pytest.mark.parametrize("text", ["- start\n- steps\n", "just words\n", "42\n"])
def test_root_must_be_a_mapping(text: str) -> None:
    assert problems(text) == [f"{FILE}:1:1: flows.yaml must be a mapping of keys (start, steps, …)"]


def test_bad_hours_positioned() -> None:
    text = mutate(('daily: ["09:00-23:00"]', 'daily: ["25:00-26:00"]'))
    where = at(text, "25:00", '"')
    assert problems(text) == [f"{where}: bad hours '25:00-26:00': hours go from 00:00 to 24:00"]


def test_bad_hours_syntax() -> None:
    text = mutate(('daily: ["09:00-23:00"]', "daily: 9h-23h"))
    assert problems(text) == [f"{at(text, '9h-23h', '9h')}: bad hours '9h-23h': write them like '09:00-23:00'"]


def test_yes_and_no_stay_texts() -> None:
    text = mutate(
        ("      - value: images", "      - value: yes"),
        ("      - value: other", "      - value: no"),
        ("when: {field: topic, equals: images}\n", "when: {field: topic, equals: yes}\n"),
        ("{all: [{field: topic, equals: images}, {closed: listeners}]}", "{field: topic, in: [yes, on, off]}"),
    )
    found = problems(text)
    assert len(found) == 2  # 'on' and 'off' are not choices: they stayed texts too
    assert all("field 'topic' is never 'o" in p for p in found)
    loaded, _ = load_text(text.replace("[yes, on, off]", "[yes, no]"), FILE)
    assert loaded is not None
    choices = loaded.flow.steps["topic"].choices
    assert choices is not None
    assert [c.value for c in choices] == ["yes", "no"]


def test_true_and_false_are_booleans() -> None:
    text = mutate(("  day:\n    weekly:", "  day:\n    always_open: true\n    weekly:"))
    loaded, found = load_text(text, FILE)
    assert found == []
    assert loaded is not None
    assert loaded.flow.schedules["day"].always_open is True


def test_version_hash_is_stable_and_follows_the_text() -> None:
    first, _ = load_text(VALID_FLOW, FILE)
    again, _ = load_text(VALID_FLOW, "elsewhere.yaml")
    changed, _ = load_text(VALID_FLOW + "# a comment\n", FILE)
    assert first is not None and again is not None and changed is not None
    assert re.fullmatch(r"[0-9a-f]{12}", first.version)
    assert first.version == again.version
    assert first.version != changed.version


def test_load_file(tmp_path: Path) -> None:
    good = tmp_path / "flows.yaml"
    good.write_text(VALID_FLOW, encoding="utf-8")
    assert load_file(good).flow.start == "welcome"
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID_FLOW.replace("start: welcome", "start: welcom"), encoding="utf-8")
    with pytest.raises(FlowValidationError) as info:
        load_file(bad)
    assert info.value.problems == [
        f"{bad}:4:8: the conversation starts at step 'welcom', which does not exist (did you mean 'welcome'?)"
    ]


def test_load_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(FlowValidationError) as info:
        load_file(tmp_path / "missing.yaml")
    assert info.value.problems == [f"{tmp_path / 'missing.yaml'}:1:1: cannot read the file (FileNotFoundError)"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!python/object:os.system x\n", "1:4: YAML value: could not determine a constructor for the tag"),
        ("a: 2026-13-45\n", "1:4: YAML value: '2026-13-45': month must be in 1..12"),
        ("a: &x {b: *x}\n", "1:4: YAML value: an alias refers to itself"),
        ("? [a, b]\n: c\n", "1:3: YAML value: a key must be a plain name"),
        ("a: " + "[" * 1200 + "]" * 1200 + "\n", "1:103: the data nests too deeply"),
        ("a: " + "[" * 200_000 + "]" * 200_000 + "\n", "1:103: the data nests too deeply"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "1:"),
    ],
)
def test_hostile_yaml_gives_one_positioned_line(text: str, expected: str) -> None:
    [problem] = problems(text)
    assert problem.startswith(f"{FILE}:{expected}")
    assert PROBLEM_LINE.match(problem)


def test_line_breaks_in_names_stay_on_one_line() -> None:
    text = mutate(("timezone: Europe/Paris", 'timezone: Europe/Paris\n"time\\nzone": UTC'))
    assert problems(text) == [f"{FILE}:4:1: unknown key 'time\\nzone' (did you mean 'timezone'?)"]


def test_alias_bomb_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdef", "bcdefg", strict=True)]
    [problem] = problems("\n".join(lines) + "\n")
    assert problem.endswith("YAML value: the data nests or repeats too much")


def test_a_merge_key_is_refused_in_words_ops_can_act_on() -> None:
    """``<<: *anchor`` (YAML 1.1's merge key, which many YAML tools accept) to share a queue's keys: refused at the
    ``<<``, saying what to write instead. Before, the parser's words: "could not determine a constructor for the tag
    'tag:yaml.org,2002:merge'"."""
    text = mutate(("queues:\n  listeners:\n", "queues:\n  listeners: &q\n"),
                  ("    schedule: day\npartners:",
                   "    schedule: day\n  night:\n    <<: *q\n    name: {fr: Nuit, en: Night}\npartners:"))  # fmt: skip
    assert problems(text) == [
        f"{at(text, '<<: *q')}: YAML value: merge keys ('<<') are not read in flows.yaml: write the keys out"
        " (an alias '*' of a whole value is fine)"
    ]


# --- property tests: any input gives a flow or positioned problems, never an exception ----------------------------


def assert_flow_or_problems(text: str) -> None:
    loaded, found = load_text(text, FILE)
    if loaded is not None:
        assert found == []
        return
    assert found
    for problem in found:
        assert PROBLEM_LINE.match(str(problem)), str(problem)
        assert problem.line >= 1 and problem.column >= 1


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_any_text_loads_or_gives_problems(text: str) -> None:
    assert_flow_or_problems(text)


KEYS = [
    "start", "steps", "queues", "routing", "messages", "fallback", "languages", "next", "when", "then", "ask",
    "say", "choices", "value", "label", "field", "equals", "in", "lt", "not", "all", "fr", "en", "route", "queue",
    "handoff", "refer", "weekly", "daily", "schedule", "tests", "at", "number", "min", "max", "store", "x",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(["welcome", "route", "yes", "no", "~", "true", "09:00-23:00", "25:00-26:00", "{}", "[]", "''"]),
    st.integers(-5, 200).map(str),
    st.text(alphabet="ab: -{}[]#&*!|>'\"\\%@`,?", max_size=8),
)


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    """Lines of ``key: value`` and ``- item`` at random indentation: mostly near-YAML, often wrong."""
    lines = []
    for _ in range(draw(st.integers(1, 25))):
        indent = " " * draw(st.sampled_from([0, 0, 2, 2, 4, 6, 1, 3]))
        dash = draw(st.sampled_from(["", "", "- "]))
        key = draw(st.sampled_from(KEYS))
        value = draw(st.one_of(st.just(""), SCALARS))
        lines.append(f"{indent}{dash}{key}: {value}" if draw(st.booleans()) else f"{indent}{dash}{value}")
    return "\n".join(lines)


@given(yamlish())
@settings(max_examples=200, deadline=None)
def test_yamlish_text_loads_or_gives_problems(text: str) -> None:
    assert_flow_or_problems(text)


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path inside ``data`` (mapping keys and list indexes)."""
    found: list[tuple[Any, ...]] = [path] if path else []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        found.extend(_paths(value, (*path, key)))
    return found


RANDOM_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 300), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
VALID_DATA = yaml.safe_load(VALID_FLOW)  # the same data: its texts hold no yes/no/on/off


@st.composite
def mutated_flow(draw: st.DrawFn) -> str:
    data = yaml.safe_load(VALID_FLOW)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        *parents, last = path
        holder = data
        for part in parents:
            holder = holder[part]
        action = draw(st.sampled_from(["delete", "rename", "replace"]))
        if action == "delete" or (action == "rename" and isinstance(holder, list)):
            del holder[last]
        elif action == "rename":
            holder[draw(st.text(min_size=1, max_size=10))] = holder.pop(last)
        else:
            holder[last] = draw(RANDOM_VALUES)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@given(mutated_flow())
@settings(max_examples=200, deadline=None)
def test_mutated_valid_flow_loads_or_gives_problems(text: str) -> None:
    assert_flow_or_problems(text)


def test_the_unmutated_round_trip_is_valid() -> None:
    assert problems(yaml.safe_dump(VALID_DATA, allow_unicode=True, sort_keys=False)) == []


def test_a_phrase_list_item_over_two_lines_is_a_missing_comma_named_by_its_line() -> None:
    """``[stop, arrête\n  ciao]``: YAML joins "arrête ciao" into one phrase and both match nothing. Ops staff
    forget such a comma when they add a line to a long list: refused, naming the line, and a running gateway
    keeps its last good flow (tests/test_app.py: an invalid reload)."""
    text = mutate(("match: {fr: [stop], en: [stop]}", "match: {fr: [stop, arrête\n        ciao], en: [stop]}"))
    line = text.splitlines().index("    match: {fr: [stop, arrête") + 1
    column = text.splitlines()[line - 1].index("arrête") + 1
    expected = f"{FILE}:{line}:{column}: a list item runs over two lines: is a comma missing at the end of line {line}?"
    assert problems(text) == [expected]
    assert problems(text.replace("arrête\n", "arrête,\n")) == []
