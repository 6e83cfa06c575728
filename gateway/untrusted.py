"""What a client sends, checked before any of our code uses it: a JSON document, a web chat token.

Python's ``json.loads`` accepts two things our code cannot handle whole, and raises for a third outside
``ValueError``: a string holding a lone surrogate (``"\\ud83d"`` escaped alone), which no hash, seal or store can
encode (it failed deep in the processing: the web chat's socket killed, a 503 and an ERROR line an anonymous client
could repeat at will); a document nested deeper than Python's recursion (``RecursionError``, not a ``ValueError``,
so no parser caught it). Both are malformed here: ``ValueError`` (a red-team review, 2026-12-05).
"""

from __future__ import annotations

import json

CODEC = json.JSONEncoder(ensure_ascii=False, check_circular=False)


SHALLOW = 100
"""Fewer ``[`` and ``{`` than this in a body: a document nested no deeper, far from Python's recursion."""


def load_json(raw: str | bytes) -> object:
    """The JSON document in ``raw``; ValueError when it is not one our code can use whole."""
    try:
        document = json.loads(raw)
        if not _plainly_whole(raw):
            CODEC.encode(document).encode("utf-8")  # a lone surrogate anywhere, a key included: UnicodeEncodeError
    except RecursionError:
        raise ValueError("nested too deep") from None
    return document


def _plainly_whole(raw: str | bytes) -> bool:
    """Whether the bytes of a document ``json.loads`` read can hold neither a surrogate nor a nesting deep enough
    for an encoding of it to fail: read as UTF-8 (it starts with ``{`` or ``[``, no zero byte where ``json`` looks
    for UTF-16 or UTF-32), no byte 0xED (the lead byte of a surrogate written in UTF-8, which ``json`` lets
    through), no ``\\ud`` escape (``\\ud800``–``\\udfff``: a surrogate, alone or in a pair) and fewer than
    :data:`SHALLOW` brackets. Every provider's webhook without an emoji: its document is not encoded again to be
    checked (until 2026-12-06 it was, every time: more than the parse, bench/README.md "Forty-fourth session")."""
    return (
        isinstance(raw, bytes)
        and raw[:1] in (b"{", b"[")
        and b"\x00" not in raw[:4]
        and b"\xed" not in raw
        and b"\\ud" not in raw
        and b"\\uD" not in raw
        and raw.count(b"{") + raw.count(b"[") < SHALLOW
    )


def chat_token(value: object) -> str | None:
    """A browser's token or opening key as the page draws them (20 to 100 URL-safe ASCII characters), else None."""
    if not (isinstance(value, str) and 20 <= len(value) <= 100 and value.isascii()):
        return None
    return value if value.replace("-", "").replace("_", "").isalnum() else None
