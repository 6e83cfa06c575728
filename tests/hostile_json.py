"""Hypothesis strategies for hostile webhook bodies: any JSON value, and JSON shaped by a provider's own field
names (so that the parser's deeper branches are reached, not only its first check)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


def shaped(known_fields: str, *, max_size: int = 5) -> st.SearchStrategy[Any]:
    """JSON whose objects are keyed by ``known_fields`` (space-separated), any JSON below them."""
    field_names = st.sampled_from(known_fields.split())
    return st.recursive(
        json_values,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(field_names, children, max_size=max_size),
        max_leaves=40,
    )
