"""What every flows.yaml model shares: the strict base model and the per-language text."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

LocalText = dict[str, str]
"""A text per language code: ``{fr: "Bonjour", en: "Hello"}``."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def some_phrase(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """A phrase list per language with at least one phrase (a field validator's body; each phrase's marks are checked
    by ``checks.check_phrase_marks``)."""
    if not any(p.strip() for phrases in value.values() for p in phrases):
        raise ValueError("at least one phrase is needed")
    return value
