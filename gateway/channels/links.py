"""Helpline numbers and URLs in the line's own texts, for the channels that send plain text.

The same rule as the web chat page's (``linkify`` in ``webchat_static/chat.js``): 17, 112, 114 (an SMS line),
119, 3114, 3018, 116 006 and 116 111 standing alone (not "position 17", "17 ans", "17h"), and ``http(s)`` URLs.
Only ever applied to outgoing texts (flows.yaml's and listeners'), never to what a young person wrote.

* :func:`spans` finds them, so that :func:`~gateway.channels.base.split_text` never cuts one across two messages
  and Telegram marks them as entities (``phone_number``, ``url``) that its apps make tappable.
* :func:`plain` writes a number's inner space as an ordinary one ("116 006", not a no-break space), so that the
  apps that find numbers in plain text themselves (Messenger, WhatsApp) see one number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINKS = re.compile(
    r"(https?://[^\s<>\"]+)"
    r"|(^|[^\w+.,:-])(116[\s\u00a0\u202f]?006|116[\s\u00a0\u202f]?111|3114|3018|119|112|114|17)"
    r"(?![\w]|[.,:/]\d|\s?(?:ans?|years?|h\b|min|%|€))",
    re.IGNORECASE | re.ASCII,
)
_HTTP = re.compile("http", re.IGNORECASE | re.ASCII)  # what every URL _LINKS finds starts with (every number: 1 or 3)
# "position 17" is a place in line: one of these words right before the number, spaces aside (each matches as many
# characters as it has, 8 at most: only the last 8 characters before the number, spaces aside, are searched)
_NOT_A_LINE = re.compile(r"(position|number|numéro|n°|#)$", re.IGNORECASE)
_NOT_A_LINE_LONGEST = len("position")
_URL_END = re.compile(r"[.,;:!?)\]]+$")
_INNER_SPACE = re.compile(r"[\u00a0\u202f]")


@dataclass(frozen=True, slots=True)
class Span:
    """``text[start:end]`` is a helpline number (``kind`` ``phone``) or a URL (``url``)."""

    start: int
    end: int
    kind: str


def spans(text: str) -> list[Span]:
    """The helpline numbers and URLs in ``text``, in order, as the web chat page links them."""
    if "1" not in text and "3" not in text and _HTTP.search(text) is None:  # most texts: nothing _LINKS could find
        return []
    found: list[Span] = []
    position = 0
    while (match := _LINKS.search(text, position)) is not None:
        if match.group(1):
            url = _URL_END.sub("", match.group(1))
            found.append(Span(match.start(1), match.start(1) + len(url), "url"))
            position = match.start(1) + max(len(url), 1)
            continue
        start, end = match.start(3), match.end(3)
        position = end
        before = text[:start].rstrip()  # str.rstrip's spaces are the \s of a str pattern (Py_UNICODE_ISSPACE)
        if not _NOT_A_LINE.search(before, max(0, len(before) - _NOT_A_LINE_LONGEST)):
            found.append(Span(start, end, "phone"))
    return found


def plain(text: str) -> str:
    """``text`` with the no-break spaces inside helpline numbers written as ordinary spaces."""
    parts, at = [], 0
    for span in spans(text):
        if span.kind == "phone":
            parts += [text[at : span.start], _INNER_SPACE.sub(" ", text[span.start : span.end])]
            at = span.end
    return "".join(parts) + text[at:]
