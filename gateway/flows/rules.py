"""Conditions: the small declarative language of routing rules and conditional ``next`` branches.

    when: {field: topic, equals: sextortion}      when: {field: topic, in: [sextortion, intimate_images]}
    when: {field: age, lt: 15}                     (also le, gt, ge; numbers only)
    when: {field: age, exists: true}               when: {channel: [messenger, whatsapp]}
    when: {language: en}                           when: {open: listeners}   /   {closed: listeners}
    when: {all: [...]}  /  {any: [...]}  /  {not: {...}}        when: always

Parsed once at load time into frozen dataclasses; evaluated against a :class:`Context`. Never ``eval``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

COMPARISONS = ("lt", "le", "gt", "ge")
FIELD_OPS = ("equals", "in", "exists", *COMPARISONS)


@dataclass(frozen=True, slots=True)
class Context:
    fields: Mapping[str, str]
    channel: str
    language: str
    is_open: Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Always:
    def evaluate(self, ctx: Context) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class FieldTest:
    field: str
    op: str
    value: str | float | bool | tuple[str, ...]

    def evaluate(self, ctx: Context) -> bool:
        actual = ctx.fields.get(self.field)
        if self.op == "exists":
            return (actual is not None) is self.value
        if actual is None:
            return False
        if self.op == "equals":
            return actual == self.value
        if self.op == "in":
            assert isinstance(self.value, tuple)
            return actual in self.value
        number = as_number(actual)
        if number is None:
            return False
        assert isinstance(self.value, float)
        return _compare(self.op, number, self.value)


def _compare(op: str, left: float, right: float) -> bool:
    if op == "lt":
        return left < right
    if op == "le":
        return left <= right
    if op == "gt":
        return left > right
    return left >= right


@dataclass(frozen=True, slots=True)
class ChannelIs:
    channels: tuple[str, ...]

    def evaluate(self, ctx: Context) -> bool:
        return ctx.channel in self.channels


@dataclass(frozen=True, slots=True)
class LanguageIs:
    languages: tuple[str, ...]

    def evaluate(self, ctx: Context) -> bool:
        return ctx.language in self.languages


@dataclass(frozen=True, slots=True)
class IsOpen:
    target: str
    open: bool = True

    def evaluate(self, ctx: Context) -> bool:
        return ctx.is_open(self.target) is self.open


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Condition, ...]

    def evaluate(self, ctx: Context) -> bool:
        return all(item.evaluate(ctx) for item in self.items)


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]

    def evaluate(self, ctx: Context) -> bool:
        return any(item.evaluate(ctx) for item in self.items)


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition

    def evaluate(self, ctx: Context) -> bool:
        return not self.item.evaluate(ctx)


Condition = Always | FieldTest | ChannelIs | LanguageIs | IsOpen | All | AnyOf | Not


def as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return None


def _names(value: Any, key: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str | int) and not isinstance(i, bool) for i in items):
        raise ValueError(f"'{key}' takes a name or a list of names")
    return tuple(str(i) for i in items)


def _field_test(spec: Mapping[str, Any]) -> FieldTest:
    field = spec["field"]
    ops = [k for k in spec if k != "field"]
    if not isinstance(field, str) or len(ops) != 1 or ops[0] not in FIELD_OPS:
        raise ValueError(f"a field condition is {{field: NAME, OP: VALUE}} with OP one of {', '.join(FIELD_OPS)}")
    op, value = ops[0], spec[ops[0]]
    if op == "exists":
        if not isinstance(value, bool):
            raise ValueError("'exists' takes true or false")
        return FieldTest(field, op, value)
    if op == "in":
        return FieldTest(field, op, _names(value, "in"))
    if op in COMPARISONS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"'{op}' compares with a number, not {value!r}")
        return FieldTest(field, op, float(value))
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"'equals' takes a text or a number, not {value!r}")
    return FieldTest(field, op, str(value))


def _combinator(key: str, value: Any) -> Condition:
    if key == "not":
        return Not(parse_condition(value))
    if not isinstance(value, list) or not value:
        raise ValueError(f"'{key}' takes a non-empty list of conditions")
    items = tuple(parse_condition(v) for v in value)
    return All(items) if key == "all" else AnyOf(items)


def parse_condition(value: Any) -> Condition:
    """Turn the YAML form of a condition into a :data:`Condition`; ``ValueError`` says what is wrong."""
    if isinstance(value, Always | FieldTest | ChannelIs | LanguageIs | IsOpen | All | AnyOf | Not):
        return value
    if value == "always" or value is True:
        return Always()
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"a condition is a mapping like {{field: topic, equals: sextortion}}, not {value!r}")
    if "field" in value:
        return _field_test(value)
    if len(value) != 1:
        raise ValueError(f"one condition per mapping (got {', '.join(map(str, value))}): use 'all' or 'any'")
    key, inner = next(iter(value.items()))
    if key in ("all", "any", "not"):
        return _combinator(key, inner)
    if key == "channel":
        return ChannelIs(_names(inner, key))
    if key == "language":
        return LanguageIs(_names(inner, key))
    if key in ("open", "closed"):
        return IsOpen(_names(inner, key)[0], open=key == "open")
    raise ValueError(f"unknown condition '{key}': use field, channel, language, open, closed, all, any or not")


def walk(condition: Condition) -> Iterator[Condition]:
    """Every condition inside ``condition``, itself included."""
    yield condition
    if isinstance(condition, All | AnyOf):
        for item in condition.items:
            yield from walk(item)
    elif isinstance(condition, Not):
        yield from walk(condition.item)
