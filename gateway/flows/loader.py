"""flows.yaml → :class:`~gateway.flows.model.Flow`, or every problem as ``FILE:LINE:COLUMN: message``.

The YAML text is composed into nodes so that every key and value keeps its position; the plain data is then
validated by the pydantic schema (``model.py``) and the semantic checks (``checks.py``), whose error paths are
mapped back to positions here. Booleans are YAML 1.2 style (only ``true``/``false``): ``yes``, ``no``, ``on``
and ``off`` stay texts, because ops staff write choices like ``value: yes``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.errors import FlowValidationError
from gateway.flows.checks import check_flow
from gateway.flows.model import Flow
from gateway.flows.positions import LoadedFlow, PathKey, Positions, Problem, did_you_mean

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~2.5x faster


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader (libyaml's when available) with YAML 1.2 booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


MAX_DEPTH = 100
"""Deeper data is refused (a flows.yaml nests about 10 levels): the schema and the checks recurse."""
MAX_VALUES = 200_000
"""Aliases may expand a small text into more values than this: refused."""
_MERGE = "tag:yaml.org,2002:merge"
_OPEN_EVENTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE_EVENTS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class _Builder:
    """Turns composed YAML nodes into plain data, recording positions and duplicate keys."""

    def __init__(self) -> None:
        self.positions = Positions()
        self.duplicates: list[tuple[PathKey, str]] = []
        self.joined: list[tuple[PathKey, str]] = []  # list items over two lines: a comma missing (_one_line_items)
        self._constructor = _Loader("")
        self._open: set[int] = set()  # the collections being built: an alias to one of them loops forever
        self._count = 0

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        self._count += 1
        if len(path) > MAX_DEPTH or self._count > MAX_VALUES or id(node) in self._open:
            problem = "an alias refers to itself" if id(node) in self._open else "the data nests or repeats too much"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode) and node.flow_style:
                self._one_line_items(node, path)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _one_line_items(self, node: yaml.SequenceNode, path: PathKey) -> None:
        """An item of a ``[a, b, …]`` list without quotes that runs over two lines is two items whose comma was
        forgotten (YAML joins them with a space: ``me tape) si (je|j) (il|elle) me frappe``), and both phrases then
        match nothing: refused, naming the line the comma is missing from."""
        for i, item in enumerate(node.value):
            if isinstance(item, yaml.ScalarNode) and not item.style and item.end_mark.line > item.start_mark.line:
                line = item.start_mark.line + 1
                self.joined.append(
                    ((*path, i), f"a list item runs over two lines: is a comma missing at the end of line {line}?")
                )

    def _scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain name", node.start_mark)
        try:
            return self._constructor.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, f"'{node.value}': {exc}", node.start_mark) from None

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # YAML 1.1's ``<<: *anchor``: not read (flattening it can multiply aliases)
                problem = ("merge keys ('<<') are not read in flows.yaml: write the keys out (an alias '*' of a"
                           " whole value is fine)")  # fmt: skip
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            raw = self._scalar(key_node)
            key = "" if raw is None else str(raw)
            child = (*path, key)
            if key in result:
                self.duplicates.append((child, key))
            self.positions.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child)
        return result


def _too_deep(text: str) -> tuple[int, int] | None:
    """Where (line, column) ``text`` first nests deeper than MAX_DEPTH, or None.

    Composing is recursive (in C with libyaml, where a few tens of thousands of levels crash the process), but
    parsing into events is not: one cheap pass over the events, stopped at the first level too deep, makes the
    composing safe for any text.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _OPEN_EVENTS):
            depth += 1
            mark = event.start_mark
            if depth > MAX_DEPTH and mark is not None:
                return mark.line + 1, mark.column + 1
            if depth > MAX_DEPTH:
                return 1, 1
        elif isinstance(event, _CLOSE_EVENTS):
            depth -= 1
    return None


def _yaml_problem(exc: yaml.YAMLError, file: str, kind: str) -> Problem:
    mark = (exc.problem_mark or exc.context_mark) if isinstance(exc, yaml.MarkedYAMLError) else None
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    parts = (exc.context, exc.problem) if isinstance(exc, yaml.MarkedYAMLError) else (str(exc),)
    what = " ".join(" ".join(p.split()) for p in parts if p)
    return Problem(file, line, col, f"YAML {kind}: {what}")


def parse_yaml(text: str, file: str) -> tuple[Any, Positions, list[Problem]]:
    """YAML text → (data, positions, problems). Problems are syntax errors and duplicate keys."""
    try:
        deep = _too_deep(text)
        if deep is not None:
            return None, Positions(), [Problem(file, *deep, "the data nests too deeply")]
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        return None, Positions(), [_yaml_problem(exc, file, "syntax")]
    if node is None:
        return None, Positions(), [Problem(file, 1, 1, "the file is empty")]
    builder = _Builder()
    try:
        data = builder.build(node, ())
    except yaml.YAMLError as exc:
        return None, builder.positions, [_yaml_problem(exc, file, "value")]
    problems = [
        Problem(file, *builder.positions.of(p, key=True), f"duplicate key '{k}'") for p, k in builder.duplicates
    ]
    problems += [Problem(file, *builder.positions.of(p), message) for p, message in builder.joined]
    return data, builder.positions, problems


