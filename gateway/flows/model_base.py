"""What every flows.yaml model shares: the strict base model and the per-language text."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

LocalText = dict[str, str]
"""A text per language code: ``{fr: "Bonjour", en: "Hello"}``."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
