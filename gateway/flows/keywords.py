"""Interrupt phrases: how the keyword first line reads a young person's message.

An interrupt that hands off (danger, a human) matches its phrase anywhere in a message. An interrupt that does
not hand off (``stop``: it ends the conversation or only refers) matches only when the message is essentially
that phrase: ``"stop"``, ``"stop stp"``, ``"je veux arrêter la conversation"``, never ``"je lui ai dit stop mais
il continue"``. Words of politeness and filler (``stp``, ``merci``, ``please``…) may surround the phrase.
"""

from __future__ import annotations

from collections.abc import Iterable

ENDING_FILLERS: tuple[str, ...] = (
    # French
    "stp", "svp", "s il te plait", "s il vous plait", "merci", "merci beaucoup", "ok", "okay", "d accord", "bon",
    "bah", "ben", "euh", "alors", "maintenant", "tout de suite", "je veux", "j veux", "jveux", "je voudrais",
    "on peut", "peux tu", "tu peux", "vous pouvez", "juste", "au revoir", "salut", "ciao", "bye", "c est bon",
    "voila", "oui", "la", "svp merci",
    # English
    "please", "pls", "plz", "thanks", "thank you", "thx", "now", "right now", "i want to", "i wanna", "can we",
    "can you", "just", "yes", "goodbye",
)  # fmt: skip
"""Words that may surround an ending phrase without making the message a story (normalised)."""

_MAX_WORDS = 12
"""A longer message is a story, whatever words it holds."""


def only(normalized_text: str, phrases: Iterable[str], fillers: Iterable[str] = ENDING_FILLERS) -> bool:
    """Whether ``normalized_text`` is one of ``phrases``, possibly repeated or wrapped in filler words.

    Every word must belong to a phrase or a filler (any way of cutting the message will do), and at least one
    phrase must be there. ``"stop stp"`` → True; ``"stop je veux juste que tout s arrete"`` → False.
    """
    words = normalized_text.split()
    if not words or len(words) > _MAX_WORDS:
        return False
    pieces = {(tuple(p.split()), True) for p in phrases if p} | {(tuple(f.split()), False) for f in fillers if f}
    # reached[i]: the ways the first i words can be cut: {False} with fillers only, {True} with a phrase.
    reached: list[set[bool]] = [set() for _ in range(len(words) + 1)]
    reached[0].add(False)
    for i in range(len(words)):
        for seen in tuple(reached[i]):
            for piece, is_phrase in pieces:
                if tuple(words[i : i + len(piece)]) == piece:
                    reached[i + len(piece)].add(seen or is_phrase)
    return True in reached[-1]