def _real_path(data: Any, loc: Sequence[str | int]) -> PathKey:
    """Drop pydantic's union/type markers from an error location, keeping only steps that exist in data."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict) and str(part) in current:
            path.append(str(part))
            current = current[str(part)]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
    return tuple(path)


def _message(error: ErrorDetails, data: Any, path: PathKey) -> tuple[str, bool]:
    """A readable message for one pydantic error, and whether it points at a key."""
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        return f"unknown key '{name}'{did_you_mean(name, _allowed_keys(path[:-1]))}", True
    if kind == "missing":
        return f"missing key '{loc[-1]}'", False
    msg = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    where = loc[-1] if loc and isinstance(loc[-1], str) and str(loc[-1]) not in msg else None
    return (f"'{where}': {msg[0].lower()}{msg[1:]}" if where and path else msg), False


def _allowed_keys(path: PathKey) -> list[str]:
    """The keys the schema accepts at ``path`` (the mapping that holds an unknown key)."""
    models = _models_in(Flow)
    for part in path:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            info = m.model_fields.get(part)
            if info is not None:
                nxt.extend(_models_in(info.annotation))
        # Not a field name: a key of a dict[str, Model] (a step id, a queue id…): stay on the dict's models.
        models = nxt or [m for m in models if part not in m.model_fields]
    return sorted({k for m in models for k in m.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def schema_problems(exc: ValidationError, data: Any, positions: Positions, file: str) -> list[Problem]:
    errors = [(error, _real_path(data, error["loc"])) for error in exc.errors(include_url=False)]
    inner = {path[:n] for _, path in errors for n in range(len(path))}  # paths that hold another error deeper
    problems: set[Problem] = set()
    for error, path in errors:
        if error["type"].endswith("_type") and path in inner:
            continue  # 'next' is a list of branches with a mistake inside: not "Input should be a valid string"
        message, at_key = _message(error, data, path)
        problems.add(Problem(file, *positions.of(path, key=at_key), message))
    return sorted(problems)


def flow_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def load_text(text: str, file: str = "flows.yaml") -> tuple[LoadedFlow | None, list[Problem]]:
    """Validate a flows.yaml text completely: a loaded flow when there is no problem, else every problem."""
    data, positions, problems = parse_yaml(text, file)
    if data is None:
        return None, problems or [Problem(file, 1, 1, "the file is empty")]
    if not isinstance(data, dict):
        return None, [*problems, Problem(file, 1, 1, "flows.yaml must be a mapping of keys (start, steps, …)")]
    try:
        flow = Flow.model_validate(data)
    except ValidationError as exc:
        return None, sorted([*problems, *schema_problems(exc, data, positions, file)])
    loaded = LoadedFlow(flow, flow_version(text), file, positions)
    problems = sorted([*problems, *check_flow(loaded)])
    return (None, problems) if problems else (loaded, [])


def read_text(path: str | Path) -> str:
    """A flows.yaml (or its side file) as text; :class:`FlowValidationError` when it cannot be read, pointing at the
    first character that is not UTF-8 (a file saved as "ANSI")."""
    name = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FlowValidationError([f"{name}:{_not_utf8(Path(path).read_bytes())}"]) from None
    except OSError as exc:
        raise FlowValidationError([f"{name}:1:1: cannot read the file ({exc.__class__.__name__})"]) from None


def _not_utf8(data: bytes) -> str:
    """``LINE:COLUMN: message`` for the first bytes of ``data`` that are not UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        line, column = before.count("\n") + 1, len(before) - before.rfind("\n")
        return f"{line}:{column}: the file is not UTF-8 (byte 0x{data[exc.start]:02x}): save it as UTF-8"
    return "1:1: the file changed while it was read"


def load_file(path: str | Path) -> LoadedFlow:
    """Load and validate a flows.yaml file; :class:`FlowValidationError` lists every problem."""
    name = str(path)
    text = read_text(path)
    loaded, problems = _loaded(text, name) if len(text) <= _KEPT_CHARS else load_text(text, name)
    if loaded is None:
        raise FlowValidationError([str(p) for p in problems])
    return loaded


_KEPT_CHARS = 1_000_000
"""A bigger file (thousands of steps) is read again at each load, not kept: kept, its flow would stay in memory for
nothing once replaced, and every garbage collection would walk it."""


@functools.lru_cache(maxsize=2)
def _loaded(text: str, file: str) -> tuple[LoadedFlow | None, tuple[Problem, ...]]:
    """:func:`load_text`, the last two answers kept: the same file read again unchanged (a reload that finds nothing
    new, a second app in one process: every test's) is not parsed and checked again. A loaded flow never changes
    (its model is frozen, its positions are written only while it is parsed)."""
    loaded, problems = load_text(text, file)
    return loaded, tuple(problems)
